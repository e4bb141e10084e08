using System.Collections.Concurrent;
using System.Diagnostics;
using System.Net;
using System.Text;
using SixLabors.ImageSharp;
using SixLabors.ImageSharp.Metadata.Profiles.Exif;
using SixLabors.ImageSharp.PixelFormats;
using SixLabors.ImageSharp.Processing;

namespace Sdd.EndToEnd.Tests;

/// <summary>
/// A person's path with the <c>sdd</c> command (tools/Sdd.Tool, as <c>./sdd</c> runs it) against the real services: log in,
/// upload a data set, submit a folder of their photos and wait, download the results — JPEGs (some stored sideways with an
/// EXIF orientation) and PNGs, in folders — and be told once, signed, when the job finishes.
/// </summary>
[Collection(EndToEndCollection.Name)]
public sealed class UserCliTests(SddSystem system, ITestOutputHelper output)
{
    private const int Width = 16, Height = 24; // upright: taller than wide, so a sideways result shows in its size

    [Fact]
    public async Task Login_upload_submit_wait_and_download_50_photos_keep_their_format_names_and_orientation_with_one_signed_webhook()
    {
        await system.SmilingEditorAsync();
        var home = Path.Combine(system.WorkDir, "cli-home-" + Guid.NewGuid().ToString("N")[..6]);
        Directory.CreateDirectory(home);

        var login = await SddAsync(home, "login", "--api", system.ApiUrl.ToString(), "--key", system.ApiKey);
        Assert.Equal(0, login.Exit);
        var credentials = Path.Combine(home, ".config", "sdd", "credentials.json");
        if (!OperatingSystem.IsWindows()) Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, File.GetUnixFileMode(credentials));

        var datasetName = "cli-portraits-" + Guid.NewGuid().ToString("N")[..6];
        var dataset = await SddAsync(home, "datasets", "upload", Path.Combine(system.WorkDir, "portraits"), "--name", datasetName, "--json");
        Assert.True(dataset.Exit == 0, dataset.Text);
        Assert.Equal(200, JsonDocument.Parse(dataset.Stdout).RootElement.GetProperty("imageCount").GetInt32());

        var photos = Path.Combine(home, "photos");
        var inputs = WritePhotos(photos);
        Assert.Equal(50, inputs.Count);

        using var receiver = new WebhookReceiver();
        var submit = await SddAsync(home, "jobs", "submit", photos, "--attribute", "smiling", "--webhook", receiver.Url, "--wait", "--json");
        Assert.True(submit.Exit == 0, submit.Text + system.Edit.Tail());
        var job = JsonDocument.Parse(submit.Stdout).RootElement;
        var jobId = job.GetProperty("id").GetGuid();
        Assert.Equal("completed", job.GetProperty("state").GetString());
        Assert.Equal(50, job.GetProperty("counts").GetProperty("done").GetInt32());
        Assert.False(job.GetProperty("completedWithErrors").GetBoolean());

        var results = Path.Combine(home, "edited");
        var download = await SddAsync(home, "jobs", "download", jobId.ToString(), "--out", results);
        Assert.True(download.Exit == 0, download.Text);
        foreach (var (name, kind) in inputs)
        {
            var file = Path.Combine(results, name); // the input's own name and folder, the input's own format
            Assert.True(File.Exists(file), $"{name} is missing from the results: {string.Join(", ", Directory.GetFiles(results, "*", SearchOption.AllDirectories))}");
            var bytes = await File.ReadAllBytesAsync(file);
            if (kind == "png") Assert.Equal(new byte[] { 0x89, 0x50, 0x4E, 0x47 }, bytes[..4]);
            else Assert.Equal(new byte[] { 0xFF, 0xD8, 0xFF }, bytes[..3]);
            var info = Image.Identify(bytes);
            Assert.True((info.Width, info.Height) == (Width, Height), $"{name} came back {info.Width}x{info.Height}, not upright {Width}x{Height}");
            var orientation = info.Metadata.ExifProfile?.GetValue(ExifTag.Orientation)?.Value;
            Assert.True(orientation is null or 1, $"{name} still carries orientation {orientation}");
        }

        // One signed call for the job, whatever else happens.
        var secret = (await system.Api.Keys.GetMeAsync()).WebhookSecret!;
        var calls = await receiver.WaitAsync(1, TimeSpan.FromSeconds(30));
        await Task.Delay(TimeSpan.FromSeconds(3));
        var call = Assert.Single(receiver.Calls);
        Assert.Equal("job.completed", call.Headers["X-Sdd-Event"]);
        Assert.True(WebhookSignature.Verify(secret, call.Headers["X-Sdd-Timestamp"], call.Body, call.Headers["X-Sdd-Signature"], TimeSpan.FromMinutes(5)),
            "the webhook's signature does not verify with the key's secret");
        var payload = JsonDocument.Parse(call.Body).RootElement;
        Assert.Equal(jobId, payload.GetProperty("subject").GetProperty("id").GetGuid());
        Assert.Equal(50, payload.GetProperty("data").GetProperty("counts").GetProperty("done").GetInt32());
        var log = Assert.Single(await system.Api.Jobs.ListAllWebhooksAsync(jobId).ToListAsync());
        Assert.Equal("delivered", log.State.ToString().ToLowerInvariant());

        var listed = await SddAsync(home, "jobs", "list", "--json");
        Assert.Equal(0, listed.Exit);
        Assert.Contains(JsonDocument.Parse(listed.Stdout).RootElement.EnumerateArray(), j => j.GetProperty("id").GetGuid() == jobId);
        output.WriteLine(submit.Stderr);
    }

    [Fact]
    public async Task A_job_post_retried_with_the_same_idempotency_key_makes_one_job()
    {
        await system.SmilingEditorAsync();
        var upload = await system.Api.Uploads.UploadAsync(SddSystem.Portraits(2, SddSystem.ImageSize, first: 700).ToUploads());
        using var http = new HttpClient { BaseAddress = system.ApiUrl };
        http.DefaultRequestHeaders.Add("X-Api-Key", system.ApiKey);
        var key = "retry-" + Guid.NewGuid().ToString("N");
        async Task<HttpResponseMessage> PostAsync()
        {
            using var request = new HttpRequestMessage(HttpMethod.Post, "/v1/jobs")
            {
                Content = JsonContent.Create(new { attribute = "smiling", source = new { upload = upload.Id } }),
            };
            request.Headers.Add("Idempotency-Key", key);
            return await http.SendAsync(request);
        }
        var before = await system.Api.Jobs.ListAllAsync().CountAsync();
        var first = await PostAsync();
        var retried = await PostAsync();
        Assert.Equal(HttpStatusCode.Accepted, first.StatusCode);
        Assert.Equal(HttpStatusCode.Accepted, retried.StatusCode);
        var id = (await first.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("jobId").GetGuid();
        Assert.Equal(id, (await retried.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("jobId").GetGuid());
        Assert.Equal("true", retried.Headers.GetValues("Idempotent-Replayed").Single());
        Assert.Equal(before + 1, await system.Api.Jobs.ListAllAsync().CountAsync());
        var done = await system.Api.WaitForCompletedAsync(id, TimeSpan.FromMinutes(2), () => system.Edit.Tail());
        Assert.Equal(2, done.Counts.Done); // edited once: two items, not four
    }

    /// <summary>
    /// 35 JPEGs (15 of them stored sideways: pixels turned a quarter left, EXIF orientation 6 turning them back) and 15
    /// PNGs, 5 of each kind in a sub-folder; all upright at 16x24.
    /// </summary>
    private static List<(string Name, string Kind)> WritePhotos(string folder)
    {
        var written = new List<(string, string)>();
        var portraits = SddSystem.Portraits(50, SddSystem.ImageSize, first: 600).ToList();
        for (int i = 0; i < portraits.Count; i++)
        {
            var kind = i < 20 ? "jpeg" : i < 35 ? "sideways" : "png";
            var name = (i % 10 == 0 ? "trip/" : "") + $"photo-{i:D2}.{(kind == "png" ? "png" : "jpg")}";
            using var face = Image.Load<Rgb24>(portraits[i].Bytes);
            using var photo = new Image<Rgb24>(Width, Height, new Rgb24(90, 120, 160));
            photo.Mutate(x => x.DrawImage(face, new Point(0, 0), 1f));
            var path = Path.Combine(folder, name);
            Directory.CreateDirectory(Path.GetDirectoryName(path)!);
            if (kind == "png") photo.SaveAsPng(path);
            else
            {
                if (kind == "sideways")
                {
                    photo.Mutate(x => x.Rotate(RotateMode.Rotate270)); // stored 24x16, the camera's way
                    photo.Metadata.ExifProfile = new ExifProfile();
                    photo.Metadata.ExifProfile.SetValue(ExifTag.Orientation, (ushort)6); // "turn 90° clockwise to view"
                }
                photo.SaveAsJpeg(path, new SixLabors.ImageSharp.Formats.Jpeg.JpegEncoder { Quality = 95 });
            }
            written.Add((name, kind));
        }
        return written;
    }

    private sealed record CliResult(int Exit, string Stdout, string Stderr)
    {
        public string Text => $"exit {Exit}\n--- stdout\n{Stdout}\n--- stderr\n{Stderr}";
    }

    /// <summary>Runs the sdd command as a person would, with its own HOME (where login keeps the credentials).</summary>
    private async Task<CliResult> SddAsync(string home, params string[] args)
    {
        var info = new ProcessStartInfo("dotnet", [system.Dll("tools", "Sdd.Tool"), .. args])
        {
            RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false, WorkingDirectory = home,
        };
        info.Environment["HOME"] = home;
        info.Environment.Remove("SDD_API_URL");
        info.Environment.Remove("SDD_API_KEY");
        info.Environment["NO_COLOR"] = "1";
        using var process = Process.Start(info)!;
        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = process.StandardError.ReadToEndAsync();
        using var timeout = new CancellationTokenSource(TimeSpan.FromMinutes(4));
        try { await process.WaitForExitAsync(timeout.Token); }
        catch (OperationCanceledException) { process.Kill(entireProcessTree: true); }
        var result = new CliResult(process.ExitCode, await stdout, await stderr);
        output.WriteLine($"$ sdd {string.Join(' ', args.Select(a => a == system.ApiKey ? "<key>" : a))}\n{result.Text}");
        return result;
    }

    /// <summary>A webhook receiver on 127.0.0.1 answering 200.</summary>
    private sealed class WebhookReceiver : IDisposable
    {
        public sealed record Call(Dictionary<string, string> Headers, string Body);
        private readonly HttpListener _listener = new();
        public ConcurrentQueue<Call> Calls { get; } = new();
        public string Url { get; }

        public WebhookReceiver()
        {
            var probe = new System.Net.Sockets.TcpListener(IPAddress.Loopback, 0);
            probe.Start();
            var port = ((IPEndPoint)probe.LocalEndpoint).Port;
            probe.Stop();
            Url = $"http://127.0.0.1:{port}/sdd-hook/";
            _listener.Prefixes.Add(Url);
            _listener.Start();
            _ = Task.Run(async () =>
            {
                while (_listener.IsListening)
                {
                    HttpListenerContext context;
                    try { context = await _listener.GetContextAsync(); } catch { return; }
                    using var reader = new StreamReader(context.Request.InputStream, Encoding.UTF8);
                    var body = await reader.ReadToEndAsync();
                    Calls.Enqueue(new Call(context.Request.Headers.AllKeys.Where(k => k is not null).ToDictionary(k => k!, k => context.Request.Headers[k]!), body));
                    context.Response.StatusCode = 200;
                    context.Response.Close();
                }
            });
        }

        public async Task<List<Call>> WaitAsync(int count, TimeSpan timeout)
        {
            var deadline = DateTime.UtcNow + timeout;
            while (Calls.Count < count && DateTime.UtcNow < deadline) await Task.Delay(100);
            return [.. Calls];
        }

        public void Dispose() => _listener.Close();
    }
}
