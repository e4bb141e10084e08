namespace Sdd.Contracts;

// Events: published; any service may subscribe. The database row stays the source of truth.

/// <summary>Distill → anyone (Ingest, CLI watchers): a run saved a checkpoint at this step.</summary>
public sealed record RunProgressed(Guid RunId, string Kind, int Step, int TotalSteps, DateTimeOffset At);

/// <summary>Distill → anyone: a run finished; ResultId is the teacher or editor version it produced.</summary>
public sealed record RunCompleted(Guid RunId, string Kind, Guid ResultId, DateTimeOffset At);

/// <summary>Distill → anyone: a run stopped with an error that retrying will not fix.</summary>
public sealed record RunFailed(Guid RunId, string Kind, string Error, DateTimeOffset At);

/// <summary>Edit → Ingest: a batch of a job was processed (items failed individually are counted, not thrown).</summary>
public sealed record BatchEdited(Guid JobId, int Done, int Failed, DateTimeOffset At);

/// <summary>Edit (the worker that records a job's last item) → Ingest and anyone: every item is done or failed.</summary>
public sealed record EditJobCompleted(Guid JobId, string State, int Done, int Failed, DateTimeOffset At, int Skipped = 0);
