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
    /// <summary>Images the HQS indicator scores (SDD_INDICATOR_SAMPLES, default 32).</summary>
    public int IndicatorSamples { get; init; } = 32;
    /// <summary>Held-out images an editor is evaluated on (SDD_EVAL_IMAGES, default 200).</summary>
    public int EvalImages { get; init; } = 200;
    /// <summary>Portraits rendered for training when an attribute names no data set (SDD_RENDER_IMAGES, default 2000).</summary>
    public int RenderImages { get; init; } = 2000;
    /// <summary>Judge training steps at the end of a teacher run (SDD_JUDGE_STEPS, default 1500).</summary>
    public int JudgeSteps { get; init; } = 1500;
    /// <summary>Seconds between heartbeats of a running run (SDD_HEARTBEAT_SECONDS, default 10).</summary>
    public double HeartbeatSeconds { get; init; } = 10;

    public static DistillOptions From(IConfiguration c)
    {
        var d = new DistillOptions();
        return new DistillOptions
        {
            ChunkSeconds = Number(c, "SDD_DISTILL_CHUNK_SECONDS", d.ChunkSeconds),
            ChunkSteps = (int)Number(c, "SDD_DISTILL_CHUNK_STEPS", d.ChunkSteps),
            WorkDir = c["SDD_WORK_DIR"] is { Length: > 0 } w ? Path.Combine(w, "distill") : d.WorkDir,
            IndicatorSamples = (int)Number(c, "SDD_INDICATOR_SAMPLES", d.IndicatorSamples),
            EvalImages = (int)Number(c, "SDD_EVAL_IMAGES", d.EvalImages),
            RenderImages = (int)Number(c, "SDD_RENDER_IMAGES", d.RenderImages),
            JudgeSteps = (int)Number(c, "SDD_JUDGE_STEPS", d.JudgeSteps),
            HeartbeatSeconds = Number(c, "SDD_HEARTBEAT_SECONDS", d.HeartbeatSeconds),
        };
    }

    private static double Number(IConfiguration c, string name, double fallback) =>
        c[name] is { Length: > 0 } v
            ? double.TryParse(v, System.Globalization.CultureInfo.InvariantCulture, out var x) && x >= 0 ? x : throw new FormatException($"{name}='{v}' is not a non-negative number")
            : fallback;
}
