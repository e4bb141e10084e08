using System.Net;
using System.Net.Http.Headers;
using System.Net.Sockets;
using System.Text;
using Npgsql;
using SixLabors.ImageSharp;
using SixLabors.ImageSharp.PixelFormats;
using Sdd.Ml.Data;
using Sdd.Ml.Judging;
using Sdd.Ml.Portraits;
using Sdd.Ml.Procedures;
using Sdd.Ml.Torch;

namespace Sdd.EndToEnd.Tests;

[CollectionDefinition(Name)]
public sealed class EndToEndCollection : ICollectionFixture<SddSystem>
{
    public const string Name = "end-to-end";
}

/// <summary>
/// The whole system for one test run: Sdd.Ingest, Sdd.Distill and Sdd.Edit started from their build output as real
/// processes on the stack's servers, isolated by a database, a RabbitMQ virtual host and buckets of their own, with a
/// 16 px teacher and judge trained here in seconds as the builtin teacher. Everything is removed at the end.
/// </summary>
public sealed class SddSystem : IAsyncLifetime
{
    public const int ImageSize = 16;
    public static readonly SddSettings Stack = SddSettings.FromEnvironment();

    public string RunName { get; } = $"e2e{Guid.NewGuid():N}"[..15];
    public SddSettings Settings { get; }
    public string Root { get; }
    public string WorkDir { get; }
    public Uri ApiUrl { get; }
    public string AdminKey { get; } = "e2e-admin-" + Guid.NewGuid().ToString("N")[..8];
    public ObjectStore Store { get; }
    public ServiceProcess Ingest { get; private set; } = null!;
    public ServiceProcess Distill { get; private set; } = null!;
    public ServiceProcess Edit { get; private set; } = null!;
    public SddClient Api { get; private set; } = null!;
    /// <summary>The key behind <see cref="Api"/> (owner <see cref="Owner"/>), for clients that log in with it (the sdd command).</summary>
    public string ApiKey { get; private set; } = null!;
    /// <summary>The owner id of <see cref="Api"/>'s key (the "e2e" client): its objects live under tenants/&lt;Owner&gt;/.</summary>
    public string Owner { get; private set; } = null!;
    public Guid TeacherId { get; private set; }
    /// <summary>The SDD_* variables the services run with (servers, buckets, keys), for other processes of this system.</summary>
    public IReadOnlyDictionary<string, string> Environment { get; private set; } = new Dictionary<string, string>();
    /// <summary>What the services reached for beyond this machine, from their start on.</summary>
    public OutboundWatch Outbound { get; private set; } = null!;
    /// <summary>The spans every service of this system exported (OTLP over HTTP to a receiver in this process).</summary>
    public OtlpCollector Traces { get; } = new();

    private readonly SemaphoreSlim _gate = new(1, 1);
    private Guid? _datasetId;
    private (Guid RunId, Guid VersionId)? _smiling;

    public SddSystem()
    {
        Settings = Stack with
        {
            RabbitMq = Stack.RabbitMq with { VirtualHost = RunName },
            Postgres = Stack.Postgres with { Database = "sdd_" + RunName },
            S3 = Stack.S3 with { DatasetsBucket = RunName + "-datasets", ModelsBucket = RunName + "-models", JobsBucket = RunName + "-jobs" },
        };
        Root = FindRoot();
        WorkDir = Path.Combine(Path.GetTempPath(), "sdd-" + RunName);
        ApiUrl = new Uri($"http://127.0.0.1:{FreePort()}");
        Store = new ObjectStore(Settings.S3);
    }

    public async Task InitializeAsync()
    {
        Directory.CreateDirectory(WorkDir);
        TorchRuntime.ConfigureThreads(1);
        await CreateVirtualHostAsync();
        await Task.Run(TrainTinyModels);

        var env = new Dictionary<string, string>
        {
            ["SDD_RABBITMQ_HOST"] = Settings.RabbitMq.Host, ["SDD_RABBITMQ_PORT"] = Settings.RabbitMq.Port.ToString(),
            ["SDD_RABBITMQ_MANAGEMENT_PORT"] = Settings.RabbitMq.ManagementPort.ToString(),
            ["SDD_RABBITMQ_USER"] = Settings.RabbitMq.User, ["SDD_RABBITMQ_PASSWORD"] = Settings.RabbitMq.Password,
            ["SDD_RABBITMQ_VHOST"] = Settings.RabbitMq.VirtualHost,
            ["SDD_POSTGRES_HOST"] = Settings.Postgres.Host, ["SDD_POSTGRES_PORT"] = Settings.Postgres.Port.ToString(),
            ["SDD_POSTGRES_USER"] = Settings.Postgres.User, ["SDD_POSTGRES_PASSWORD"] = Settings.Postgres.Password,
            ["SDD_POSTGRES_DB"] = Settings.Postgres.Database,
            ["SDD_S3_ENDPOINT"] = Settings.S3.Endpoint.ToString(), ["SDD_S3_ACCESS_KEY"] = Settings.S3.AccessKey,
            ["SDD_S3_SECRET_KEY"] = Settings.S3.SecretKey, ["SDD_S3_REGION"] = Settings.S3.Region,
            ["SDD_S3_BUCKET_DATASETS"] = Settings.S3.DatasetsBucket, ["SDD_S3_BUCKET_MODELS"] = Settings.S3.ModelsBucket,
            ["SDD_S3_BUCKET_JOBS"] = Settings.S3.JobsBucket,
            ["SDD_HOME"] = Path.Combine(WorkDir, "home"),
            ["SDD_INGEST_URL"] = ApiUrl.ToString().TrimEnd('/'),
            ["SDD_ADMIN_KEY"] = AdminKey,
            ["SDD_WEBHOOK_ALLOW"] = "127.0.0.1", // the tests' webhook receivers listen on loopback
            ["SDD_WORK_DIR"] = Path.Combine(WorkDir, "work"),
            ["SDD_TORCH_THREADS"] = "1",
            ["SDD_DISTILL_CHUNK_STEPS"] = "10",
            ["SDD_HEARTBEAT_SECONDS"] = "2", // the run lease: 3 heartbeats, 6 s
            ["SDD_RUN_STALE_SECONDS"] = "20",
            ["SDD_RUN_SWEEP_SECONDS"] = "2",
            ["SDD_EVAL_IMAGES"] = "16",
            ["SDD_RENDER_IMAGES"] = "200",
            ["SDD_INDICATOR_SAMPLES"] = "8",
            ["SDD_JUDGE_STEPS"] = "30",
            ["SDD_EDIT_BATCH_SIZE"] = FaultScale.Full ? "32" : "5", // full size: the batch of 32 photos
            ["SDD_EDIT_CONCURRENCY"] = "1",
            ["SDD_EDIT_MEMORY_MB"] = "2048", // small enough that a batch of large photos has to be split
            ["SDD_DISPATCH_SWEEP_SECONDS"] = "2",
            ["SDD_RATE_PER_MINUTE"] = "100000", // tests poll fast; the limit has its own tests
            ["SDD_MAX_ACTIVE_JOBS"] = "1000",
            ["SDD_MAX_ACTIVE_RUNS"] = "1000",
            ["SDD_MAX_INPUT_BYTES"] = "2000000", // small, so the hostile tests can exceed it cheaply
            ["SDD_DISPATCH_GRACE_SECONDS"] = "5",
            ["Logging__LogLevel__Microsoft.EntityFrameworkCore"] = "Warning",
            ["Logging__LogLevel__Microsoft.AspNetCore"] = "Warning",
            ["DOTNET_gcServer"] = "0",
        };
        Outbound = new OutboundWatch(() => [Ingest?.Pid, Distill?.Pid, Edit?.Pid]);
        foreach (var (k, v) in Outbound.ProxyEnvironment()) env[k] = v;
        foreach (var (k, v) in Traces.Environment()) env[k] = v; // every service exports its spans here, as to a collector
        Environment = env;
        var logs = Path.Combine(WorkDir, "logs");
        Directory.CreateDirectory(logs);
        Ingest = new ServiceProcess("Sdd.Ingest", ServiceDll("Sdd.Ingest"), env, logs);
        Distill = new ServiceProcess("Sdd.Distill", ServiceDll("Sdd.Distill"), env, logs);
        Edit = new ServiceProcess("Sdd.Edit", ServiceDll("Sdd.Edit"), env, logs);
        // Ingest first: it migrates the database and registers the builtin teacher.
        Ingest.Start();
        await WaitHealthyAsync(TimeSpan.FromSeconds(120));
        Distill.Start();
        Edit.Start();
        await Task.WhenAll(
            Distill.WaitForLineAsync(BusStarted, TimeSpan.FromSeconds(120)),
            Edit.WaitForLineAsync(BusStarted, TimeSpan.FromSeconds(120)));

        using var admin = Client(AdminKey);
        var created = await admin.Keys.CreateAsync("e2e");
        Api = Client(created.Key);
        ApiKey = created.Key;
        Owner = created.Id.ToString();
        TeacherId = (await Api.Teachers.ListAllAsync().SingleAsync(t => t.Builtin)).Id;
    }

    /// <summary>A client of this system's API with <paramref name="key"/> (60 s a try).</summary>
    public SddClient Client(string key) => new(new SddClientOptions { BaseAddress = ApiUrl, ApiKey = key, Timeout = TimeSpan.FromSeconds(60) });

    public static readonly System.Text.RegularExpressions.Regex BusStarted = new("Bus started");

    /// <summary>
    /// Starts another distill worker on this system (its own work folder and log), with <paramref name="overrides"/> on
    /// top of the services' settings, and waits until it consumes. Dispose it when done (kill -9).
    /// </summary>
    public async Task<ServiceProcess> StartDistillWorkerAsync(string name, IReadOnlyDictionary<string, string>? overrides = null)
    {
        var env = new Dictionary<string, string>(Environment) { ["SDD_WORK_DIR"] = Path.Combine(WorkDir, "work-" + name) };
        foreach (var (k, v) in overrides ?? new Dictionary<string, string>()) env[k] = v;
        var worker = new ServiceProcess(name, ServiceDll("Sdd.Distill"), env, Path.Combine(WorkDir, "logs"));
        lock (_extra) _extra.Add(worker);
        worker.Start();
        await worker.WaitForLineAsync(BusStarted, TimeSpan.FromSeconds(120));
        return worker;
    }

    private readonly List<ServiceProcess> _extra = [];

    /// <summary>Restarts a killed worker and waits until it consumes again.</summary>
    public async Task RestartAsync(ServiceProcess service)
    {
        service.Start();
        await service.WaitForLineAsync(BusStarted, TimeSpan.FromSeconds(120));
    }

    private async Task WaitHealthyAsync(TimeSpan timeout)
    {
        using var http = new HttpClient { BaseAddress = ApiUrl, Timeout = TimeSpan.FromSeconds(10) };
        var deadline = DateTime.UtcNow + timeout;
        while (DateTime.UtcNow < deadline)
        {
            try { if ((await http.GetAsync("/healthz")).StatusCode == HttpStatusCode.OK) return; }
            catch (HttpRequestException) { }
            if (Ingest.Pid is null) throw new InvalidOperationException($"Sdd.Ingest exited:\n{Ingest.Tail()}");
            await Task.Delay(250);
        }
        throw new TimeoutException($"Sdd.Ingest not healthy in {timeout.TotalSeconds:0} s:\n{Ingest.Tail()}");
    }

    /// <summary>The labeled portraits (200 at 16 px) uploaded through the API's upload area, registered once.</summary>
    public async Task<Guid> DatasetAsync()
    {
        await _gate.WaitAsync();
        try
        {
            if (_datasetId is { } id) return id;
            var dir = Path.Combine(WorkDir, "portraits");
            var upload = await Api.Uploads.UploadAsync(UploadFile.FromDirectory(dir));
            var dataset = await Api.Datasets.RegisterAsync(new RegisterDataset("portraits", Upload: upload.Id));
            _datasetId = dataset.Id;
            return _datasetId.Value;
        }
        finally { _gate.Release(); }
    }

    /// <summary>The "smiling" editor distilled once on the portraits (30 steps in chunks of 10): its run and version.</summary>
    public async Task<(Guid RunId, Guid VersionId)> SmilingEditorAsync()
    {
        var dataset = await DatasetAsync();
        await _gate.WaitAsync();
        try
        {
            if (_smiling is { } s) return s;
            var accepted = await Api.Attributes.CreateAsync(new CreateAttribute("smiling", TeacherId, "smiling", dataset, new DistillSettings(Steps: 30)));
            await Api.WaitForFinishedAsync(accepted.RunId, TimeSpan.FromMinutes(3), () => Distill.Tail());
            _smiling = (accepted.RunId, accepted.EditorVersionId);
            return _smiling.Value;
        }
        finally { _gate.Release(); }
    }

    /// <summary>PNG bytes of 64 px drawings of houses (Sdd.Ml.Evaluation.OtherDomains): images no portrait editor knows.</summary>
    public static List<(string Name, byte[] Bytes)> Houses(int count, int seed)
    {
        using var rendered = Ml.Evaluation.OtherDomains.House(count, 64, seed);
        return Enumerable.Range(0, count).Select(i => ($"house-{i}.png", Ml.Data.ImageCodec.EncodePng(rendered[i]))).ToList();
    }

    /// <summary>PNG bytes of held-out portraits (a seed no training uses) at the given size.</summary>
    public static IEnumerable<(string Name, byte[] Bytes)> Portraits(int count, int size, int first = 0)
    {
        for (int i = first; i < first + count; i++)
        {
            var rgb = PortraitRenderer.RenderRgb24(PortraitDataset.Portrait(Ml.Evaluation.HeldOutPortraits.HeldOutSeed, i), size, size > 64 ? 1 : 4);
            using var image = Image.LoadPixelData<Rgb24>(rgb, size, size);
            using var ms = new MemoryStream();
            image.SaveAsPng(ms);
            yield return ($"portrait-{i:D4}.png", ms.ToArray());
        }
    }

    public NpgsqlConnection Database() => new(Settings.Postgres.ConnectionString());

    /// <summary>The keys of a job's outputs in the jobs bucket.</summary>
    public Task<List<string>> JobOutputsAsync(Guid jobId) => ListAsync(Settings.S3.JobsBucket, KeyLayout.Job(Owner, jobId) + "output/");

    /// <summary>Keys of the objects under a prefix of a bucket.</summary>
    public async Task<List<string>> ListAsync(string bucket, string prefix)
    {
        var keys = new List<string>();
        await foreach (var o in Store.ListAsync(bucket, prefix)) keys.Add(o.Key);
        return keys;
    }

    private void TrainTinyModels()
    {
        var portraits = Path.Combine(WorkDir, "portraits");
        PortraitDataset.Write(portraits, 200, ImageSize, seed: 1, counterfactuals: false);
        var set = LabeledImageSet.OpenFolder(portraits);
        var (x, y) = set.Load(ImageSize);
        using (x) using (y)
        {
            var models = Path.Combine(WorkDir, "home", "shared", "models");
            // The judge below is smaller than a teacher run's (channels 16, 32; every row), to keep the fixture quick.
            var settings = new Sdd.Formats.Runs.TeacherRunSettings { ImageSize = ImageSize, Channels = [16, 32], Training = new TeacherTrainingSettings { Steps = 20, BatchSize = 32 }, JudgeSteps = 0 };
            using (var run = TeacherTraining.Open(Path.Combine(models, "teacher"), settings, set.Attributes, x, y, resume: false))
                run.AdvanceToEnd();
            Directory.Delete(Path.Combine(models, "teacher", "train"), recursive: true);
            using var judge = Judge.Train(new JudgeConfig { AttributeNames = set.Attributes.ToArray(), ImageSize = ImageSize, Channels = [16, 32] }, x, y, 50, batch: 64);
            judge.Save(Path.Combine(models, "judge"));
        }
    }

    public HttpClient Management()
    {
        var http = new HttpClient { BaseAddress = Settings.RabbitMq.ManagementUri, Timeout = TimeSpan.FromSeconds(30) };
        http.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Basic",
            Convert.ToBase64String(Encoding.UTF8.GetBytes($"{Settings.RabbitMq.User}:{Settings.RabbitMq.Password}")));
        return http;
    }

    private async Task CreateVirtualHostAsync()
    {
        using var http = Management();
        var vhost = Uri.EscapeDataString(RunName);
        (await http.PutAsync($"api/vhosts/{vhost}", null)).EnsureSuccessStatusCode();
        (await http.PutAsJsonAsync($"api/permissions/{vhost}/{Uri.EscapeDataString(Settings.RabbitMq.User)}",
            new { configure = ".*", write = ".*", read = ".*" })).EnsureSuccessStatusCode();
    }

    public async Task DisposeAsync()
    {
        lock (_extra) foreach (var w in _extra) w.Dispose();
        foreach (var s in new[] { Edit, Distill, Ingest }) s?.Dispose();
        if (Outbound is not null) await Outbound.DisposeAsync();
        Traces.Dispose();
        Api?.Dispose();
        try { using var http = Management(); await http.DeleteAsync($"api/vhosts/{Uri.EscapeDataString(RunName)}"); } catch (Exception) { }
        try
        {
            NpgsqlConnection.ClearAllPools();
            await using var connection = new NpgsqlConnection(Settings.Postgres.ConnectionString("postgres"));
            await connection.OpenAsync();
            await using var drop = new NpgsqlCommand($"DROP DATABASE IF EXISTS \"{Settings.Postgres.Database}\" WITH (FORCE)", connection);
            await drop.ExecuteNonQueryAsync();
        }
        catch (Exception) { }
        foreach (var bucket in new[] { Settings.S3.DatasetsBucket, Settings.S3.ModelsBucket, Settings.S3.JobsBucket })
            try { await Store.DeleteBucketAsync(bucket); } catch (Exception) { }
        Store.Dispose();
        try { Directory.Delete(Path.Combine(WorkDir, "work"), recursive: true); } catch (Exception) { } // logs stay for a post-mortem
    }

    private static string FindRoot()
    {
        for (var d = new DirectoryInfo(AppContext.BaseDirectory); d is not null; d = d.Parent)
            if (File.Exists(Path.Combine(d.FullName, "SDD.sln"))) return d.FullName;
        throw new DirectoryNotFoundException("SDD.sln not found above the test assembly.");
    }

    /// <summary>A service's dll from the same build configuration as these tests (bin/Debug or bin/Release).</summary>
    private string ServiceDll(string name) => Dll("services", name);

    /// <summary>A project's dll under <paramref name="folder"/> (services, tools) from the same build configuration as these tests.</summary>
    public string Dll(string folder, string name)
    {
        var configuration = new DirectoryInfo(AppContext.BaseDirectory).Parent!.Name;
        return Path.Combine(Root, folder, name, "bin", configuration, "net10.0", name + ".dll");
    }

    private static int FreePort()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        return ((IPEndPoint)listener.LocalEndpoint).Port;
    }
}
