namespace Sdd.Tool;

/// <summary><c>sdd attributes create|list|show|pin</c>: the editor registry.</summary>
internal static class AttributeCommands
{
    private static readonly string[] MetricNames = ["editability", "psnrSource", "ssimSource", "psnrCounterfactual", "othersKept"];

    public static Command Build(ToolContext tool, Dictionary<Command, string[]> examples)
    {
        var attributes = new Command("attributes", "Attributes and their distilled editor versions");

        var name = new Argument<string>("NAME") { Description = "The attribute's name (letters, digits, '-', '_')" };
        var teacher = new Option<string>("--teacher") { Description = "The teacher to distil from, by id or name (e.g. builtin)", Required = true, HelpName = "ID" };
        var target = new Option<string>("--target") { Description = "The teacher's attribute to edit towards (e.g. smiling); not for a Stable Diffusion teacher", HelpName = "ATTR" };
        var prompt = new Option<string>("--prompt") { Description = "A Stable Diffusion teacher's edit, as text (e.g. \"a photo of a smiling person\")", HelpName = "TEXT" };
        var sourcePrompt = new Option<string>("--source-prompt") { Description = "What your photos show (e.g. \"a photo of a person\"): the reference of delta guidance", HelpName = "TEXT" };
        var dataset = new Option<string>("--dataset") { Description = "Your dataset to distil on (default: the teacher's own domain, rendered)", HelpName = "NAME|ID" };
        var steps = new Option<int?>("--steps") { Description = "Distillation steps (default 300)", HelpName = "N" };
        var timesteps = new Option<string>("--timesteps") { Description = "hqs (default), random, fixed:T or list:T1,T2", HelpName = "RULE" };
        var scale = new Option<double?>("--scale") { Description = "Guidance scale (default: automatic, calibrated to 95 % editability on the validation split)", HelpName = "S" };
        var wait = new Option<bool>("--wait") { Description = "Follow the distillation run to its end" };
        var create = new Command("create", "Create an attribute and distil its first editor version") { name, teacher, target, prompt, sourcePrompt, dataset, steps, timesteps, scale, wait };
        examples[create] =
        [
            "sdd attributes create smiling --teacher builtin --target smiling --wait",
            "sdd attributes create glasses --teacher 7d1e… --target eyeglasses --dataset portraits --steps 600 --scale 5",
            "sdd attributes create smile-sd --teacher sd15 --prompt \"a photo of a smiling person\" --source-prompt \"a photo of a person\" --dataset my-photos",
        ];
        create.Handle(tool, async (inv, ct) =>
        {
            var t = await Lookup.TeacherAsync(inv.Client, inv.Value(teacher)!, ct);
            Guid? datasetId = inv.Value(dataset) is { } d ? (await Lookup.DatasetAsync(inv.Client, d, ct)).Id : null;
            var settings = inv.Value(steps) is null && inv.Value(timesteps) is null && inv.Value(scale) is null ? null
                : new DistillSettings(Steps: inv.Value(steps), Timesteps: inv.Value(timesteps), Scale: inv.Value(scale));
            if (inv.Value(prompt) is null && inv.Value(target) is null)
                throw new ToolException(t.Kind == "stable-diffusion" ? $"'{t.Name}' edits by text: give --prompt \"a photo of …\"" : $"give --target, one of {string.Join(", ", t.Attributes)}", ExitCodes.Usage);
            var accepted = await inv.Client.Attributes.CreateAsync(new CreateAttribute(inv.Value(name)!, t.Id, inv.Value(target), datasetId, settings,
                Prompt: inv.Value(prompt), SourcePrompt: inv.Value(sourcePrompt)), ct);
            if (!inv.Json) inv.Out.MarkupLine($"Attribute [bold]{Display.Esc(accepted.Attribute)}[/] v{accepted.Version}: distilling in run {accepted.RunId}");
            if (inv.Value(wait)) return await RunCommands.WatchAsync(inv, accepted.RunId, ct);
            if (inv.Json) inv.WriteJson(accepted);
            else inv.Note($"Follow it: sdd runs watch {accepted.RunId}; then sdd attributes show {accepted.Attribute}");
            return ExitCodes.Ok;
        });

        var list = new Command("list", "Your attributes and the published ones");
        examples[list] = ["sdd attributes list", "sdd attributes list --json"];
        list.Handle(tool, async (inv, ct) =>
        {
            var all = await inv.Client.Attributes.ListAllAsync(ct).ToListAsync(ct);
            if (inv.Json) { inv.WriteJson(all); return ExitCodes.Ok; }
            var table = Display.Table("name", "target", "active", "versions", "");
            foreach (var a in all)
                table.AddRow(Display.Esc(a.Name), Display.Esc(a.TargetAttribute ?? "-"), a.ActiveVersion is { } v ? $"v{v}" : "-",
                    string.Join(' ', a.Versions.Select(x => $"v{x.Version}:{SddJson.Name(x.State)}")),
                    a.Shared ? "shared" : a.Published ? "published" : "");
            inv.Out.Write(table);
            return ExitCodes.Ok;
        });

        var showName = new Argument<string>("NAME") { Description = "The attribute" };
        var version = new Option<int?>("--version") { Description = "The version whose HQS curve to draw (default: the active, else the latest)", HelpName = "N" };
        var show = new Command("show", "An attribute's versions, their metrics and selected timesteps, and the HQS curve") { showName, version };
        examples[show] = ["sdd attributes show smiling", "sdd attributes show smiling --version 2", "sdd attributes show smiling --json"];
        show.Handle(tool, async (inv, ct) =>
        {
            var a = await inv.Client.Attributes.GetAsync(inv.Value(showName)!, ct);
            if (inv.Json) { inv.WriteJson(a); return ExitCodes.Ok; }
            Show(inv, a, inv.Value(version));
            return ExitCodes.Ok;
        });

        var pinName = new Argument<string>("NAME") { Description = "The attribute" };
        var pinVersion = new Argument<int>("VERSION") { Description = "A ready version: jobs from now on use it" };
        var pin = new Command("pin", "Make a ready version the active one (pin it, or roll back)") { pinName, pinVersion };
        examples[pin] = ["sdd attributes pin smiling 2", "sdd attributes pin smiling 1   # roll back"];
        pin.Handle(tool, async (inv, ct) =>
        {
            var a = await inv.Client.Attributes.SetActiveAsync(inv.Value(pinName)!, inv.Value(pinVersion), ct);
            if (inv.Json) inv.WriteJson(a);
            else inv.Out.MarkupLine($"[bold]{Display.Esc(a.Name)}[/]: v{a.ActiveVersion} is active; new jobs use it.");
            return ExitCodes.Ok;
        });

        attributes.Subcommands.Add(create);
        attributes.Subcommands.Add(list);
        attributes.Subcommands.Add(show);
        attributes.Subcommands.Add(pin);
        return attributes;
    }

    private static void Show(Invocation inv, ImageAttribute a, int? chosen)
    {
        inv.Out.MarkupLine($"[bold]{Display.Esc(a.Name)}[/]: edits towards '{Display.Esc(a.TargetAttribute ?? "?")}', teacher {a.TeacherId}" +
                           $"{(a.ActiveVersion is { } av ? $", active v{av}" : ", no active version")}{(a.Shared ? " (shared with you, read-only)" : a.Published ? " (published)" : "")}");
        if (a.Prompt is not null)
            inv.Out.MarkupLine($"prompt '{Display.Esc(a.Prompt)}'{(a.SourcePrompt is null ? "" : $", source prompt '{Display.Esc(a.SourcePrompt)}'")}");
        var table = Display.Table(["version", "state", "timesteps", .. MetricNames, "created"]);
        foreach (var v in a.Versions)
        {
            var row = new List<string>
            {
                $"v{v.Version}{(v.Version == a.ActiveVersion ? " *" : "")}",
                v.State switch { EditorState.Ready => "[green]ready[/]", EditorState.Failed => "[red]failed[/]", _ => "training" },
                v.SelectedTimesteps.Count == 0 ? "-" : string.Join(",", v.SelectedTimesteps),
            };
            row.AddRange(MetricNames.Select(m => Metric(v.Metrics, m)));
            row.Add(Display.When(v.CreatedAt));
            table.AddRow(row.ToArray());
        }
        inv.Out.Write(table);

        var shown = chosen is { } n ? a.Versions.FirstOrDefault(v => v.Version == n) ?? throw new ToolException($"'{a.Name}' has no version {n}.")
            : a.Active ?? a.Versions.LastOrDefault();
        if (shown is null || shown.Indicator.Count == 0)
        {
            inv.Out.MarkupLine("[grey]No HQS curve yet (the indicator runs at the start of a distillation).[/]");
            return;
        }
        var selected = shown.SelectedTimesteps.ToHashSet();
        var chart = new BarChart()
            .Width(Math.Min(90, inv.Out.Profile.Width))
            .Label($"HQS by timestep, v{shown.Version} (selected: {string.Join(", ", shown.SelectedTimesteps)})")
            .LeftAlignLabel()
            .UseValueFormatter(value => value.ToString("0.000", CultureInfo.InvariantCulture));
        foreach (var p in shown.Indicator.OrderBy(p => p.T))
            chart.AddItem($"t={p.T,3}{(selected.Contains(p.T) ? " *" : "  ")}", Math.Max(0, p.Hqs), selected.Contains(p.T) ? Color.Green : Color.Grey);
        inv.Out.WriteLine();
        inv.Out.Write(chart);
    }

    private static string Metric(JsonElement? metrics, string name) =>
        metrics is { ValueKind: JsonValueKind.Object } m && m.TryGetProperty(name, out var v) && v.ValueKind == JsonValueKind.Number
            ? v.GetDouble().ToString("0.###", CultureInfo.InvariantCulture) : "-";
}
