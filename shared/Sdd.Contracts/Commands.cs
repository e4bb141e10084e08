namespace Sdd.Contracts;

// Commands: one receiver each, sent to its queue. Long work runs in bounded chunks: a worker that
// finishes a chunk checkpoints to object storage and sends the next chunk's command to itself.

/// <summary>Ingest → Distill: start training a teacher (the run row exists already).</summary>
public sealed record TrainTeacher(Guid RunId, Guid TeacherId);

/// <summary>
/// Distill → Distill: train the next chunk of a teacher run, resuming from its last checkpoint. Chunk 0 means "the
/// chunk after the last checkpoint, whichever it is" (sent by the run sweeper when a run's worker vanished).
/// </summary>
public sealed record RunTeacherChunk(Guid RunId, Guid TeacherId, int Chunk);

/// <summary>Ingest → Distill: select timesteps (HQS) and distill an editor version for an attribute.</summary>
public sealed record DistillEditor(Guid RunId, Guid EditorVersionId);

/// <summary>Distill → Distill: the next chunk of a distillation run, resuming from its last checkpoint (Chunk 0: the chunk after it).</summary>
public sealed record RunDistillChunk(Guid RunId, Guid EditorVersionId, int Chunk);

/// <summary>Ingest → Edit: edit these items of a job (tens of images); redelivery skips items already done.</summary>
public sealed record EditBatch(Guid JobId, IReadOnlyList<Guid> ItemIds);
