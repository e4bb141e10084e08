using Microsoft.Extensions.Configuration;

namespace Sdd.Configuration;

/// <summary>
/// Where the servers are. Read from the same SDD_* names that deploy/local/env.sh and
/// docker-compose.yml set, as environment variables or flat IConfiguration keys; the defaults
/// here are those of env.sh (a test keeps the two in step).
/// </summary>
public sealed record SddSettings
{
    public RabbitMqSettings RabbitMq { get; init; } = new();
    public PostgresSettings Postgres { get; init; } = new();
    public S3Settings S3 { get; init; } = new();

    /// <summary>Settings from the process environment.</summary>
    public static SddSettings FromEnvironment() =>
        From(new ConfigurationBuilder().AddEnvironmentVariables().Build());

    /// <summary>Settings from configuration keys named like the environment variables (SDD_POSTGRES_PORT, ...).</summary>
    public static SddSettings From(IConfiguration config)
    {
        string Get(string name, string fallback) =>
            config[name] is { Length: > 0 } value ? value : fallback;
        int GetInt(string name, int fallback) =>
            config[name] is { Length: > 0 } value
                ? int.TryParse(value, out var n) ? n : throw new FormatException($"{name}='{value}' is not a number")
                : fallback;

        var rabbit = new RabbitMqSettings();
        var pg = new PostgresSettings();
        var s3 = new S3Settings();
        return new SddSettings
        {
            RabbitMq = new RabbitMqSettings
            {
                Host = Get("SDD_RABBITMQ_HOST", rabbit.Host),
                Port = GetInt("SDD_RABBITMQ_PORT", rabbit.Port),
                ManagementPort = GetInt("SDD_RABBITMQ_MANAGEMENT_PORT", rabbit.ManagementPort),
                User = Get("SDD_RABBITMQ_USER", rabbit.User),
                Password = Get("SDD_RABBITMQ_PASSWORD", rabbit.Password),
                VirtualHost = Get("SDD_RABBITMQ_VHOST", rabbit.VirtualHost),
            },
            Postgres = new PostgresSettings
            {
                Host = Get("SDD_POSTGRES_HOST", pg.Host),
                Port = GetInt("SDD_POSTGRES_PORT", pg.Port),
                User = Get("SDD_POSTGRES_USER", pg.User),
                Password = Get("SDD_POSTGRES_PASSWORD", pg.Password),
                Database = Get("SDD_POSTGRES_DB", pg.Database),
            },
            S3 = new S3Settings
            {
                Endpoint = new Uri(Get("SDD_S3_ENDPOINT", s3.Endpoint.ToString())),
                PublicEndpoint = config["SDD_S3_PUBLIC_ENDPOINT"] is { Length: > 0 } publicEndpoint ? new Uri(publicEndpoint) : null,
                AccessKey = Get("SDD_S3_ACCESS_KEY", s3.AccessKey),
                SecretKey = Get("SDD_S3_SECRET_KEY", s3.SecretKey),
                Region = Get("SDD_S3_REGION", s3.Region),
                DatasetsBucket = Get("SDD_S3_BUCKET_DATASETS", s3.DatasetsBucket),
                ModelsBucket = Get("SDD_S3_BUCKET_MODELS", s3.ModelsBucket),
                JobsBucket = Get("SDD_S3_BUCKET_JOBS", s3.JobsBucket),
            },
        };
    }
}

public sealed record RabbitMqSettings
{
    public string Host { get; init; } = "127.0.0.1";
    public int Port { get; init; } = 5672;
    public int ManagementPort { get; init; } = 15672;
    public string User { get; init; } = "guest";
    public string Password { get; init; } = "guest";
    public string VirtualHost { get; init; } = "/";

    public Uri ManagementUri => new($"http://{Host}:{ManagementPort}/");
}

public sealed record PostgresSettings
{
    public string Host { get; init; } = "127.0.0.1";
    public int Port { get; init; } = 5433;
    public string User { get; init; } = "postgres";
    public string Password { get; init; } = "sdd-local";
    public string Database { get; init; } = "sdd";

    /// <summary>An Npgsql connection string, optionally for another database on the same server.</summary>
    public string ConnectionString(string? database = null) =>
        $"Host={Host};Port={Port};Username={User};Password={Password};Database={database ?? Database}";
}

public sealed record S3Settings
{
    /// <summary>http(s)://host:port of any S3-compatible server (s3rver locally, MinIO in production).</summary>
    public Uri Endpoint { get; init; } = new("http://127.0.0.1:9000");
    /// <summary>
    /// SDD_S3_PUBLIC_ENDPOINT: the same server as clients outside the services' network reach it, used only to sign the
    /// URLs handed to clients (results, uploads); null = <see cref="Endpoint"/>.
    /// </summary>
    public Uri? PublicEndpoint { get; init; }
    public string AccessKey { get; init; } = "S3RVER";
    public string SecretKey { get; init; } = "S3RVER";
    public string Region { get; init; } = "us-east-1";
    public string DatasetsBucket { get; init; } = "sdd-datasets";
    public string ModelsBucket { get; init; } = "sdd-models";
    public string JobsBucket { get; init; } = "sdd-jobs";
}
