using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Http.Headers;
using System.Net.Sockets;
using System.Text;
using System.Text.Json;
using Npgsql;
using Sdd.Client;
using Sdd.Configuration;
using Sdd.Data;
using Rows = Sdd.Data.Entities;
using Sdd.Ml.Data;
using Sdd.Ml.Editors;
using Sdd.Ml.Evaluation;
using Sdd.Ml.Portraits;
using Sdd.Ml.Torch;
using Sdd.Storage;
using SixLabors.ImageSharp;
using SixLabors.ImageSharp.PixelFormats;
using SixLabors.ImageSharp.Processing;

namespace Sdd.Cli;

/// <summary>
/// <c>bench pipeline</c>: the same N JPEG photos edited in-process (decode, edit, encode: the ceiling) and through the
/// services (Ingest + K edit workers as real processes on the local stack, in a virtual host, database and buckets of
/// their own), in one run: images/s of each, their ratios, job creation time, worker RSS after 10 % and after all of the
/// images (and its median around the first and over the last 10 %, sampled at every poll), and the workers' stage seconds
/// from their /metrics.
/// </summary>
public static class PipelineBench
{
    public sealed record ServiceRow(int Workers, int ThreadsPerWorker, double SubmitSeconds, double SubmitToDoneSeconds, double StartedToFinishedSeconds,
        double SubmitToDoneImagesPerSecond, double StartedToFinishedImagesPerSecond, double RatioStartedToFinished, double RatioSubmitToDone,
        int Done, int Failed, long[] WorkerRssAtTenthBytes, long[] WorkerRssAtEndBytes, long[] WorkerPeakRssBytes,
        long[] WorkerRssMedianFirstTenthBytes, long[] WorkerRssMedianLastTenthBytes, int RssSamples, Dictionary<string, double> StageSeconds,
        Dictionary<string, double> CpuSeconds);

    public sealed record Report(string Machine, int Images, int Size, int ModelSize, string Format, int EditorParameters, int TorchThreads,
        double InProcessSeconds, double InProcessImagesPerSecond, List<ServiceRow> Services, string Timed);

    public static int Run(Options o)
    {
        int n = o.Int("images", 1000, 1, 1_000_000);
        int size = o.Int("size", 32, 16, 4096);
        var workerCounts = (o.String("workers") ?? "1").Split(',').Select(w => int.Parse(w, CultureInfo.InvariantCulture)).ToArray();
        int threads = o.Int("threads", Environment.ProcessorCount, 1, 64);
        int? workerThreads = o.Has("worker-threads") ? o.Int("worker-threads", 1, 1, 64) : null;
        var json = o.String("json");
        o.EnsureAllUsed();
        return RunAsync(n, size, workerCounts, threads, workerThreads, json).GetAwaiter().GetResult();
    }

    private static async Task<int> RunAsync(int n, int size, int[] workerCounts, int threads, int? workerThreads, string? json)
    {
        TorchRuntime.ConfigureThreads(threads);
        var root = Environment.GetEnvironmentVariable("SDD_ROOT") is { Length: > 0 } r ? r : ModelHome.Root; // the checkout (./sdd exports SDD_ROOT)
        var editorConfig = new EditorConfig { Attribute = "smiling", ImageSize = 32 };
        var editorDir = Path.Combine(Path.GetTempPath(), $"sdd-bench-editor-{Environment.ProcessId}");
        using (var e = new Editor(editorConfig)) e.Save(editorDir);
        int parameters;
        using (var e = Editor.Load(editorDir)) parameters = (int)e.ParameterCount;

        Console.Error.WriteLine($"bench pipeline: {n} JPEG portraits of {size}x{size}, editor {parameters:N0} parameters at {editorConfig.ImageSize} px (residual mode above), {threads} torch threads");
        var photos = Photos(n, size);

        // In-process: what one process does with the same photos, decode → edit → encode, batches as the worker forms them.
        var inProcess = InProcess(photos, editorDir, size);
        Console.Error.WriteLine($"  in-process: {n / inProcess:0.0} images/s ({inProcess:0.00} s)");

        var rows = new List<ServiceRow>();
        foreach (var k in workerCounts.Where(k => k > 0)) // --workers 0: the in-process figure alone
        {
            int perWorker = workerThreads ?? Math.Max(1, threads / k); // by default the cores are shared out
            var row = await ServicesAsync(root, photos, editorDir, n, k, perWorker, inProcess);
            rows.Add(row);
            Console.Error.WriteLine($"  services, {k} worker(s) x {perWorker} threads: job created in {row.SubmitSeconds:0.00} s; started→finished {row.StartedToFinishedImagesPerSecond:0.0} images/s " +
                $"({row.RatioStartedToFinished:P0} of in-process), submit→done {row.SubmitToDoneImagesPerSecond:0.0} images/s ({row.RatioSubmitToDone:P0}); " +
                $"worker RSS {string.Join("/", row.WorkerRssAtTenthBytes.Select(Mb))} MB at 10 % → {string.Join("/", row.WorkerRssAtEndBytes.Select(Mb))} MB at the end, peak {string.Join("/", row.WorkerPeakRssBytes.Select(Mb))} MB");
            Console.Error.WriteLine($"    worker RSS, median of {row.RssSamples} samples: {string.Join("/", row.WorkerRssMedianFirstTenthBytes.Select(Mb))} MB while the 5th to 15th % of the images were done → " +
                $"{string.Join("/", row.WorkerRssMedianLastTenthBytes.Select(Mb))} MB over the last 10 % (" +
                string.Join("/", row.WorkerRssMedianFirstTenthBytes.Zip(row.WorkerRssMedianLastTenthBytes, (a, b) => a > 0 ? $"{(double)b / a - 1:+0%;-0%}" : "n/a")) + ")");
            Console.Error.WriteLine("    stage seconds: " + string.Join(", ", row.StageSeconds.Select(s => $"{s.Key} {s.Value:0.00}")));
            Console.Error.WriteLine("    CPU seconds during the job: " + string.Join(", ", row.CpuSeconds.Select(s => $"{s.Key} {s.Value:0.0}")));
        }
        if (rows.Count > 1)
            Console.Error.WriteLine($"  scale-out: {rows[^1].Workers} workers / {rows[0].Workers}: {rows[^1].StartedToFinishedImagesPerSecond / rows[0].StartedToFinishedImagesPerSecond:0.00}x (started→finished)");

        var report = new Report(Environment.MachineName + $" ({Environment.ProcessorCount} cores)", n, size, editorConfig.ImageSize, "jpeg (quality 92)", parameters, threads,
            inProcess, n / inProcess, rows,
            "in-process: decode + edit + encode of every photo in memory (no storage); services: submit = the multipart POST of every photo until the job is accepted (stored, rows inserted, batches sent); started→finished = the job's first item started to its last finished (the API's timestamps); submit→done = POST start to the job's finish");
        var text = JsonSerializer.Serialize(report, new JsonSerializerOptions { WriteIndented = true, Encoder = System.Text.Encodings.Web.JavaScriptEncoder.UnsafeRelaxedJsonEscaping });
        if (json is not null) { Directory.CreateDirectory(Path.GetDirectoryName(Path.GetFullPath(json))!); File.WriteAllText(json, text); Console.Error.WriteLine($"  wrote {json}"); }
        else Console.WriteLine(text);
        Directory.Delete(editorDir, true);
        return 0;
    }

    /// <summary>Each worker's median RSS over the samples taken while from <paramref name="from"/> to <paramref name="to"/> images were finished (0: none).</summary>
    private static long[] MedianRss(List<(int Done, long[] Rss)> samples, int workers, int from, int to) => Enumerable.Range(0, workers).Select(w =>
    {
        var window = samples.Where(s => s.Done >= from && s.Done <= to).Select(s => s.Rss[w]).Order().ToList();
        return window.Count == 0 ? 0 : window[window.Count / 2];
    }).ToArray();

    private static string Mb(long bytes) => (bytes / (1 << 20)).ToString(CultureInfo.InvariantCulture);

    /// <summary>N JPEG photos: 64 distinct portraits rendered at the size, repeated under distinct names.</summary>
    private static List<(string Name, byte[] Bytes)> Photos(int n, int size)
    {
        var distinct = Enumerable.Range(0, Math.Min(64, n)).AsParallel().AsOrdered().Select(i =>
        {
            var rgb = PortraitRenderer.RenderRgb24(PortraitDataset.Portrait(HeldOutPortraits.HeldOutSeed, i), Math.Min(size, 256), size > 64 ? 1 : 4);
            using var image = Image.LoadPixelData<Rgb24>(rgb, Math.Min(size, 256), Math.Min(size, 256));
            if (size > 256) image.Mutate(x => x.Resize(size, size));
            using var ms = new MemoryStream();
            image.SaveAsJpeg(ms, new SixLabors.ImageSharp.Formats.Jpeg.JpegEncoder { Quality = 92 });
            return ms.ToArray();
        }).ToArray();
        return Enumerable.Range(0, n).Select(i => ($"photo-{i:D6}.jpg", distinct[i % distinct.Length])).ToList();
    }

    private static double InProcess(List<(string Name, byte[] Bytes)> photos, string editorDir, int size)
    {
        using var editor = Editor.Load(editorDir, TorchRuntime.Device);
        int batch = (int)Math.Clamp(4096L * (1 << 20) / 160 / 3 / ((long)size * size), 1, 64); // the worker's defaults: 4 GiB, 3 batches in flight, at most 64
        var cpu = new ParallelOptions { MaxDegreeOfParallelism = Environment.ProcessorCount };
        var sw = Stopwatch.StartNew();
        foreach (var part in photos.Chunk(batch))
        {
            var tensors = new Tensor[part.Length];
            var kept = new KeptMetadata[part.Length];
            Parallel.For(0, part.Length, cpu, k =>
            {
                using var image = ImageCodec.Decode(part[k].Bytes, out kept[k]);
                tensors[k] = ImageCodec.ToTensor(image);
            });
            using (var scope = NewDisposeScope())
            {
                var result = editor.Edit(stack(tensors));
                Parallel.For(0, part.Length, cpu, k => { using var r = result[k]; _ = ImageCodec.Encode(r, Sdd.Configuration.OutputFormat.Jpeg, kept[k]); });
            }
            foreach (var t in tensors) t.Dispose();
        }
        return sw.Elapsed.TotalSeconds;
    }

    private static async Task<ServiceRow> ServicesAsync(string root, List<(string Name, byte[] Bytes)> photos, string editorDir, int n, int workers, int threadsPerWorker, double inProcess)
    {
        var stack = SddSettings.FromEnvironment();
        var name = $"bench{Guid.NewGuid():N}"[..13];
        var settings = stack with
        {
            RabbitMq = stack.RabbitMq with { VirtualHost = name },
            Postgres = stack.Postgres with { Database = "sdd_" + name },
            S3 = stack.S3 with { DatasetsBucket = name + "-datasets", ModelsBucket = name + "-models", JobsBucket = name + "-jobs" },
        };
        using var management = new HttpClient { BaseAddress = stack.RabbitMq.ManagementUri };
        management.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Basic", Convert.ToBase64String(Encoding.UTF8.GetBytes($"{stack.RabbitMq.User}:{stack.RabbitMq.Password}")));
        (await management.PutAsync($"api/vhosts/{name}", null)).EnsureSuccessStatusCode();
        (await management.PutAsync($"api/permissions/{name}/{Uri.EscapeDataString(stack.RabbitMq.User)}",
            new StringContent("""{"configure":".*","write":".*","read":".*"}""", Encoding.UTF8, "application/json"))).EnsureSuccessStatusCode();

        var adminKey = "bench-" + Guid.NewGuid().ToString("N");
        var apiUrl = $"http://127.0.0.1:{FreePort()}";
        var env = new Dictionary<string, string>
        {
            ["SDD_RABBITMQ_VHOST"] = name, ["SDD_POSTGRES_DB"] = settings.Postgres.Database,
            ["SDD_S3_BUCKET_DATASETS"] = settings.S3.DatasetsBucket, ["SDD_S3_BUCKET_MODELS"] = settings.S3.ModelsBucket, ["SDD_S3_BUCKET_JOBS"] = settings.S3.JobsBucket,
            ["SDD_INGEST_URL"] = apiUrl, ["SDD_ADMIN_KEY"] = adminKey, ["SDD_HOME"] = ModelHome.Root,
            ["SDD_MAX_UPLOAD_BYTES"] = (4L << 30).ToString(CultureInfo.InvariantCulture), ["SDD_RATE_PER_MINUTE"] = "100000",
            ["SDD_TORCH_THREADS"] = threadsPerWorker.ToString(CultureInfo.InvariantCulture),
            ["Logging__LogLevel__Default"] = "Warning", ["DOTNET_gcServer"] = "0",
            ["MALLOC_ARENA_MAX"] = Environment.GetEnvironmentVariable("MALLOC_ARENA_MAX") ?? "2", // as deployed (Dockerfiles, services.sh)
        };
        var processes = new List<Process>();
        var workerUrls = new List<string>();
        using var store = new ObjectStore(settings.S3);
        try
        {
            processes.Add(Start(root, "Sdd.Ingest", env));
            using var http = new HttpClient { Timeout = TimeSpan.FromMinutes(30) };
            await WaitAsync(async () => (await http.GetAsync(apiUrl + "/healthz/ready")).IsSuccessStatusCode, TimeSpan.FromMinutes(2), "Ingest ready");
            for (int w = 0; w < workers; w++)
            {
                var url = $"http://127.0.0.1:{FreePort()}";
                workerUrls.Add(url);
                processes.Add(Start(root, "Sdd.Edit", new Dictionary<string, string>(env) { ["SDD_WORKER_URL"] = url }));
            }
            foreach (var url in workerUrls)
                await WaitAsync(async () => (await http.GetAsync(url + "/healthz/ready")).IsSuccessStatusCode, TimeSpan.FromMinutes(2), "edit worker ready");

            using var admin = new SddClient(new SddClientOptions { BaseAddress = new Uri(apiUrl), ApiKey = adminKey, Timeout = TimeSpan.FromMinutes(30) });
            var key = await admin.Keys.CreateAsync("bench");
            var attribute = await RegisterEditorAsync(settings, store, key.Id.ToString(), editorDir);
            using var api = new SddClient(new SddClientOptions { BaseAddress = new Uri(apiUrl), ApiKey = key.Key, Timeout = TimeSpan.FromMinutes(30) });

            // A running service is warm: one small job first (torch initialised, the editor loaded), not timed.
            var warm = await api.Jobs.SubmitFilesAsync(attribute, photos.Take(Math.Min(8, n)).Select(p => UploadFile.FromBytes("warm-" + p.Name, p.Bytes)).ToList());
            while (!(await api.Jobs.GetAsync(warm.JobId)).IsFinished) await Task.Delay(100); // the client's finished test: a cancelled job too
            var baseline = new Dictionary<string, double>();
            foreach (var url in workerUrls) foreach (var (k, v) in await StagesAsync(http, url)) baseline[k] = baseline.GetValueOrDefault(k) + v;

            var cpuBefore = CpuSeconds(processes);
            // The workers' RSS is a sawtooth (batches in flight, the heap trimmed after each): sampled every 100 ms from the
            // submit on (editing starts while the upload is stored), against the items the workers have finished (their
            // /metrics), its median around the first 10 % of the images and over the last 10 % say whether it grows.
            var warmItems = await FinishedItemsAsync(http, workerUrls);
            var rssSamples = new List<(int Done, long[] Rss)>();
            long[] rssTenth = [];
            using var sampling = new CancellationTokenSource();
            var sampler = Task.Run(async () =>
            {
                while (!sampling.IsCancellationRequested)
                {
                    int finished = (int)(await FinishedItemsAsync(http, workerUrls) - warmItems);
                    var rss = processes.Skip(1).Select(p => Rss(p.Id, "VmRSS")).ToArray();
                    rssSamples.Add((finished, rss));
                    if (rssTenth.Length == 0 && finished >= n / 10) rssTenth = rss;
                    try { await Task.Delay(100, sampling.Token); } catch (OperationCanceledException) { }
                }
            });
            var submitted = DateTimeOffset.UtcNow;
            var sw = Stopwatch.StartNew();
            var accepted = await api.Jobs.SubmitFilesAsync(attribute, photos.Select(p => UploadFile.FromBytes(p.Name, p.Bytes)).ToList());
            double submitSeconds = sw.Elapsed.TotalSeconds;
            JobStatus job;
            while (true)
            {
                job = await api.Jobs.GetAsync(accepted.JobId);
                if (job.IsFinished) break;
                await Task.Delay(100);
            }
            sampling.Cancel();
            await sampler;
            var cpuAfter = CpuSeconds(processes);
            var cpu = cpuAfter.ToDictionary(kv => kv.Key, kv => Math.Round(kv.Value - cpuBefore.GetValueOrDefault(kv.Key), 2));
            var stages = new Dictionary<string, double>();
            foreach (var url in workerUrls) foreach (var (k, v) in await StagesAsync(http, url)) stages[k] = stages.GetValueOrDefault(k) + v;
            foreach (var k in stages.Keys.ToList()) stages[k] -= baseline.GetValueOrDefault(k); // the timed job's share
            double toDone = (job.FinishedAt!.Value - submitted).TotalSeconds, startedToFinished = (job.FinishedAt!.Value - job.StartedAt!.Value).TotalSeconds;
            return new ServiceRow(workers, threadsPerWorker, submitSeconds, toDone, startedToFinished, n / toDone, n / startedToFinished,
                inProcess / startedToFinished, inProcess / toDone, job.Counts.Done, job.Counts.Failed, rssTenth,
                processes.Skip(1).Select(p => Rss(p.Id, "VmRSS")).ToArray(), processes.Skip(1).Select(p => Rss(p.Id, "VmHWM")).ToArray(),
                MedianRss(rssSamples, workers, n * 5 / 100, n * 15 / 100), MedianRss(rssSamples, workers, n * 9 / 10, n), rssSamples.Count, stages, cpu);
        }
        finally
        {
            foreach (var p in processes) { try { p.Kill(entireProcessTree: true); p.WaitForExit(10_000); } catch (Exception) { } p.Dispose(); }
            try { await management.DeleteAsync($"api/vhosts/{name}"); } catch (Exception) { }
            try
            {
                // The job's objects by their recorded keys: listing a bucket of 20,000 objects page by page costs the local
                // S3 server minutes of CPU (each page walks the whole bucket); what is left is listed below.
                await using var db = new SddDbContext(SddDb.Options(settings.Postgres.ConnectionString()));
                var keys = await Microsoft.EntityFrameworkCore.EntityFrameworkQueryableExtensions.ToListAsync(
                    db.JobItems.Where(i => i.SourceBucket == null).Select(i => i.SourceKey).Concat(db.JobItems.Where(i => i.OutputKey != null).Select(i => i.OutputKey!)));
                foreach (var chunk in keys.Chunk(1000)) await store.DeleteManyAsync(settings.S3.JobsBucket, chunk);
            }
            catch (Exception) { }
            try
            {
                NpgsqlConnection.ClearAllPools();
                await using var connection = new NpgsqlConnection(stack.Postgres.ConnectionString("postgres"));
                await connection.OpenAsync();
                await using var drop = new NpgsqlCommand($"DROP DATABASE IF EXISTS \"{settings.Postgres.Database}\" WITH (FORCE)", connection);
                await drop.ExecuteNonQueryAsync();
            }
            catch (Exception) { }
            foreach (var bucket in new[] { settings.S3.DatasetsBucket, settings.S3.ModelsBucket, settings.S3.JobsBucket })
                try { await store.DeleteBucketAsync(bucket); } catch (Exception) { }
        }
    }

    /// <summary>The items the workers have finished so far (done and failed), from their /metrics.</summary>
    private static async Task<double> FinishedItemsAsync(HttpClient http, IEnumerable<string> workerUrls)
    {
        double finished = 0;
        foreach (var url in workerUrls)
            foreach (var line in (await http.GetStringAsync(url + "/metrics")).Split('\n'))
            {
                var m = System.Text.RegularExpressions.Regex.Match(line, "^sdd_edit_items_total\\{outcome=\"(done|failed)\"\\} (?<v>\\S+)$");
                if (m.Success) finished += double.Parse(m.Groups["v"].Value, CultureInfo.InvariantCulture);
            }
        return finished;
    }

    /// <summary>The worker's stage seconds so far (and its forward-gate wait), from its /metrics.</summary>
    private static async Task<Dictionary<string, double>> StagesAsync(HttpClient http, string workerUrl)
    {
        var stages = new Dictionary<string, double>();
        foreach (var line in (await http.GetStringAsync(workerUrl + "/metrics")).Split('\n'))
        {
            var m = System.Text.RegularExpressions.Regex.Match(line, "^sdd_edit_(stage_seconds_sum\\{stage=\"(?<s>\\w+)\"\\}|(?<s>gate_wait_seconds)_sum) (?<v>\\S+)$");
            if (m.Success) stages[m.Groups["s"].Value] = stages.GetValueOrDefault(m.Groups["s"].Value) + double.Parse(m.Groups["v"].Value, CultureInfo.InvariantCulture);
        }
        return stages;
    }

    /// <summary>The editor as the distill worker leaves it: an attribute of the owner with a ready, active version whose files are in the models bucket.</summary>
    private static async Task<string> RegisterEditorAsync(SddSettings settings, ObjectStore store, string owner, string editorDir)
    {
        var name = "bench-smiling";
        var key = KeyLayout.Editor(owner, name, 1);
        foreach (var file in Directory.GetFiles(editorDir)) await store.PutAsync(store.ModelsBucket, key + Path.GetFileName(file), await File.ReadAllBytesAsync(file));
        await using var db = new SddDbContext(SddDb.Options(settings.Postgres.ConnectionString()));
        var teacher = await Microsoft.EntityFrameworkCore.EntityFrameworkQueryableExtensions.FirstAsync(db.Teachers, t => t.IsBuiltin && t.Kind == "attribute-ddpm"); // the 32 px pixel teacher its editor came from
        var attribute = new Rows.ImageAttribute { Id = Guid.NewGuid(), Name = name, Owner = owner, TeacherId = teacher.Id, TargetAttribute = "smiling", CreatedAt = DateTimeOffset.UtcNow };
        db.Attributes.Add(attribute);
        db.EditorVersions.Add(new Rows.EditorVersion
        {
            Id = Guid.NewGuid(), AttributeId = attribute.Id, TeacherId = teacher.Id, Version = 1, Status = Rows.EditorStatus.Ready, IsActive = true, WeightsKey = key,
            CreatedAt = DateTimeOffset.UtcNow,
        });
        await db.SaveChangesAsync();
        return name;
    }

    private static Process Start(string root, string service, Dictionary<string, string> env)
    {
        var dll = Path.Combine(root, "services", service, "bin", "Release", "net10.0", service + ".dll");
        if (!File.Exists(dll))
        {
            using var build = Process.Start("dotnet", ["build", Path.Combine(root, "services", service, service + ".csproj"), "-c", "Release", "-v", "q", "--nologo"])!;
            build.WaitForExit();
        }
        var info = new ProcessStartInfo("dotnet", [dll]) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        foreach (var (k, v) in env) info.Environment[k] = v;
        var p = Process.Start(info)!;
        var log = new StringBuilder();
        p.OutputDataReceived += (_, e) => { if (e.Data is { } d && (d.Contains("fail") || d.Contains("crit"))) Console.Error.WriteLine($"    [{service}] {d}"); };
        p.ErrorDataReceived += (_, e) => { if (e.Data is { } d) Console.Error.WriteLine($"    [{service}] {d}"); };
        p.BeginOutputReadLine();
        p.BeginErrorReadLine();
        return p;
    }

    /// <summary>
    /// CPU seconds (user + system) so far of the services this bench started and of the stack's servers on this machine
    /// (the S3 server, PostgreSQL, RabbitMQ), read from /proc: where the cores went during the job.
    /// </summary>
    private static Dictionary<string, double> CpuSeconds(List<Process> services)
    {
        var totals = new Dictionary<string, double>();
        var ticks = 100.0; // USER_HZ
        var ours = services.Select((p, k) => (p.Id, Name: k == 0 ? "ingest" : "edit workers")).ToDictionary(x => x.Id, x => x.Name);
        foreach (var dir in Directory.EnumerateDirectories("/proc"))
        {
            if (!int.TryParse(Path.GetFileName(dir), out var pid)) continue;
            try
            {
                var stat = File.ReadAllText(Path.Combine(dir, "stat"));
                var comm = stat[(stat.IndexOf('(') + 1)..stat.LastIndexOf(')')];
                var fields = stat[(stat.LastIndexOf(')') + 2)..].Split(' ');
                double seconds = (long.Parse(fields[11], CultureInfo.InvariantCulture) + long.Parse(fields[12], CultureInfo.InvariantCulture)) / ticks;
                var cmdline = File.ReadAllText(Path.Combine(dir, "cmdline")).Replace('\0', ' ');
                string? group = ours.TryGetValue(pid, out var name) ? name
                    : comm.StartsWith("postgres", StringComparison.Ordinal) ? "postgresql"
                    : comm is "beam.smp" or "erl_child_setup" or "epmd" ? "rabbitmq"
                    : comm is "node" or "minio" && (cmdline.Contains("s3rver") || cmdline.Contains("minio") || cmdline.Contains("s3")) ? "s3 server"
                    : null;
                if (group is not null) totals[group] = totals.GetValueOrDefault(group) + seconds;
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException or FormatException) { }
        }
        return totals;
    }

    private static long Rss(int pid, string field)
    {
        try
        {
            var line = File.ReadLines($"/proc/{pid}/status").FirstOrDefault(l => l.StartsWith(field + ":"));
            return line is null ? 0 : long.Parse(line.Split(' ', StringSplitOptions.RemoveEmptyEntries)[1], CultureInfo.InvariantCulture) * 1024;
        }
        catch (IOException) { return 0; }
    }

    private static async Task WaitAsync(Func<Task<bool>> ready, TimeSpan timeout, string what)
    {
        var deadline = DateTime.UtcNow + timeout;
        while (true)
        {
            try { if (await ready()) return; } catch (HttpRequestException) { }
            if (DateTime.UtcNow > deadline) throw new TimeoutException($"{what}: not within {timeout.TotalSeconds:0} s");
            await Task.Delay(200);
        }
    }

    private static int FreePort()
    {
        using var l = new TcpListener(IPAddress.Loopback, 0);
        l.Start();
        return ((IPEndPoint)l.LocalEndpoint).Port;
    }
}
