using MassTransit;

namespace Sdd.Edit.Components;

/// <summary>
/// The edit queue: SDD_EDIT_CONCURRENCY batches at once and as many prefetched, so other workers get the rest; retries
/// with backoff for passing faults (an outage of storage, the database or the broker) for about five minutes, well
/// inside RabbitMQ's 30-minute consumer timeout; a batch still failing then is the Ingest sweeper's once the queue is idle.
/// </summary>
public sealed class EditBatchConsumerDefinition : ConsumerDefinition<EditBatchConsumer>
{
    private readonly EditOptions _options;

    public EditBatchConsumerDefinition(EditOptions options)
    {
        _options = options;
        EndpointName = Sdd.Contracts.Queues.Edit;
        ConcurrentMessageLimit = options.Concurrency;
    }

    protected override void ConfigureConsumer(IReceiveEndpointConfigurator endpoint, IConsumerConfigurator<EditBatchConsumer> consumer, IRegistrationContext context)
    {
        endpoint.ConcurrentMessageLimit = _options.Concurrency;
        if (endpoint is IRabbitMqReceiveEndpointConfigurator rabbit) rabbit.PrefetchCount = _options.Concurrency;
        consumer.UseMessageRetry(r => r.Exponential(10, TimeSpan.FromSeconds(1), TimeSpan.FromSeconds(60), TimeSpan.FromSeconds(3)));
    }
}
