using MassTransit;
using Microsoft.Extensions.Logging;

namespace Sdd.Messaging;

/// <summary>
/// Events a consumer publishes after its work is recorded in the database (the row is the source of truth; the event
/// tells others sooner). A publish waits for the broker; when the broker dies mid-consume the wait could outlast the
/// receive endpoint's restart, which itself waits for in-flight consumers: seen as a worker left with no consumer on its
/// queue after RabbitMQ was killed and restarted. So the wait is bounded (30 s, or until the endpoint stops) and a
/// publish that does not finish is logged and given up: the consume completes, the endpoint restarts, and whatever
/// listens has a backstop that reads the rows (the webhook backstop, the run sweeper).
/// </summary>
public static class Announce
{
    public static readonly TimeSpan Patience = TimeSpan.FromSeconds(30);

    public static async Task<bool> EventAsync<T>(ConsumeContext context, T message, ILogger log) where T : class
    {
        using var patience = CancellationTokenSource.CreateLinkedTokenSource(context.CancellationToken);
        patience.CancelAfter(Patience);
        try
        {
            await context.Publish(message, patience.Token);
            return true;
        }
        catch (Exception e) when (e is OperationCanceledException || patience.IsCancellationRequested)
        {
            log.LogWarning("{Event} not published (the broker did not take it within {Seconds} s or the endpoint is stopping); the database has it",
                typeof(T).Name, Patience.TotalSeconds);
            return false;
        }
    }
}
