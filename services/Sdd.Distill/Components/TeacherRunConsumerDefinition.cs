using MassTransit;

namespace Sdd.Distill.Components;

/// <summary>Teacher runs share the distill queue and its limits (one chunk at a time, prefetch 1).</summary>
public sealed class TeacherRunConsumerDefinition : ConsumerDefinition<TeacherRunConsumer>
{
    public TeacherRunConsumerDefinition()
    {
        EndpointName = DistillEndpoint.Name;
        ConcurrentMessageLimit = 1;
    }

    protected override void ConfigureConsumer(IReceiveEndpointConfigurator endpoint, IConsumerConfigurator<TeacherRunConsumer> consumer, IRegistrationContext context)
    {
        DistillEndpoint.Configure(endpoint);
    }
}
