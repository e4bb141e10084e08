namespace Sdd.Tool;

/// <summary><c>sdd datasets upload|list</c>.</summary>
internal static class DatasetCommands
{
    public static Command Build(ToolContext tool, Dictionary<Command, string[]> examples)
    {
        var datasets = new Command("datasets", "Labeled image sets (labels.csv + images/) to train teachers and editors on");

        var path = new Argument<string>("DIR|ZIP") { Description = "A folder holding labels.csv and images/, or a zip of one" };
        var name = new Option<string>("--name") { Description = "The dataset's name (unique among yours)", Required = true, HelpName = "NAME" };
        var upload = new Command("upload", "Upload a dataset: a folder through an upload area (presigned PUTs straight to storage), a zip in one request") { path, name };
        examples[upload] = ["sdd datasets upload data/portraits32 --name portraits", "sdd datasets upload faces.zip --name faces --json"];
        upload.Handle(tool, async (inv, ct) =>
        {
            var source = inv.Value(path)!;
            var dataset = await UploadAsync(inv, source, inv.Value(name)!, ct);
            if (inv.Json) inv.WriteJson(dataset);
            else inv.Out.MarkupLine($"Dataset [bold]{Display.Esc(dataset.Name)}[/] {dataset.Id}: {dataset.ImageCount} images, attributes {Display.Esc(string.Join(", ", dataset.Attributes))}");
            return ExitCodes.Ok;
        });

        var list = new Command("list", "Your datasets");
        examples[list] = ["sdd datasets list", "sdd datasets list --json"];
        list.Handle(tool, async (inv, ct) =>
        {
            var all = await inv.Client.Datasets.ListAllAsync(ct).ToListAsync(ct);
            if (inv.Json) { inv.WriteJson(all); return ExitCodes.Ok; }
            var table = Display.Table("id", "name", "images", "attributes", "created");
            foreach (var d in all) table.AddRow(d.Id.ToString(), Display.Esc(d.Name), d.ImageCount.ToString(CultureInfo.InvariantCulture), Display.Esc(string.Join(", ", d.Attributes)), Display.When(d.CreatedAt));
            inv.Out.Write(table);
            return ExitCodes.Ok;
        });

        datasets.Subcommands.Add(upload);
        datasets.Subcommands.Add(list);
        return datasets;
    }

    private static async Task<Dataset> UploadAsync(Invocation inv, string source, string name, CancellationToken ct)
    {
        if (File.Exists(source))
        {
            if (!source.EndsWith(".zip", StringComparison.OrdinalIgnoreCase)) throw new ToolException($"{source} is not a .zip; give a zip or a folder.");
            inv.Note($"Uploading {Display.Esc(source)} ({Display.Bytes(new FileInfo(source).Length)})...");
            return await inv.Client.Datasets.UploadZipAsync(name, UploadFile.FromPath(source), ct);
        }
        if (!Directory.Exists(source)) throw new ToolException($"{source}: no such file or folder.");
        if (!File.Exists(Path.Combine(source, "labels.csv"))) throw new ToolException($"{source} holds no labels.csv (a dataset is labels.csv + images/).");
        var files = UploadFile.FromDirectory(source);
        var upload = await Display.WithProgressAsync(inv, "upload", report =>
            inv.Client.Uploads.UploadAsync(files, new InlineProgress<UploadProgress>(p =>
                report(p.Bytes, p.TotalBytes, $"{p.Files}/{p.TotalFiles} files, {Display.Bytes(p.Bytes)} of {Display.Bytes(p.TotalBytes)}")), ct));
        return await inv.Client.Datasets.RegisterAsync(new RegisterDataset(name, Upload: upload.Id), ct);
    }
}
