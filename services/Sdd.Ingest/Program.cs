using Microsoft.AspNetCore.Http.Features;
using Microsoft.AspNetCore.Http.Json;
using Microsoft.OpenApi;
using Prometheus;
using Scalar.AspNetCore;
using Sdd.Ingest;
using Sdd.Ingest.Apis;
using Sdd.Ingest.Dashboard;
using Sdd.Ingest.Dispatch;
using Sdd.Ingest.Operations;
using Sdd.Ingest.Quotas;
using Sdd.Ingest.Teachers;
using MassTransit;
using Sdd.Ingest.Webhooks;
using Sdd.Messaging;
using Sdd.ServiceDefaults;

var builder = WebApplication.CreateBuilder(args);
// settings, logging, database, object store, bus (Ingest consumes the completion events to announce finishes to webhooks), health checks, tracing
var sdd = builder.AddSddDefaults("sdd-ingest", x => x.AddConsumersFromNamespaceContaining<JobFinishedConsumer>());
var ingest = IngestSettings.From(builder.Configuration).RequireOwnAdminKey();

builder.WebHost.UseUrls(ingest.Url); // 127.0.0.1 by default: nothing listens beyond this machine unless told
builder.WebHost.ConfigureKestrel(k => k.Limits.MaxRequestBodySize = ingest.MaxUploadBytes);
builder.Services.Configure<FormOptions>(o =>
{
    o.MultipartBodyLengthLimit = ingest.MaxUploadBytes;
    o.ValueCountLimit = 100_000;
});
builder.Services.Configure<RouteHandlerOptions>(o => o.ThrowOnBadRequest = true); // a bad body becomes a 400 problem with its reason
builder.Services.Configure<JsonOptions>(o => o.SerializerOptions.DefaultIgnoreCondition = System.Text.Json.Serialization.JsonIgnoreCondition.WhenWritingNull);

builder.Services.AddSingleton(ingest);
builder.Services.AddScoped<WebhookOutbox>();
builder.Services.AddHostedService<WebhookDeliverer>();
var egress = new WebhookEgress(ingest);
builder.Services.AddSingleton(egress);
builder.Services.AddHttpClient(WebhookDeliverer.ClientName)
    // The one outbound client: no redirects (one could leave the policy), no proxy, and every connect through the egress check.
    .ConfigurePrimaryHttpMessageHandler(() => new SocketsHttpHandler { AllowAutoRedirect = false, UseProxy = false, ConnectCallback = egress.ConnectAsync });
builder.Services.AddScoped<EditDispatcher>();
builder.Services.AddScoped<RunDispatcher>();
builder.Services.AddScoped<BuiltinTeacher>();
builder.Services.AddHostedService<DispatchSweeper>();
builder.Services.AddHttpClient<RabbitManagement>(http => RabbitManagement.Configure(http, sdd.RabbitMq));
builder.Services.AddSingleton<IngestMetrics>();

builder.Services.AddRequestBudget(ingest);
builder.Services.AddProblemDetails();
builder.Services.AddExceptionHandler<ProblemExceptionHandler>();
// The API reads the X-Api-Key header; the dashboard (/ui) a cookie of its own (DashboardAuth): the default scheme picks by path.
builder.Services.AddAuthentication(DashboardAuth.ByPath)
    .AddScheme<Microsoft.AspNetCore.Authentication.AuthenticationSchemeOptions, ApiKeyAuthentication>(ApiKeyAuthentication.SchemeName, null)
    .AddDashboardCookie();
builder.Services.AddAuthorizationBuilder()
    .AddPolicy(ApiKeyAuthentication.AdminPolicy, p => p.RequireRole(ApiKeyAuthentication.AdminPolicy))
    .AddDashboardPolicy();
builder.Services.AddDashboard();
builder.Services.AddOpenApi(OpenApiDescription.Describe);

var app = builder.Build();

app.UseExceptionHandler();
app.UseStatusCodePages();
app.UseJsonBodyLimit(ingest);
app.UseAuthentication();
app.UseRateLimiter(); // after authentication: the budget is the owner's
app.UseAuthorization();
app.UseIdempotencyKeys(); // after authentication: keys are the owner's
app.UseDashboardHeaders();

app.MapOpenApi();
app.MapScalarApiReference();
app.MapSddHealth(); // /healthz/live, /healthz/ready, /healthz
app.MapMetrics("/metrics", app.Services.GetRequiredService<IngestMetrics>().Registry);

app.MapKeysApiV1();
app.MapDatasetsApiV1();
app.MapTeachersApiV1();
app.MapRunsApiV1();
app.MapAttributesApiV1();
app.MapJobsApiV1();
app.MapUploadsApiV1();
app.MapGrantsApiV1();
app.MapDashboard();

await PrepareAsync(app);
app.Run();

// Schema first (every service migrates through the same advisory lock), then buckets and the builtin teacher.
static async Task PrepareAsync(WebApplication app)
{
    var settings = app.Services.GetRequiredService<SddSettings>();
    await SddDb.MigrateAsync(settings.Postgres.ConnectionString());
    var log = app.Services.GetRequiredService<ILogger<Program>>();
    try
    {
        await app.Services.GetRequiredService<ObjectStore>().EnsureBucketsAsync();
        await using var scope = app.Services.CreateAsyncScope();
        await scope.ServiceProvider.GetRequiredService<BuiltinTeacher>().RegisterAsync();
    }
    catch (Exception e)
    {
        log.LogError(e, "Could not prepare the buckets or register the builtin teacher; /healthz will tell when S3 answers");
    }
}

public partial class Program;
