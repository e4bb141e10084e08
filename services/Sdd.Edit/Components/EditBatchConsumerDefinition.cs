using MassTransit;

namespace Sdd.Edit.Components;

/// <summary>The edit queue: SDD_EDIT_CONCURRENCY batches at once and as many prefetched, so other workers get the rest; retries for passing faults.</summary>
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
        consumer.UseMessageRetry(r => r.Intervals(TimeSpan.FromSeconds(1), TimeSpan.FromSeconds(5), TimeSpan.FromSeconds(15)));
    }
}
