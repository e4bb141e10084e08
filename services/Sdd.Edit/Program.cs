using Sdd.Ml.Torch;

namespace Sdd.Edit;

/// <summary>The edit worker: applies attribute editors to batches of a job's images from the "edit" queue.</summary>
internal static class EditProgram
{
    private static async Task Main(string[] args)
    {
        var threads = TorchRuntime.ConfigureThreads();
        await using var host = EditWorker.Build(args);
        await EditWorker.StartAsync(host, threads);
        await host.WaitForShutdownAsync();
    }
}
