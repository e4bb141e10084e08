using System.Collections.Concurrent;
using System.Net.Sockets;
using Microsoft.AspNetCore.Hosting;
using Microsoft.Extensions.Logging;

namespace Sdd.Client.Tests;

/// <summary>One request as the fake API saw it.</summary>
public sealed record Seen(string Method, string Path, string Query, string? ApiKey, string? IdempotencyKey, string? ContentType, byte[] Body)
{
    public string Text => Encoding.UTF8.GetString(Body);
    public JsonElement Json => JsonDocument.Parse(Body).RootElement;
}

/// <summary>A stand-in for Sdd.Ingest: Kestrel on 127.0.0.1 with the routes a test maps, recording every request.</summary>
public sealed class FakeApi : IAsyncDisposable
{
    private readonly WebApplication _app;
    public ConcurrentQueue<Seen> Requests { get; } = new();
    public Uri Url { get; private set; } = null!;

    private FakeApi(WebApplication app) => _app = app;

    public static async Task<FakeApi> StartAsync(Action<WebApplication, FakeApi> map, int port = 0)
    {
        var builder = WebApplication.CreateSlimBuilder();
        builder.WebHost.UseUrls($"http://127.0.0.1:{port}");
        builder.Logging.ClearProviders();
        var app = builder.Build();
        var fake = new FakeApi(app);
        app.Use(async (ctx, next) =>
        {
            ctx.Request.EnableBuffering();
            using var buffer = new MemoryStream();
            await ctx.Request.Body.CopyToAsync(buffer);
            ctx.Request.Body.Position = 0;
            fake.Requests.Enqueue(new Seen(ctx.Request.Method, ctx.Request.Path, ctx.Request.QueryString.Value ?? "",
                ctx.Request.Headers["X-Api-Key"].FirstOrDefault(), ctx.Request.Headers["Idempotency-Key"].FirstOrDefault(),
                ctx.Request.ContentType, buffer.ToArray()));
            await next();
        });
        map(app, fake);
        await app.StartAsync();
        fake.Url = new Uri(app.Urls.Single());
        return fake;
    }

    public IReadOnlyList<Seen> Seen(string method, string path) => Requests.Where(r => r.Method == method && r.Path == path).ToList();

    /// <summary>A problem-details answer as Sdd.Ingest sends them.</summary>
    public static IResult Problem(int status, string title, string detail, int? retryAfter = null, HttpContext? ctx = null)
    {
        if (retryAfter is { } s) ctx!.Response.Headers.RetryAfter = s.ToString(System.Globalization.CultureInfo.InvariantCulture);
        return Results.Problem(detail: detail, statusCode: status, title: title);
    }

    public static int FreePort()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        return ((IPEndPoint)listener.LocalEndpoint).Port;
    }

    public SddClient Client(string key = "test-key", int maxAttempts = 4, TimeSpan? retryDelay = null) =>
        new(new HttpClient(), new SddClientOptions
        {
            BaseAddress = Url, ApiKey = key, MaxAttempts = maxAttempts, RetryDelay = retryDelay ?? TimeSpan.FromMilliseconds(20),
            PollInterval = TimeSpan.FromMilliseconds(10),
        });

    public async ValueTask DisposeAsync()
    {
        await _app.StopAsync();
        await _app.DisposeAsync();
    }
}

/// <summary>JSON of the API's shapes, as Sdd.Ingest writes them.</summary>
public static class Wire
{
    public static object Job(Guid id, string state, int total, int done, int failed = 0, int pending = 0, bool withErrors = false, string? format = null) => new
    {
        id, attribute = "smiling", editorVersion = 1, state, total,
        counts = new { pending, done, failed, cancelled = 0 },
        createdAt = DateTimeOffset.Parse("2026-01-02T03:04:05Z"), startedAt = (DateTimeOffset?)null, finishedAt = (DateTimeOffset?)null,
        imagesPerSecond = 12.5, etaSeconds = (double?)null, completedWithErrors = withErrors, outputFormat = format, webhook = (string?)null,
    };
}
