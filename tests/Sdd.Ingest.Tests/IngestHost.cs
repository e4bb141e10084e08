using System.Collections.Concurrent;
using System.Net.Http.Headers;
using System.Text;
using Microsoft.AspNetCore.Mvc.Testing;
using Npgsql;
using RabbitMQ.Client;

namespace Sdd.Ingest.Tests;

/// <summary>
/// The real Ingest (WebApplicationFactory&lt;Program&gt;) against the stack's real PostgreSQL, RabbitMQ and S3, with a
/// database, buckets, a RabbitMQ virtual host and an SDD_HOME (fake shared/models) of its own, so test classes never collide.
/// </summary>
public class IngestHost : IAsyncLifetime
{
    public const string AdminKey = "test-admin-key";
    public const long MaxUploadBytes = 1 << 20;
    public static readonly string[] TeacherAttributes = ["smiling", "white_hair", "eyeglasses"];
    private static readonly SddSettings Stack = SddSettings.FromEnvironment();

    public string Database { get; } = Unique("sdd_ingest_");
    public string VirtualHost { get; } = Unique("sdd-ingest-");
    public string DatasetsBucket { get; } = Unique("ds-");
    public string ModelsBucket { get; } = Unique("models-");
    public string JobsBucket { get; } = Unique("jobs-");
    /// <summary>A client's own bucket, for datasets and jobs registered by prefix.</summary>
    public string UserBucket { get; } = Unique("user-");
    public string Home { get; } = Path.Combine(Path.GetTempPath(), Unique("sdd-home-"));
    public ObjectStore Store { get; }
    public WebApplicationFactory<Program> Factory { get; private set; } = null!;
    public HttpClient Management { get; }
    private readonly ConcurrentQueue<(string Queue, JsonElement Message)> _drained = new();

    public IngestHost()
    {
        Store = new ObjectStore(Stack.S3);
        Management = new HttpClient { BaseAddress = Stack.RabbitMq.ManagementUri, Timeout = TimeSpan.FromSeconds(30) };
        Management.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Basic",
            Convert.ToBase64String(Encoding.UTF8.GetBytes($"{Stack.RabbitMq.User}:{Stack.RabbitMq.Password}")));
    }

    public static string Unique(string prefix) => $"{prefix}{Guid.NewGuid():N}"[..(prefix.Length + 12)];

    public Dictionary<string, string> Settings() => new()
    {
        ["SDD_POSTGRES_DB"] = Database,
        ["SDD_RABBITMQ_VHOST"] = VirtualHost,
        ["SDD_S3_BUCKET_DATASETS"] = DatasetsBucket,
        ["SDD_S3_BUCKET_MODELS"] = ModelsBucket,
        ["SDD_S3_BUCKET_JOBS"] = JobsBucket,
        ["SDD_ADMIN_KEY"] = AdminKey,
        ["SDD_MAX_UPLOAD_BYTES"] = MaxUploadBytes.ToString(),
        ["SDD_DISPATCH_SWEEP_SECONDS"] = "1",
        ["SDD_EDIT_BATCH_SIZE"] = "32", // the batching tests count batches of 32
        ["SDD_RATE_PER_MINUTE"] = "100000", // the quota tests set their own
        ["SDD_MAX_ACTIVE_JOBS"] = "100000",
        ["SDD_DISPATCH_GRACE_SECONDS"] = "2",
        ["SDD_HOME"] = Home,
        ["SDD_WEBHOOK_ALLOW"] = "127.0.0.1", // the tests' receivers listen on loopback; the egress tests start a host without it
    };

    public async Task InitializeAsync()
    {
        var vhost = Uri.EscapeDataString(VirtualHost);
        (await Management.PutAsync($"api/vhosts/{vhost}", null)).EnsureSuccessStatusCode();
        (await Management.PutAsJsonAsync($"api/permissions/{vhost}/{Uri.EscapeDataString(Stack.RabbitMq.User)}",
            new { configure = ".*", write = ".*", read = ".*" })).EnsureSuccessStatusCode();
        WriteFakeModels();
        WriteMoreModels(Path.Combine(Home, "shared", "models"));
        await Store.EnsureBucketAsync(UserBucket);
        Factory = NewFactory();
        _ = Factory.Server; // start: migrations, buckets, builtin teacher
    }

    public WebApplicationFactory<Program> NewFactory(Dictionary<string, string>? extra = null) => new WebApplicationFactory<Program>().WithWebHostBuilder(b =>
    {
        foreach (var (key, value) in Settings()) b.UseSetting(key, value);
        foreach (var (key, value) in extra ?? []) b.UseSetting(key, value);
    });

    public async Task DisposeAsync()
    {
        await Factory.DisposeAsync();
        NpgsqlConnection.ClearAllPools();
        await using (var connection = new NpgsqlConnection(Stack.Postgres.ConnectionString("postgres")))
        {
            await connection.OpenAsync();
            await using var drop = new NpgsqlCommand($"DROP DATABASE IF EXISTS \"{Database}\" WITH (FORCE)", connection);
            await drop.ExecuteNonQueryAsync();
        }
        foreach (var bucket in new[] { DatasetsBucket, ModelsBucket, JobsBucket, UserBucket })
        {
            try { await Store.DeleteBucketAsync(bucket); } catch (Exception) { /* s3rver clean-up is best effort */ }
        }
        await Management.DeleteAsync($"api/vhosts/{Uri.EscapeDataString(VirtualHost)}");
        Management.Dispose();
        Store.Dispose();
        try { Directory.Delete(Home, recursive: true); } catch (IOException) { }
    }

    /// <summary>More shipped model folders for a fixture that needs them, written before Ingest starts.</summary>
    protected virtual void WriteMoreModels(string models) { }

    private void WriteFakeModels()
    {
        foreach (var (dir, size) in new[] { ("teacher", 32), ("judge", 32) })
        {
            var path = Path.Combine(Home, "shared", "models", dir);
            Directory.CreateDirectory(path);
            File.WriteAllText(Path.Combine(path, "config.json"), JsonSerializer.Serialize(new
            {
                kind = "attribute-ddpm", attribute_names = TeacherAttributes, unet = new { image_size = size, attributes = 3 },
            }));
            File.WriteAllBytes(Path.Combine(path, "model.safetensors"), Encoding.ASCII.GetBytes($"fake {dir} weights"));
        }
    }

    public HttpClient Client(string? key = AdminKey)
    {
        var client = Factory.CreateClient();
        if (key is not null) client.DefaultRequestHeaders.Add("X-Api-Key", key);
        return client;
    }

    /// <summary>A new API key: its owner id (what the rows record) and the key.</summary>
    public async Task<(string Owner, string Key)> NewKeyAsync(string? name = null)
    {
        using var admin = Client();
        var response = await admin.PostAsJsonAsync("/v1/keys", new { name = name ?? Unique("client-") });
        Assert.Equal(HttpStatusCode.Created, response.StatusCode);
        var body = await response.Content.ReadFromJsonAsync<JsonElement>();
        return (body.GetProperty("id").GetString()!, body.GetProperty("key").GetString()!);
    }

    /// <summary>An admin's grant: the owner may read <paramref name="bucket"/> (below <paramref name="prefix"/>) as a source. Its id.</summary>
    public async Task<Guid> GrantAsync(string owner, string bucket, string prefix = "")
    {
        using var admin = Client();
        var response = await admin.PostAsJsonAsync("/v1/grants", new { owner, bucket, prefix });
        Assert.Equal(HttpStatusCode.Created, response.StatusCode);
        return (await response.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("id").GetGuid();
    }

    /// <summary>A new key that may read the host's user bucket (an admin's grant), as most source tests need.</summary>
    public async Task<(string Owner, string Key)> NewKeyWithUserBucketAsync()
    {
        var (owner, key) = await NewKeyAsync();
        await GrantAsync(owner, UserBucket);
        return (owner, key);
    }

    public SddDbContext Db() => new(SddDb.Options(Stack.Postgres.ConnectionString(Database)));

    /// <summary>An attribute of the owner with a ready, active editor version (as the distill worker would leave it).</summary>
    public async Task<string> ReadyAttributeAsync(string owner, bool ready = true)
    {
        await using var db = Db();
        var teacher = await db.Teachers.SingleAsync(t => t.IsBuiltin && t.Name == "builtin");
        var attribute = new ImageAttribute
        {
            Id = Guid.NewGuid(), Name = Unique("smile-"), Owner = owner, TeacherId = teacher.Id, TargetAttribute = "smiling", CreatedAt = DateTimeOffset.UtcNow,
        };
        db.Attributes.Add(attribute);
        db.EditorVersions.Add(new EditorVersion
        {
            Id = Guid.NewGuid(), AttributeId = attribute.Id, TeacherId = teacher.Id, Version = 1, Status = ready ? EditorStatus.Ready : EditorStatus.Distilling,
            IsActive = ready, WeightsKey = KeyLayout.Editor(owner, attribute.Name, 1), CreatedAt = DateTimeOffset.UtcNow,
        });
        await db.SaveChangesAsync();
        return attribute.Name;
    }

    /// <summary>
    /// The messages (MassTransit envelopes' "message") in a queue of this host's virtual host whose property
    /// <paramref name="property"/> equals <paramref name="id"/>, waiting up to <paramref name="timeout"/> for at least one.
    /// Messages taken for other tests are kept for them.
    /// </summary>
    public async Task<List<JsonElement>> MessagesAsync(string queue, string property, Guid id, int atLeast = 1, TimeSpan? timeout = null)
    {
        var factory = new ConnectionFactory
        {
            HostName = Stack.RabbitMq.Host, Port = Stack.RabbitMq.Port, UserName = Stack.RabbitMq.User, Password = Stack.RabbitMq.Password, VirtualHost = VirtualHost,
        };
        await using var connection = await factory.CreateConnectionAsync();
        var deadline = DateTime.UtcNow + (timeout ?? TimeSpan.FromSeconds(10));
        while (true)
        {
            try
            {
                await using var channel = await connection.CreateChannelAsync();
                while (await channel.BasicGetAsync(queue, autoAck: true) is { } got)
                    _drained.Enqueue((queue, JsonDocument.Parse(got.Body).RootElement.GetProperty("message").Clone()));
            }
            catch (RabbitMQ.Client.Exceptions.OperationInterruptedException)
            {
                // the queue does not exist yet
            }
            var mine = _drained.Where(m => m.Queue == queue && m.Message.TryGetProperty(property, out var p) && p.GetGuid() == id).Select(m => m.Message).ToList();
            if (mine.Count >= atLeast || DateTime.UtcNow > deadline) return mine;
            await Task.Delay(200);
        }
    }
}
