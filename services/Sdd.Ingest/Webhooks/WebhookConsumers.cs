using MassTransit;
using Sdd.Contracts;

namespace Sdd.Ingest.Webhooks;

/// <summary>Ingest's consumers of the completion events: each finished job or run with a webhook gets its delivery row.</summary>
public sealed class JobFinishedConsumer(WebhookOutbox outbox) : IConsumer<EditJobCompleted>
{
    public Task Consume(ConsumeContext<EditJobCompleted> context) => outbox.JobFinishedAsync(context.Message.JobId, context.CancellationToken);
}

public sealed class RunCompletedConsumer(WebhookOutbox outbox) : IConsumer<RunCompleted>
{
    public Task Consume(ConsumeContext<RunCompleted> context) => outbox.RunFinishedAsync(context.Message.RunId, context.CancellationToken);
}

public sealed class RunFailedConsumer(WebhookOutbox outbox) : IConsumer<RunFailed>
{
    public Task Consume(ConsumeContext<RunFailed> context) => outbox.RunFinishedAsync(context.Message.RunId, context.CancellationToken);
}
