using MassTransit;
using Sdd.Distill.Runs;

namespace Sdd.Distill.Components;

/// <summary>The distill queue: one run chunk at a time per worker, one message prefetched; passing faults are retried by <see cref="ChunkedRun"/> (re-sent with backoff), not here.</summary>
public sealed class DistillRunConsumerDefinition : ConsumerDefinition<DistillRunConsumer>
{
    public DistillRunConsumerDefinition()
    {
        EndpointName = DistillEndpoint.Name;
        ConcurrentMessageLimit = 1;
    }

    protected override void ConfigureConsumer(IReceiveEndpointConfigurator endpoint, IConsumerConfigurator<DistillRunConsumer> consumer, IRegistrationContext context)
    {
        DistillEndpoint.Configure(endpoint);
    }
}

/// <summary>The receive endpoint every distill consumer shares.</summary>
public static class DistillEndpoint
{
    public const string Name = Sdd.Contracts.Queues.Distill;

    public static void Configure(IReceiveEndpointConfigurator endpoint)
    {
        endpoint.ConcurrentMessageLimit = 1;
        if (endpoint is IRabbitMqReceiveEndpointConfigurator rabbit) rabbit.PrefetchCount = 1;
    }
}
