using System.Collections.Concurrent;
using System.Text;
using MassTransit;
using MassTransit.Testing;
using Microsoft.Extensions.DependencyInjection;
using RabbitMQ.Client;
using Sdd.Contracts;
using Sdd.Messaging;

namespace Sdd.Infrastructure.Tests;

/// <summary>MassTransit over the stack's real RabbitMQ, configured by <see cref="SddBus"/>, in a virtual host of its own.</summary>
public class BusTests(RabbitVirtualHost vhost) : IClassFixture<RabbitVirtualHost>
{
    [Fact]
    public async Task The_bus_never_reports_usage_telemetry_to_the_vendor()
    {
        var services = new ServiceCollection();
        services.AddSddBus(Stack.Settings with { RabbitMq = vhost.Settings });
        await using var provider = services.BuildServiceProvider();

        // MassTransit posts a usage report to its vendor's host 5 minutes after start unless this is off (nothing leaves the machine).
        Assert.False(provider.GetRequiredService<Microsoft.Extensions.Options.IOptions<UsageTelemetryOptions>>().Value.Enabled);
    }

    [Fact]
    public async Task An_edit_batch_sent_through_RabbitMQ_is_consumed()
    {
        await using var provider = Harness(x => x.AddConsumer<EditBatchRecorder>());
        var harness = provider.GetRequiredService<ITestHarness>();
        await harness.Start();
        try
        {
            var batch = new EditBatch(Guid.NewGuid(), [Guid.NewGuid(), Guid.NewGuid()]);
            var queue = KebabCaseEndpointNameFormatter.Instance.Consumer<EditBatchRecorder>();
            var endpoint = await harness.Bus.GetSendEndpoint(new Uri($"queue:{queue}"));

            await endpoint.Send(batch);

            Assert.True(await harness.GetConsumerHarness<EditBatchRecorder>().Consumed.Any<EditBatch>(m => m.Context.Message.JobId == batch.JobId));
            Assert.True(EditBatchRecorder.Received.TryGetValue(batch.JobId, out var items));
            Assert.Equal(batch.ItemIds, items);
            Assert.True(await vhost.QueueExists(queue)); // a real broker queue, not an in-memory one
        }
        finally
        {
            await harness.Stop();
        }
    }

    [Fact]
    public async Task A_message_whose_consumer_always_throws_lands_in_the_error_queue_after_its_retries()
    {
        await using var provider = Harness(x => x.AddConsumer<AlwaysFailingConsumer, AlwaysFailingConsumerDefinition>());
        var harness = provider.GetRequiredService<ITestHarness>();
        await harness.Start();
        try
        {
            var probe = new FailureProbe(Guid.NewGuid());
            var endpoint = await harness.Bus.GetSendEndpoint(new Uri($"queue:{AlwaysFailingConsumerDefinition.Queue}"));

            await endpoint.Send(probe);

            Assert.True(await harness.Published.Any<Fault<FailureProbe>>(m => m.Context.Message.Message.Id == probe.Id));
            var dead = await GetFromQueue(AlwaysFailingConsumerDefinition.Queue + "_error", TimeSpan.FromSeconds(30));
            Assert.NotNull(dead);
            Assert.Contains(probe.Id.ToString(), Encoding.UTF8.GetString(dead.Body.Span));
            Assert.Equal("editor exploded", Encoding.UTF8.GetString((byte[])dead.BasicProperties.Headers!["MT-Fault-Message"]!));
            Assert.Equal(1 + AlwaysFailingConsumerDefinition.Retries, AlwaysFailingConsumer.Attempts[probe.Id]);
        }
        finally
        {
            await harness.Stop();
        }
    }

    private ServiceProvider Harness(Action<IBusRegistrationConfigurator> consumers) =>
        new ServiceCollection()
            .AddMassTransitTestHarness(x =>
            {
                x.SetKebabCaseEndpointNameFormatter();
                consumers(x);
                x.SetTestTimeouts(testInactivityTimeout: TimeSpan.FromSeconds(10));
                x.UsingSddRabbitMq(vhost.Settings);
            })
            .BuildServiceProvider(true);

    /// <summary>Takes one message from a queue with a plain RabbitMQ client, waiting for the queue and the message.</summary>
    private async Task<BasicGetResult?> GetFromQueue(string queue, TimeSpan timeout)
    {
        var s = vhost.Settings;
        var factory = new ConnectionFactory { HostName = s.Host, Port = s.Port, UserName = s.User, Password = s.Password, VirtualHost = s.VirtualHost };
        await using var connection = await factory.CreateConnectionAsync();
        await using var channel = await connection.CreateChannelAsync();
        var deadline = DateTime.UtcNow + timeout;
        while (DateTime.UtcNow < deadline)
        {
            if (await vhost.QueueExists(queue) && await channel.BasicGetAsync(queue, autoAck: true) is { } result)
                return result;
            await Task.Delay(200);
        }
        return null;
    }
}

public sealed class EditBatchRecorder : IConsumer<EditBatch>
{
    public static readonly ConcurrentDictionary<Guid, IReadOnlyList<Guid>> Received = new();

    public Task Consume(ConsumeContext<EditBatch> context)
    {
        Received[context.Message.JobId] = context.Message.ItemIds;
        return Task.CompletedTask;
    }
}

public sealed record FailureProbe(Guid Id);

public sealed class AlwaysFailingConsumer : IConsumer<FailureProbe>
{
    public static readonly ConcurrentDictionary<Guid, int> Attempts = new();

    public Task Consume(ConsumeContext<FailureProbe> context)
    {
        Attempts.AddOrUpdate(context.Message.Id, 1, (_, n) => n + 1);
        throw new InvalidOperationException("editor exploded");
    }
}

public sealed class AlwaysFailingConsumerDefinition : ConsumerDefinition<AlwaysFailingConsumer>
{
    public const string Queue = "always-failing";
    public const int Retries = 2;

    public AlwaysFailingConsumerDefinition() => EndpointName = Queue;

    protected override void ConfigureConsumer(IReceiveEndpointConfigurator endpoint,
        IConsumerConfigurator<AlwaysFailingConsumer> consumer, IRegistrationContext context) =>
        endpoint.UseMessageRetry(r => r.Immediate(Retries));
}
