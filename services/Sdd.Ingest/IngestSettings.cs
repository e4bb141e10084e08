namespace Sdd.Ingest;

/// <summary>The Ingest service's own SDD_* settings (the servers are in <see cref="SddSettings"/>).</summary>
public sealed record IngestSettings
{
    /// <summary>SDD_INGEST_URL: where Kestrel listens (loopback only by default).</summary>
    public string Url { get; init; } = "http://127.0.0.1:8080";
    /// <summary>The well-known admin key of the local stack; refused anywhere else.</summary>
    public const string LocalAdminKey = "sdd-admin-local";
    /// <summary>Placeholders shipped in deployment files (deploy/k8s/secrets.env.example): never accepted.</summary>
    public static readonly string[] PlaceholderKeys = ["change-me-admin-key", "change-me"];
    /// <summary>SDD_ADMIN_KEY: the bootstrap key that may create other keys.</summary>
    public string AdminKey { get; init; } = LocalAdminKey;
    /// <summary>SDD_STACK_MODE: "local" (set by deploy/local/env.sh) lets the well-known admin key through.</summary>
    public string? StackMode { get; init; }
    /// <summary>SDD_MAX_UPLOAD_BYTES: largest request body (a job's files or a dataset zip).</summary>
    public long MaxUploadBytes { get; init; } = 256L << 20;
    /// <summary>SDD_MAX_IMAGE_PIXELS: largest width × height accepted, read from the header before decoding.</summary>
    public long MaxImagePixels { get; init; } = Limits.MaxImagePixels;
    /// <summary>SDD_MAX_INPUT_BYTES: largest single image (a zip entry; the workers check objects the same way).</summary>
    public long MaxInputBytes { get; init; } = Limits.MaxInputBytes;
    /// <summary>SDD_ITEM_ATTEMPTS: sends of an item whose batch was lost before it fails for good.</summary>
    public int ItemAttempts { get; init; } = Limits.ItemAttempts;
    /// <summary>
    /// SDD_EDIT_BATCH_SIZE: most items per EditBatch command (default 256). An upload's batches are sized by pixels
    /// (<see cref="EditBatchPixels"/> over its largest image); a job over a bucket prefix, whose sizes are unknown, gets
    /// batches of at most 32.
    /// </summary>
    public int EditBatchSize { get; init; } = 256;
    /// <summary>SDD_EDIT_BATCH_PIXELS: pixels per EditBatch of an upload (default 2 Mi: 32 images of 256x256, 256 of 32x32).</summary>
    public long EditBatchPixels { get; init; } = 2L << 20;

    /// <summary>Items per EditBatch for images of at most <paramref name="maxPixels"/> pixels (null: unknown).</summary>
    public int BatchSizeFor(long? maxPixels) => maxPixels is { } p && p > 0
        ? (int)Math.Clamp(EditBatchPixels / p, 1, EditBatchSize)
        : Math.Min(32, EditBatchSize);
    /// <summary>SDD_UPLOAD_PARALLELISM: a job upload's images stored at once (pooled connections to S3).</summary>
    public int UploadParallelism { get; init; } = 16;
    /// <summary>SDD_MAX_ZIP_ENTRIES / SDD_MAX_ZIP_BYTES: what a dataset zip may expand to.</summary>
    public int MaxZipEntries { get; init; } = 200_000;
    public long MaxZipBytes { get; init; } = 2L << 30;
    /// <summary>SDD_MAX_ZIP_RATIO: how many times its compressed size an entry (or the whole zip) may inflate to.</summary>
    public int MaxZipRatio { get; init; } = 100;
    /// <summary>SDD_DISPATCH_SWEEP_SECONDS: how often unsent or stalled items are looked for.</summary>
    public TimeSpan SweepInterval { get; init; } = TimeSpan.FromSeconds(10);
    /// <summary>SDD_DISPATCH_GRACE_SECONDS: an item never sent is the sweeper's once its job is this old.</summary>
    public TimeSpan DispatchGrace { get; init; } = TimeSpan.FromSeconds(20);
    /// <summary>SDD_REDISPATCH_AFTER_SECONDS: a sent item nobody touched for this long is sent again.</summary>
    public TimeSpan RedispatchAfter { get; init; } = TimeSpan.FromMinutes(15);
    /// <summary>SDD_MAX_ITEMS_PER_JOB: images one job may hold (uploaded or listed under a prefix).</summary>
    public int MaxItemsPerJob { get; init; } = 100_000;
    /// <summary>SDD_MAX_ACTIVE_JOBS / SDD_MAX_ACTIVE_RUNS: an owner's jobs and runs not yet finished; one more is a 429.</summary>
    public int MaxActiveJobs { get; init; } = 20;
    public int MaxActiveRuns { get; init; } = 4;
    /// <summary>SDD_RATE_PER_MINUTE: requests per minute per owner (per client address without a key); beyond, 429 with Retry-After.</summary>
    public int RatePerMinute { get; init; } = 600;
    /// <summary>SDD_MAX_JSON_BYTES: largest body of a request that is not a multipart upload.</summary>
    public long MaxJsonBytes { get; init; } = 1 << 20;
    /// <summary>SDD_TEACHER_MAX_IMAGE_SIZE: the largest teacher image side the distill fleet trains (128 on CPU workers; raise it for GPU fleets).</summary>
    public int TeacherMaxImageSize { get; init; } = 128;
    /// <summary>SDD_TEACHER_IMPORT_MAX_BYTES: the most bytes of Stable Diffusion weights and configs one import copies.</summary>
    public long TeacherImportMaxBytes { get; init; } = StableDiffusionLayout.DefaultMaxBytes;
    /// <summary>
    /// SDD_WEBHOOK_HOSTS: the host names a webhook may name, comma-separated ("*", the default: any). Whatever the name,
    /// the address connected to must pass <see cref="Webhooks.WebhookEgress"/>: no loopback, private, link-local or
    /// metadata address unless SDD_WEBHOOK_ALLOW names it, so a stranger cannot make the service call into its own network.
    /// </summary>
    public IReadOnlyList<string> WebhookHosts { get; init; } = ["*"];
    /// <summary>SDD_WEBHOOK_ALLOW: trusted internal receivers that pass the egress policy (host, host:port, ip or CIDR; comma-separated; none by default).</summary>
    public IReadOnlyList<string> WebhookAllow { get; init; } = [];
    /// <summary>SDD_WEBHOOK_PORTS: the ports a webhook may connect to (allowed receivers aside): 80, 443 and the unprivileged ports by default.</summary>
    public string WebhookPorts { get; init; } = "80,443,1024-65535";
    /// <summary>SDD_WEBHOOK_ATTEMPTS: posts of an event before its delivery is given up (backoff 5 s doubling, at most 1 h apart).</summary>
    public int WebhookAttempts { get; init; } = 8;
    /// <summary>SDD_WEBHOOK_TIMEOUT_SECONDS: how long one post may take.</summary>
    public TimeSpan WebhookTimeout { get; init; } = TimeSpan.FromSeconds(10);
    /// <summary>SDD_IDEMPOTENCY_HOURS: how long the answer to a POST with an Idempotency-Key is kept for a retry.</summary>
    public TimeSpan IdempotencyRetention { get; init; } = TimeSpan.FromHours(24);
    /// <summary>SDD_HOME: the repository root holding shared/models (else found by walking up to SDD.sln).</summary>
    public string? Home { get; init; }

    /// <summary>
    /// Throws unless the admin key is one of the deployment's own: the well-known default is for the local stack only
    /// (SDD_STACK_MODE=local); compose and Kubernetes must set SDD_ADMIN_KEY.
    /// </summary>
    public IngestSettings RequireOwnAdminKey()
    {
        if (AdminKey == LocalAdminKey && StackMode != "local")
            throw new InvalidOperationException(
                $"SDD_ADMIN_KEY is unset or the well-known local key '{LocalAdminKey}': set a secret admin key (SDD_STACK_MODE=local allows the default on the local stack only).");
        if (PlaceholderKeys.Contains(AdminKey))
            throw new InvalidOperationException($"SDD_ADMIN_KEY is the placeholder '{AdminKey}' of a deployment file: set a long random key.");
        if (AdminKey.Length < 12)
            throw new InvalidOperationException("SDD_ADMIN_KEY is shorter than 12 characters; use a long random key.");
        return this;
    }

    public static IngestSettings From(IConfiguration config)
    {
        var d = new IngestSettings();
        string? Get(string name) => config[name] is { Length: > 0 } v ? v : null;
        long GetLong(string name, long fallback) => Get(name) is { } v
            ? long.TryParse(v, out var n) && n > 0 ? n : throw new FormatException($"{name}='{v}' is not a positive number")
            : fallback;
        TimeSpan Seconds(string name, TimeSpan fallback) => Get(name) is { } v
            ? double.TryParse(v, System.Globalization.CultureInfo.InvariantCulture, out var s) && s >= 0 ? TimeSpan.FromSeconds(s)
                : throw new FormatException($"{name}='{v}' is not a number of seconds")
            : fallback;
        return new IngestSettings
        {
            Url = Get("SDD_INGEST_URL") ?? d.Url,
            AdminKey = Get("SDD_ADMIN_KEY") ?? d.AdminKey,
            StackMode = Get("SDD_STACK_MODE"),
            MaxUploadBytes = GetLong("SDD_MAX_UPLOAD_BYTES", d.MaxUploadBytes),
            MaxImagePixels = GetLong("SDD_MAX_IMAGE_PIXELS", d.MaxImagePixels),
            MaxInputBytes = GetLong("SDD_MAX_INPUT_BYTES", d.MaxInputBytes),
            ItemAttempts = (int)GetLong("SDD_ITEM_ATTEMPTS", d.ItemAttempts),
            EditBatchSize = (int)GetLong("SDD_EDIT_BATCH_SIZE", d.EditBatchSize),
            EditBatchPixels = Math.Max(1, GetLong("SDD_EDIT_BATCH_PIXELS", d.EditBatchPixels)),
            UploadParallelism = (int)Math.Max(1, GetLong("SDD_UPLOAD_PARALLELISM", d.UploadParallelism)),
            MaxZipEntries = (int)GetLong("SDD_MAX_ZIP_ENTRIES", d.MaxZipEntries),
            MaxZipBytes = GetLong("SDD_MAX_ZIP_BYTES", d.MaxZipBytes),
            MaxZipRatio = (int)GetLong("SDD_MAX_ZIP_RATIO", d.MaxZipRatio),
            SweepInterval = Seconds("SDD_DISPATCH_SWEEP_SECONDS", d.SweepInterval),
            DispatchGrace = Seconds("SDD_DISPATCH_GRACE_SECONDS", d.DispatchGrace),
            RedispatchAfter = Seconds("SDD_REDISPATCH_AFTER_SECONDS", d.RedispatchAfter),
            MaxItemsPerJob = (int)GetLong("SDD_MAX_ITEMS_PER_JOB", d.MaxItemsPerJob),
            MaxActiveJobs = (int)GetLong("SDD_MAX_ACTIVE_JOBS", d.MaxActiveJobs),
            MaxActiveRuns = (int)GetLong("SDD_MAX_ACTIVE_RUNS", d.MaxActiveRuns),
            RatePerMinute = (int)GetLong("SDD_RATE_PER_MINUTE", d.RatePerMinute),
            MaxJsonBytes = GetLong("SDD_MAX_JSON_BYTES", d.MaxJsonBytes),
            TeacherMaxImageSize = (int)GetLong("SDD_TEACHER_MAX_IMAGE_SIZE", d.TeacherMaxImageSize),
            TeacherImportMaxBytes = GetLong("SDD_TEACHER_IMPORT_MAX_BYTES", d.TeacherImportMaxBytes),
            WebhookHosts = Get("SDD_WEBHOOK_HOSTS") is { } hosts
                ? hosts.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries) : d.WebhookHosts,
            WebhookAllow = Get("SDD_WEBHOOK_ALLOW") is { } allow
                ? allow.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries) : d.WebhookAllow,
            WebhookPorts = Get("SDD_WEBHOOK_PORTS") ?? d.WebhookPorts,
            WebhookAttempts = (int)GetLong("SDD_WEBHOOK_ATTEMPTS", d.WebhookAttempts),
            WebhookTimeout = Seconds("SDD_WEBHOOK_TIMEOUT_SECONDS", d.WebhookTimeout),
            IdempotencyRetention = TimeSpan.FromHours(GetLong("SDD_IDEMPOTENCY_HOURS", (long)d.IdempotencyRetention.TotalHours)),
            Home = Get("SDD_HOME"),
        };
    }
}
