using MassTransit;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Sdd.Configuration;

namespace Sdd.Messaging;

/// <summary>MassTransit over RabbitMQ, configured the same way in every service.</summary>
public static class SddBus
{
    /// <summary>
    /// Registers the bus: <paramref name="configureConsumers"/> adds consumers (and their definitions,
    /// which own retry/concurrency), endpoints are named in kebab case and bound to RabbitMQ.
    /// </summary>
    public static IServiceCollection AddSddBus(this IServiceCollection services, IConfiguration configuration,
        Action<IBusRegistrationConfigurator>? configureConsumers = null) =>
        services.AddSddBus(SddSettings.From(configuration), configureConsumers);

    public static IServiceCollection AddSddBus(this IServiceCollection services, SddSettings settings,
        Action<IBusRegistrationConfigurator>? configureConsumers = null) =>
        services.AddMassTransit(x =>
        {
            x.SetKebabCaseEndpointNameFormatter();
            x.ConfigureUsageTelemetryOptions(o => o.Enabled = false); // nothing leaves the machine: no report to the vendor's host
            configureConsumers?.Invoke(x);
            x.UsingSddRabbitMq(settings.RabbitMq);
        });

    /// <summary>
    /// The RabbitMQ transport for the configured broker, with endpoints for every registered consumer.
    /// Usable inside <c>AddMassTransit</c> and <c>AddMassTransitTestHarness</c> alike.
    /// </summary>
    public static void UsingSddRabbitMq(this IBusRegistrationConfigurator x, RabbitMqSettings settings,
        Action<IBusRegistrationContext, IRabbitMqBusFactoryConfigurator>? configure = null) =>
        x.UsingRabbitMq((context, cfg) =>
        {
            cfg.Host(settings.Host, (ushort)settings.Port, settings.VirtualHost, h =>
            {
                h.Username(settings.User);
                h.Password(settings.Password);
            });
            configure?.Invoke(context, cfg);
            cfg.ConfigureEndpoints(context);
        });
}
