using Microsoft.Extensions.Configuration;

namespace Sdd.Distill;

/// <summary>How the distill worker sizes its work; read from SDD_* variables like the rest of the settings.</summary>
public sealed record DistillOptions
{
    /// <summary>Wall-clock budget of one chunk (SDD_DISTILL_CHUNK_SECONDS, default 120).</summary>
    public double ChunkSeconds { get; init; } = 120;
    /// <summary>When above 0, a chunk is this many steps instead (SDD_DISTILL_CHUNK_STEPS).</summary>
    public int ChunkSteps { get; init; }
    /// <summary>Local scratch folder for checkpoints and cached models (SDD_WORK_DIR).</summary>
    public string WorkDir { get; init; } = Path.Combine(Path.GetTempPath(), "sdd-distill");
    /// <summary>
    /// How a distillation is sized, defaults from <see cref="DistillationSizes"/>: images the HQS indicator scores
    /// (SDD_INDICATOR_SAMPLES) and held-out images an editor is evaluated on (SDD_EVAL_IMAGES).
    /// </summary>
    public DistillationSizes Sizes { get; init; } = new();
    /// <summary>Portraits rendered for training when an attribute names no data set (SDD_RENDER_IMAGES, default 2000).</summary>
    public int RenderImages { get; init; } = 2000;
    /// <summary>Judge training steps at the end of a teacher run whose settings name none (SDD_JUDGE_STEPS, default <see cref="TeacherRunSettings.DefaultJudgeSteps"/>; 0: no judge).</summary>
    public int JudgeSteps { get; init; } = TeacherRunSettings.DefaultJudgeSteps;
    /// <summary>Seconds between heartbeats of a running run (SDD_HEARTBEAT_SECONDS, default 10).</summary>
    public double HeartbeatSeconds { get; init; } = 10;
    /// <summary>
    /// How long a run's lease outlives its holder's last heartbeat before another worker may take the run over
    /// (SDD_RUN_LEASE_SECONDS, default 3 heartbeats); must be longer than a heartbeat.
    /// </summary>
    public double LeaseSeconds { get; init; }
    /// <summary>
    /// How long transient S3, PostgreSQL and RabbitMQ errors of a run are retried, with exponential backoff from 2 s up to
    /// 60 s between attempts, before the run fails (SDD_RUN_RETRY_MINUTES, default 10).
    /// </summary>
    public double RetryMinutes { get; init; } = 10;
    /// <summary>
    /// A queued or running run that no worker heartbeated for this long (and whose command was not re-sent within it)
    /// gets its next chunk command re-sent by the run sweeper (SDD_RUN_STALE_SECONDS, default 600). It must exceed the
    /// lease; a run waiting behind others in the queue looks the same, and a re-sent duplicate is harmless.
    /// </summary>
    public double StaleSeconds { get; init; } = 600;
    /// <summary>Re-sends after which a run that still nobody takes up fails (SDD_RUN_MAX_RESENDS, default 5).</summary>
    public int MaxResends { get; init; } = 5;
    /// <summary>How often the run sweeper looks for stale runs (SDD_RUN_SWEEP_SECONDS, default 30; 0 turns it off).</summary>
    public double SweepSeconds { get; init; } = 30;
    /// <summary>
    /// The largest image side at which this worker runs a Stable Diffusion teacher (SDD_SD_MAX_IMAGE_SIZE, default 512: SD
    /// 1.x; 0: none). Reported with its device (<see cref="Sdd.Data.Entities.WorkerReport"/>), so that Ingest refuses a
    /// prompt attribute no live worker takes.
    /// </summary>
    public int StableDiffusionMaxImageSize { get; init; } = 512;

    public TimeSpan Heartbeat => TimeSpan.FromSeconds(Math.Max(0.2, HeartbeatSeconds));
    public TimeSpan Lease => TimeSpan.FromSeconds(LeaseSeconds > 0 ? LeaseSeconds : 3 * Math.Max(0.2, HeartbeatSeconds));
    public TimeSpan RetryWindow => TimeSpan.FromMinutes(RetryMinutes);
    public TimeSpan StaleAfter => TimeSpan.FromSeconds(StaleSeconds);

    public static DistillOptions From(IConfiguration c)
    {
        var d = new DistillOptions();
        return new DistillOptions
        {
            ChunkSeconds = Number(c, "SDD_DISTILL_CHUNK_SECONDS", d.ChunkSeconds),
            ChunkSteps = (int)Number(c, "SDD_DISTILL_CHUNK_STEPS", d.ChunkSteps),
            WorkDir = c["SDD_WORK_DIR"] is { Length: > 0 } w ? Path.Combine(w, "distill") : d.WorkDir,
            Sizes = d.Sizes with
            {
                IndicatorSamples = Math.Max(1, (int)Number(c, "SDD_INDICATOR_SAMPLES", d.Sizes.IndicatorSamples)),
                EvalImages = Math.Max(1, (int)Number(c, "SDD_EVAL_IMAGES", d.Sizes.EvalImages)),
            },
            RenderImages = (int)Number(c, "SDD_RENDER_IMAGES", d.RenderImages),
            JudgeSteps = (int)Number(c, "SDD_JUDGE_STEPS", d.JudgeSteps),
            HeartbeatSeconds = Number(c, "SDD_HEARTBEAT_SECONDS", d.HeartbeatSeconds),
            LeaseSeconds = Number(c, "SDD_RUN_LEASE_SECONDS", d.LeaseSeconds),
            RetryMinutes = Number(c, "SDD_RUN_RETRY_MINUTES", d.RetryMinutes),
            StaleSeconds = Number(c, "SDD_RUN_STALE_SECONDS", d.StaleSeconds),
            MaxResends = (int)Number(c, "SDD_RUN_MAX_RESENDS", d.MaxResends),
            SweepSeconds = Number(c, "SDD_RUN_SWEEP_SECONDS", d.SweepSeconds),
            StableDiffusionMaxImageSize = (int)Number(c, "SDD_SD_MAX_IMAGE_SIZE", d.StableDiffusionMaxImageSize),
        }.Validated();
    }

    /// <summary>Throws when the run timings contradict each other (a lease shorter than a heartbeat expires while its holder lives).</summary>
    public DistillOptions Validated()
    {
        if (Lease <= Heartbeat)
            throw new FormatException($"SDD_RUN_LEASE_SECONDS ({Lease.TotalSeconds} s) must be longer than SDD_HEARTBEAT_SECONDS ({Heartbeat.TotalSeconds} s)");
        if (StaleAfter <= Lease)
            throw new FormatException($"SDD_RUN_STALE_SECONDS ({StaleAfter.TotalSeconds} s) must be longer than the run lease ({Lease.TotalSeconds} s)");
        return this;
    }

    private static double Number(IConfiguration c, string name, double fallback) =>
        c[name] is { Length: > 0 } v
            ? double.TryParse(v, System.Globalization.CultureInfo.InvariantCulture, out var x) && x >= 0 ? x : throw new FormatException($"{name}='{v}' is not a non-negative number")
            : fallback;
}
