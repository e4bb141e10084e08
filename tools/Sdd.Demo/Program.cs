using Sdd.Demo;
using Sdd.Ml.Data;
using Sdd.Ml.Evaluation;
using Sdd.Ml.Portraits;
using Sdd.Ml.Torch;
using static TorchSharp.torch;

// ./sdd demo: drives the running services through the HTTP API from data set to edited photos (deploy/local/demo.sh).
var o = DemoOptions.Parse(args);
TorchRuntime.ConfigureThreads(1); // the services need the cores
var settings = SddSettings.FromEnvironment();
var api = new Uri(Environment.GetEnvironmentVariable("SDD_INGEST_URL") is { Length: > 0 } u ? u : "http://127.0.0.1:8080");
var adminKey = Environment.GetEnvironmentVariable("SDD_ADMIN_KEY") is { Length: > 0 } k ? k : "sdd-admin-local";
var stackDir = Environment.GetEnvironmentVariable("SDD_STACK_DIR") is { Length: > 0 } d ? d : ".stack";
var keyFile = Environment.GetEnvironmentVariable("SDD_DEMO_KEY_FILE") is { Length: > 0 } f ? f : Path.Combine(stackDir, "demo.key");
var stamp = DateTime.UtcNow.ToString("yyyyMMdd-HHmmss", CultureInfo.InvariantCulture);
var times = new List<(string Step, double Seconds)>();
var total = Stopwatch.StartNew();
Directory.CreateDirectory(o.Out);
void Say(string s) => Console.WriteLine(s);

try
{
    // The demo's key is kept (owner-only file) so a second run, and the user's own jobs after it, use the same owner.
    var (demoKey, reused) = await DemoClient.KeepKeyAsync(api, adminKey, keyFile, $"demo-{stamp}");
    using var client = new DemoClient(api, demoKey);
    var me = await client.GetAsync("/v1/keys/me");
    Say($"{(reused ? "reusing" : "created")} the demo's API key '{me.GetProperty("name")}' (owner {me.GetProperty("id")}), kept in {keyFile}");
    using var store = new ObjectStore(settings.S3);

    // 1. The builtin teacher (shared/models, registered by Sdd.Ingest at start-up).
    var teacher = (await client.GetAsync("/v1/teachers")).EnumerateArray().FirstOrDefault(t => t.GetProperty("builtin").GetBoolean());
    if (teacher.ValueKind != JsonValueKind.Object)
        throw new InvalidOperationException("No builtin teacher is registered: Sdd.Ingest registers shared/models/teacher and shared/models/judge at start-up (see its log).");
    int size = teacher.GetProperty("imageSize").GetInt32();
    var teacherAttributes = teacher.GetProperty("attributes").EnumerateArray().Select(a => a.GetString()!).ToList();
    if (!teacherAttributes.Contains(o.Attribute)) throw new InvalidOperationException($"The builtin teacher has no attribute '{o.Attribute}' ({string.Join(", ", teacherAttributes)}).");
    Say($"builtin teacher {teacher.GetProperty("id")} ({size} px; {string.Join(", ", teacherAttributes)})");

    // 2. A synthetic labeled data set, uploaded through the API's own grant (presigned PUTs into the key's upload area), registered.
    var sw = Stopwatch.StartNew();
    var local = Path.Combine(Path.GetTempPath(), $"sdd-demo-{stamp}");
    PortraitDataset.Write(local, o.Count, size, seed: 1, counterfactuals: false);
    var files = Directory.EnumerateFiles(local, "*", SearchOption.AllDirectories)
        .Select(f => (Path: f, Name: Path.GetRelativePath(local, f).Replace('\\', '/'))).ToList();
    var upload = new ProgressBar("dataset");
    var (uploadId, prefix) = await client.UploadAsync(files, (done, count) => upload.Report(done, count, "files uploaded"));
    Directory.Delete(local, recursive: true);
    var dataset = await client.PostAsync("/v1/datasets", new { name = $"demo-portraits-{stamp}", upload = uploadId });
    times.Add(("data set: render, upload, register", sw.Elapsed.TotalSeconds));
    Say($"data set {dataset.GetProperty("name")}: {dataset.GetProperty("imageCount")} portraits at {size} px in s3://{settings.S3.DatasetsBucket}/{prefix} ({sw.Elapsed.TotalSeconds:0.0} s)");

    // 3. The attribute editor: HQS timestep selection, then distillation, in chunks on the distill worker.
    sw.Restart();
    var distillSettings = new { steps = o.Steps, mode = "delta", scale = 10, lambda = 1, timesteps = "hqs" };
    // A re-run on the same stack (same key) finds its attribute and adds a version.
    var accepted = await client.TryPostAsync("/v1/attributes", new { name = o.Attribute, teacherId = teacher.GetProperty("id").GetGuid(), targetAttribute = o.Attribute, datasetId = dataset.GetProperty("id").GetGuid(), settings = distillSettings })
                   ?? await client.PostAsync($"/v1/attributes/{o.Attribute}/versions", new { settings = distillSettings });
    var runId = accepted.GetProperty("runId").GetGuid();
    int version = accepted.GetProperty("version").GetInt32();
    Say($"attribute {o.Attribute} v{version}: run {runId}, {o.Steps} steps (delta guidance, s=10, lambda=1, HQS timesteps)");
    var bar = new ProgressBar("distill");
    JsonElement run;
    while (true)
    {
        run = await client.GetAsync($"/v1/runs/{runId}");
        var state = run.GetProperty("state").GetString();
        int step = run.GetProperty("step").GetInt32();
        bar.Report(step, o.Steps, state == "running" && step == 0 ? "HQS indicator, first chunk" : state!);
        if (state is "succeeded" or "failed") break;
        await Task.Delay(1000);
    }
    bar.Finish();
    if (run.GetProperty("state").GetString() == "failed") throw new InvalidOperationException($"The distillation failed: {run.GetProperty("error")}");
    times.Add(("distillation (HQS + training + evaluation)", sw.Elapsed.TotalSeconds));
    // Published by the admin, so every key of this stack may submit jobs with the demo's editor (read-only).
    try
    {
        using var admin = new DemoClient(api, adminKey);
        await admin.PostAsync($"/v1/attributes/{o.Attribute}/publish?owner={me.GetProperty("id").GetString()}", new { });
        Say($"attribute {o.Attribute} published: every key on this stack may use it");
    }
    catch (HttpRequestException e) when (e.StatusCode is System.Net.HttpStatusCode.Conflict or System.Net.HttpStatusCode.Unauthorized)
    {
        Say($"attribute {o.Attribute} not published ({e.Message}); it stays the demo key's own");
    }
    var attribute = await client.GetAsync($"/v1/attributes/{o.Attribute}");
    var editor = attribute.GetProperty("versions").EnumerateArray().Single(v => v.GetProperty("version").GetInt32() == version);
    var selected = editor.GetProperty("selectedTimesteps").EnumerateArray().Select(t => t.GetInt32()).ToArray();
    Say($"editor ready in {sw.Elapsed.TotalSeconds:0} s; HQS-selected timesteps {string.Join(", ", selected)}; metrics {editor.GetProperty("metrics")}");
    var editorPrefix = run.GetProperty("checkpointKey").GetString()!;
    foreach (var (key, file) in new[] { ("grid.png", "editor-grid.png"), ("curve.png", "hqs-curve.png") })
        if (await store.StatAsync(settings.S3.ModelsBucket, editorPrefix + key) is not null)
            await File.WriteAllBytesAsync(Path.Combine(o.Out, file), await store.GetBytesAsync(settings.S3.ModelsBucket, editorPrefix + key));

    // 4. A job of held-out portraits lacking the attribute (a seed no training used), with their true counterfactuals.
    using var held = HeldOutPortraits.Render(o.Attribute, present: false, o.Images, size);
    var inputs = Enumerable.Range(0, o.Images).Select(i => ($"held-out-{i:D4}.png", ImageCodec.EncodePng(held.Images[i]))).ToList();
    sw.Restart();
    var job = await client.SubmitFilesAsync(o.Attribute, inputs);
    var jobId = job.GetProperty("jobId").GetGuid();
    Say($"job {jobId}: {o.Images} images submitted in {sw.Elapsed.TotalSeconds:0.0} s");
    var jobBar = new ProgressBar("edit");
    JsonElement status;
    while (true)
    {
        status = await client.GetAsync($"/v1/jobs/{jobId}");
        var c = status.GetProperty("counts");
        int finished = c.GetProperty("done").GetInt32() + c.GetProperty("failed").GetInt32();
        jobBar.Report(finished, o.Images, $"done {c.GetProperty("done")} failed {c.GetProperty("failed")}");
        if (status.GetProperty("state").GetString() is "completed" or "cancelled") break;
        await Task.Delay(300);
    }
    jobBar.Finish();
    double jobSeconds = sw.Elapsed.TotalSeconds;
    times.Add(("edit job: submit to completed", jobSeconds));

    // 5. Results: download, contact sheet, fidelity to the source and to the true counterfactual.
    sw.Restart();
    var results = (await client.GetAsync($"/v1/jobs/{jobId}/results")).GetProperty("items").EnumerateArray()
        .Select(r => (Name: r.GetProperty("name").GetString()!, Url: r.GetProperty("url").GetString()!)).ToList();
    var resultsDir = Path.Combine(o.Out, "results");
    if (Directory.Exists(resultsDir)) Directory.Delete(resultsDir, recursive: true);
    Directory.CreateDirectory(resultsDir);
    var outputs = new Dictionary<string, byte[]>();
    await Parallel.ForEachAsync(results, new ParallelOptions { MaxDegreeOfParallelism = 16 }, async (r, _) =>
    {
        var bytes = await client.DownloadAsync(r.Url);
        await File.WriteAllBytesAsync(Path.Combine(resultsDir, Path.GetFileNameWithoutExtension(r.Name) + ".png"), bytes);
        lock (outputs) outputs[r.Name] = bytes;
    });
    times.Add(("download results", sw.Elapsed.TotalSeconds));
    var report = Report.Fidelity(held, inputs.Select(i => i.Item1).ToList(), outputs);
    Report.ContactSheet(held.Images, inputs.Select(i => i.Item1).ToList(), outputs, Path.Combine(o.Out, "contact-sheet.png"));
    Report.Summary(Path.Combine(o.Out, "summary.md"), new Report.Facts(
        teacher, dataset, o, version, runId, run, editor, jobId, status, jobSeconds, report, times, total.Elapsed.TotalSeconds, settings, prefix));
    Say($"wrote {o.Out}/contact-sheet.png, {o.Out}/summary.md and {results.Count} results in {resultsDir} (total {total.Elapsed.TotalMinutes:0.0} min)");
    return 0;
}
catch (Exception e) when (e is HttpRequestException or InvalidOperationException or IOException or TaskCanceledException)
{
    Console.Error.WriteLine($"demo: {e.Message}");
    return 1;
}

/// <summary>What the demo makes: sizes of the data set, the distillation and the job.</summary>
public sealed record DemoOptions(string Out, int Count, int Steps, int Images, string Attribute)
{
    public static DemoOptions Parse(string[] args)
    {
        string Arg(string name, string fallback)
        {
            int i = Array.IndexOf(args, "--" + name);
            return i >= 0 && i + 1 < args.Length ? args[i + 1] : fallback;
        }
        int Int(string name, int fallback, int min) =>
            int.TryParse(Arg(name, fallback.ToString(CultureInfo.InvariantCulture)), out var v) && v >= min ? v : throw new ArgumentException($"--{name} takes a number of at least {min}");
        return new DemoOptions(Arg("out", "out"), Int("count", 2000, 20), Int("steps", 300, 1), Int("images", 200, 1), Arg("attribute", "smiling"));
    }
}
