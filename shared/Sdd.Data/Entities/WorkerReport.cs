namespace Sdd.Data.Entities;

/// <summary>
/// What one worker process says it can run, renewed every half minute while it lives: its service ("distill", "edit"),
/// device, memory, the teacher kinds it loads and the largest Stable Diffusion image side it takes. Ingest reads the
/// live ones to refuse at submission what no worker of the deployment can take.
/// </summary>
public class WorkerReport
{
    public const string Distill = "distill", Edit = "edit";

    /// <summary>The worker's name (host:pid:nonce), as in run leases.</summary>
    public required string Name { get; set; }
    public required string Service { get; set; }
    public required string Device { get; set; }
    public long MemoryBytes { get; set; }
    public List<string> TeacherKinds { get; set; } = [];
    /// <summary>0: no Stable Diffusion teacher.</summary>
    public int StableDiffusionMaxImageSize { get; set; }
    public DateTimeOffset StartedAt { get; set; }
    public DateTimeOffset HeartbeatAt { get; set; }
}
