namespace Sdd.Tool;

/// <summary><c>sdd teachers train|import|list</c>.</summary>
internal static class TeacherCommands
{
    public static Command Build(ToolContext tool, Dictionary<Command, string[]> examples)
    {
        var teachers = new Command("teachers", "Diffusion models trained on a dataset, the teachers editors are distilled from");

        var dataset = new Option<string>("--dataset") { Description = "The dataset to train on, by name or id", Required = true, HelpName = "NAME|ID" };
        var steps = new Option<int?>("--steps") { Description = "Training steps (default 2000)", HelpName = "N" };
        var size = new Option<int?>("--image-size") { Description = "Image side in pixels, a multiple of 8 (default 32)", HelpName = "PX" };
        var wait = new Option<bool>("--wait") { Description = "Follow the training run to its end" };
        var train = new Command("train", "Train a teacher on one of your datasets (a run on the distill workers)") { dataset, steps, size, wait };
        examples[train] = ["sdd teachers train --dataset portraits --steps 4000 --wait", "sdd teachers train --dataset 3f2a… --json"];
        train.Handle(tool, async (inv, ct) =>
        {
            var set = await Lookup.DatasetAsync(inv.Client, inv.Value(dataset)!, ct);
            var accepted = await inv.Client.Teachers.TrainAsync(new TrainTeacher(set.Id, inv.Value(steps), inv.Value(size)), ct);
            if (!inv.Json) inv.Out.MarkupLine($"Teacher {accepted.TeacherId} training on [bold]{Display.Esc(set.Name)}[/]: run {accepted.RunId}");
            if (inv.Value(wait)) return await RunCommands.WatchAsync(inv, accepted.RunId, ct);
            if (inv.Json) inv.WriteJson(accepted);
            else inv.Note($"Follow it: sdd runs watch {accepted.RunId}");
            return ExitCodes.Ok;
        });

        var path = new Argument<string>("PATH") { Description = "A diffusers folder (model_index.json, unet/, vae/, text_encoder/, tokenizer/, scheduler/) or one original .safetensors file with tokenizer/ beside it" };
        var importName = new Option<string>("--name") { Description = "The teacher's name (default: the folder's or file's name)", HelpName = "NAME" };
        var importWait = new Option<bool>("--wait") { Description = "Follow the import run (every key and shape checked) to its end" };
        var import = new Command("import", "Register your Stable Diffusion 1.x/2.x weights as a teacher of text-prompt attributes (uploaded through presigned PUTs; pickle files are never sent)") { path, importName, importWait };
        examples[import] =
        [
            "sdd teachers import ~/models/stable-diffusion-v1-5 --wait",
            "sdd teachers import ~/models/v1-5-pruned-emaonly.safetensors --name sd15",
        ];
        import.Handle(tool, async (inv, ct) =>
        {
            var source = inv.Value(path)!;
            var teacherName = inv.Value(importName) ?? Path.GetFileNameWithoutExtension(Path.TrimEndingDirectorySeparator(Path.GetFullPath(source)));
            var accepted = await inv.Client.Teachers.ImportLocalAsync(teacherName, source, inv.Client.Uploads, ct: ct);
            if (!inv.Json) inv.Out.MarkupLine($"Teacher {accepted.TeacherId} ([bold]{Display.Esc(teacherName)}[/]) importing: run {accepted.RunId}");
            if (inv.Value(importWait)) return await RunCommands.WatchAsync(inv, accepted.RunId, ct);
            if (inv.Json) inv.WriteJson(accepted);
            else inv.Note($"Follow it: sdd runs watch {accepted.RunId}; then sdd attributes create NAME --teacher {teacherName} --prompt \"a photo of …\" --dataset PHOTOS");
            return ExitCodes.Ok;
        });

        var list = new Command("list", "Your teachers and the published ones (the builtin among them)");
        examples[list] = ["sdd teachers list", "sdd teachers list --json"];
        list.Handle(tool, async (inv, ct) =>
        {
            var all = await inv.Client.Teachers.ListAllAsync(ct).ToListAsync(ct);
            if (inv.Json) { inv.WriteJson(all); return ExitCodes.Ok; }
            var table = Display.Table("id", "name", "kind", "state", "size", "attributes", "");
            foreach (var t in all)
                table.AddRow(t.Id.ToString(), Display.Esc(t.Name), Display.Esc(t.Kind), SddJson.Name(t.State), $"{t.ImageSize} px",
                    Display.Esc(t.Kind == "stable-diffusion" ? "(text prompts)" : string.Join(", ", t.Attributes)),
                    string.Join(' ', new[] { t.Builtin ? "builtin" : null, t.Shared ? "shared" : null, t.Published && !t.Shared ? "published" : null }.OfType<string>()));
            inv.Out.Write(table);
            return ExitCodes.Ok;
        });

        teachers.Subcommands.Add(train);
        teachers.Subcommands.Add(import);
        teachers.Subcommands.Add(list);
        return teachers;
    }
}
