using Sdd.Demo;
using Sdd.Ml.Data;
using Sdd.Ml.Evaluation;
using Sdd.Ml.Portraits;
using Sdd.Ml.Torch;
using static TorchSharp.torch;

// ./sdd demo: drives the running services through the HTTP API from data set to edited photos (deploy/local/demo.sh).
var options = DemoOptions.Parse(args);
TorchRuntime.ConfigureThreads(1); // the services need the cores
var settings = SddSettings.FromEnvironment();
var api = new Uri(Environment.GetEnvironmentVariable("SDD_INGEST_URL") is { Length: > 0 } u ? u : "http://127.0.0.1:8080");
var adminKey = Environment.GetEnvironmentVariable("SDD_ADMIN_KEY") is { Length: > 0 } k ? k : "sdd-admin-local";
var stackDir = Environment.GetEnvironmentVariable("SDD_STACK_DIR") is { Length: > 0 } d ? d : ".stack";
var keyFile = Environment.GetEnvironmentVariable("SDD_DEMO_KEY_FILE") is { Length: > 0 } f ? f : Path.Combine(stackDir, "demo.key");
var stamp = DateTime.UtcNow.ToString("yyyyMMdd-HHmmss", CultureInfo.InvariantCulture);
var times = new List<(string Step, double Seconds)>();
var total = Stopwatch.StartNew();
Directory.CreateDirectory(options.Out);
void Say(string s) => Console.WriteLine(s);

try
{
    // The demo's key is kept (owner-only file) so a second run, and the user's own jobs after it, use the same owner.
    var (demoKey, reused) = await DemoKey.KeepAsync(api, adminKey, keyFile, $"demo-{stamp}");
    using var http = new HttpClient { Timeout = TimeSpan.FromMinutes(5) };
    using var client = new SddClient(http, new SddClientOptions { BaseAddress = api, ApiKey = demoKey, PollInterval = TimeSpan.FromMilliseconds(300) });
    var me = await client.Keys.GetMeAsync();
    Say($"{(reused ? "reusing" : "created")} the demo's API key '{me.Name}' (owner {me.Id}), kept in {keyFile}");
    using var store = new ObjectStore(settings.S3);

    // 1. The builtin teacher (shared/models, registered by Sdd.Ingest at start-up).
    var teacher = await client.Teachers.ListAllAsync().FirstOrDefaultAsync(t => t.Builtin && t.Name == options.Teacher)
        ?? throw new InvalidOperationException($"No builtin teacher '{options.Teacher}' is registered: Sdd.Ingest registers shared/models/latent128 (builtin) and shared/models/teacher with shared/models/judge (builtin-32, or builtin when latent128 is not shipped; on a registry whose builtin was already the 32 px teacher the latent one is builtin-128) at start-up (see its log).");
    int size = teacher.ImageSize;
    var o = options.For(latent: teacher.Kind == Sdd.Formats.Models.TeacherConfig.KindLatentDdpm);
    int steps = o.Steps!.Value;
    if (!teacher.Attributes.Contains(o.Attribute)) throw new InvalidOperationException($"The builtin teacher has no attribute '{o.Attribute}' ({string.Join(", ", teacher.Attributes)}).");
    Say($"builtin teacher {teacher.Id} ({size} px; {string.Join(", ", teacher.Attributes)})");

    // 2. A synthetic labeled data set, uploaded through the API's own grant (presigned PUTs into the key's upload area), registered.
    var sw = Stopwatch.StartNew();
    var local = Path.Combine(Path.GetTempPath(), $"sdd-demo-{stamp}");
    PortraitDataset.Write(local, o.Count, size, seed: 1, counterfactuals: false);
    var files = UploadFile.FromDirectory(local);
    var upload = await Bars.RunAsync("dataset", report => client.Uploads.UploadAsync(files,
        new InlineProgress<UploadProgress>(p => report(p.Files, p.TotalFiles, $"{p.Files}/{p.TotalFiles} files uploaded"))));
    Directory.Delete(local, recursive: true);
    var dataset = await client.Datasets.RegisterAsync(new RegisterDataset($"demo-portraits-{stamp}", Upload: upload.Id));
    times.Add(("data set: render, upload, register", sw.Elapsed.TotalSeconds));
    Say($"data set {dataset.Name}: {dataset.ImageCount} portraits at {size} px in s3://{settings.S3.DatasetsBucket}/{upload.Prefix} ({sw.Elapsed.TotalSeconds:0.0} s)");

    // 3. The attribute editor: HQS timestep selection, then distillation, in chunks on the distill worker.
    sw.Restart();
    double scale = o.Scale!.Value;
    var distillSettings = new DistillSettings(Steps: steps, Mode: "delta", Scale: scale, Lambda: 1, Timesteps: "hqs");
    AttributeAccepted accepted;
    try { accepted = await client.Attributes.CreateAsync(new CreateAttribute(o.Attribute, teacher.Id, o.Attribute, dataset.Id, distillSettings)); }
    catch (SddApiException e) when (e.Status == 409) // a re-run on the same stack (same key) finds its attribute and adds a version
    {
        accepted = await client.Attributes.AddVersionAsync(o.Attribute, new NewEditorVersion(distillSettings));
    }
    var runId = accepted.RunId;
    int version = accepted.Version;
    Say($"attribute {o.Attribute} v{version}: run {runId}, {steps} steps (delta guidance, s={scale.ToString(CultureInfo.InvariantCulture)}, lambda=1, HQS timesteps)");
    var run = await Bars.RunAsync("distill", report => client.Runs.WaitAsync(runId, new InlineProgress<Run>(r =>
        report(r.Step, steps, r.State == RunState.Running && r.Step == 0 ? "HQS indicator, first chunk" : SddJson.Name(r.State)))));
    if (run.State is RunState.Failed or RunState.Cancelled) throw new InvalidOperationException($"The distillation {SddJson.Name(run.State)}: {run.Error}");
    times.Add(("distillation (HQS + training + evaluation)", sw.Elapsed.TotalSeconds));
    // Published by the admin, so every key of this stack may submit jobs with the demo's editor (read-only).
    try
    {
        using var admin = new SddClient(api, adminKey);
        await admin.Attributes.PublishAsync(o.Attribute, owner: me.Id);
        Say($"attribute {o.Attribute} published: every key on this stack may use it");
    }
    catch (HttpRequestException e) when (e.StatusCode is System.Net.HttpStatusCode.Conflict or System.Net.HttpStatusCode.Unauthorized)
    {
        Say($"attribute {o.Attribute} not published ({e.Message}); it stays the demo key's own");
    }
    var attribute = await client.Attributes.GetAsync(o.Attribute);
    var editor = attribute.Versions.Single(v => v.Version == version);
    Say($"editor ready in {sw.Elapsed.TotalSeconds:0} s; HQS-selected timesteps {string.Join(", ", editor.SelectedTimesteps)}; metrics {editor.Metrics}");
    var editorPrefix = run.CheckpointKey!;
    foreach (var (key, file) in new[] { ("grid.png", "editor-grid.png"), ("curve.png", "hqs-curve.png") })
        if (await store.StatAsync(settings.S3.ModelsBucket, editorPrefix + key) is not null)
            await File.WriteAllBytesAsync(Path.Combine(o.Out, file), await store.GetBytesAsync(settings.S3.ModelsBucket, editorPrefix + key, 64L << 20));

    // 4. A job of held-out portraits lacking the attribute (a seed no training used), with their true counterfactuals.
    using var held = HeldOutPortraits.Render(o.Attribute, present: false, o.Images, size);
    var inputs = Enumerable.Range(0, o.Images).Select(i => ($"held-out-{i:D4}.png", ImageCodec.EncodePng(held.Images[i]))).ToList();
    sw.Restart();
    var job = await client.Jobs.SubmitFilesAsync(o.Attribute, inputs.Select(i => UploadFile.FromBytes(i.Item1, i.Item2)).ToList());
    var jobId = job.JobId;
    Say($"job {jobId}: {o.Images} images submitted in {sw.Elapsed.TotalSeconds:0.0} s");
    var status = await Bars.RunAsync("edit", report => client.Jobs.WaitAsync(jobId, new InlineProgress<JobStatus>(s =>
        report(s.Processed, o.Images, $"done {s.Counts.Done} failed {s.Counts.Failed}"))));
    double jobSeconds = sw.Elapsed.TotalSeconds;
    times.Add(("edit job: submit to completed", jobSeconds));

    // 5. Results: download, contact sheet, fidelity to the source and to the true counterfactual.
    sw.Restart();
    var results = await client.Jobs.ListAllResultsAsync(jobId).ToListAsync();
    var resultsDir = Path.Combine(o.Out, "results");
    if (Directory.Exists(resultsDir)) Directory.Delete(resultsDir, recursive: true);
    Directory.CreateDirectory(resultsDir);
    var outputs = new Dictionary<string, byte[]>();
    await Parallel.ForEachAsync(results, new ParallelOptions { MaxDegreeOfParallelism = 16 }, async (r, ct) =>
    {
        var bytes = await client.Jobs.ReadResultAsync(r, ct: ct);
        var extension = Path.GetExtension(new Uri(r.Url).AbsolutePath) is { Length: > 0 } e ? e : ".png"; // outputs keep their input's format
        await File.WriteAllBytesAsync(Path.Combine(resultsDir, Path.GetFileNameWithoutExtension(r.Name) + extension), bytes, ct);
        lock (outputs) outputs[r.Name] = bytes;
    });
    times.Add(("download results", sw.Elapsed.TotalSeconds));
    var report = Report.Fidelity(held, inputs.Select(i => i.Item1).ToList(), outputs);
    Report.ContactSheet(held.Images, inputs.Select(i => i.Item1).ToList(), outputs, Path.Combine(o.Out, "contact-sheet.png"));
    Report.Summary(Path.Combine(o.Out, "summary.md"), new Report.Facts(
        teacher, dataset, o, version, runId, run, editor, jobId, status, jobSeconds, report, times, total.Elapsed.TotalSeconds, settings, upload.Prefix));
    Say($"wrote {o.Out}/contact-sheet.png, {o.Out}/summary.md and {results.Count} results in {resultsDir} (total {total.Elapsed.TotalMinutes:0.0} min)");
    return 0;
}
catch (Exception e) when (e is HttpRequestException or InvalidOperationException or IOException or TaskCanceledException)
{
    Console.Error.WriteLine($"demo: {e.Message}");
    return 1;
}

/// <summary>What the demo makes: sizes of the data set, the distillation and the job; steps and scale null until <see cref="For"/>.</summary>
public sealed record DemoOptions(string Out, int Count, int? Steps, int Images, string Attribute, double? Scale, string Teacher)
{
    /// <summary>
    /// The guidance scale and steps when --scale and --steps are not given, by the teacher's kind. Fixed scales, because
    /// the automatic search (probe runs on validation images) would cost the demo about twice its distillation: 10 on the
    /// 32 px teacher, what the demo has always used (the search chose 8.4 for smiling there, docs/method.md); 20 on the 128 px latent
    /// teacher, what the search chose for both smiling and eyeglasses (s = 10 to 16.8 edited none of the validation images
    /// after 100 steps, 20 edited 96 and 97 %). Steps: 300 at 32 px; fewer at 128 px, where a step costs about 8 times as
    /// much, so the demo stays within 15 minutes (docs/operations.md, Demo).
    /// </summary>
    public const double PixelScale = 10, LatentScale = 20;
    public const int PixelSteps = 300, LatentSteps = 150;

    /// <summary>These options with the steps and scale for a latent or a pixel teacher filled in where not given.</summary>
    public DemoOptions For(bool latent) => this with
    {
        Steps = Steps ?? (latent ? LatentSteps : PixelSteps),
        Scale = Scale ?? (latent ? LatentScale : PixelScale),
    };

    public static DemoOptions Parse(string[] args)
    {
        string Arg(string name, string fallback)
        {
            int i = Array.IndexOf(args, "--" + name);
            return i >= 0 && i + 1 < args.Length ? args[i + 1] : fallback;
        }
        int Int(string name, int fallback, int min) =>
            int.TryParse(Arg(name, fallback.ToString(CultureInfo.InvariantCulture)), out var v) && v >= min ? v : throw new ArgumentException($"--{name} takes a number of at least {min}");
        return new DemoOptions(Arg("out", "out"), Int("count", 2000, 20), Arg("steps", "") is { Length: > 0 } ? Int("steps", 0, 1) : null, Int("images", 200, 1), Arg("attribute", "smiling"),
            Arg("scale", "") is { Length: > 0 } sc ? double.TryParse(sc, NumberStyles.Float, CultureInfo.InvariantCulture, out var v) && v > 0 && double.IsFinite(v) ? v : throw new ArgumentException("--scale takes a positive number")
            : null, Arg("teacher", "builtin"));
    }
}
