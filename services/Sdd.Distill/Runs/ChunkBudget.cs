using System.Diagnostics;

namespace Sdd.Distill.Runs;

/// <summary>When a chunk ends: after a number of steps when SDD_DISTILL_CHUNK_STEPS is set, else after a wall-clock budget.</summary>
public sealed class ChunkBudget(DistillOptions options, int startStep, CancellationToken stopping, RunLease? lease = null)
{
    private readonly Stopwatch _clock = Stopwatch.StartNew();

    public TimeSpan Elapsed => _clock.Elapsed;

    /// <summary>
    /// True while another step fits in this chunk (a stopping host ends the chunk early, at a checkpoint). A lost lease
    /// throws <see cref="LeaseLostException"/>: the chunk is abandoned, nothing of it is uploaded or recorded.
    /// </summary>
    public bool Allows(int step)
    {
        lease?.ThrowIfLost();
        return !stopping.IsCancellationRequested &&
               (options.ChunkSteps > 0 ? step - startStep < options.ChunkSteps : _clock.Elapsed.TotalSeconds < options.ChunkSeconds);
    }
}
