using MassTransit;
using Sdd.Contracts;
using Sdd.Distill.Runs;
using Sdd.Distill.Training;

namespace Sdd.Distill.Components;

/// <summary>Distils an editor version in chunks: DistillEditor starts the run (chunk 1), RunDistillChunk continues it.</summary>
public sealed class DistillRunConsumer(ChunkedRun chunks, EditorDistiller distiller, EditorRegistry registry)
    : IConsumer<DistillEditor>, IConsumer<RunDistillChunk>
{
    public Task Consume(ConsumeContext<DistillEditor> context) =>
        chunks.ExecuteAsync(context, context.Message.RunId, 1, new EditorWork(context.Message.RunId, context.Message.EditorVersionId, distiller, registry));

    public Task Consume(ConsumeContext<RunDistillChunk> context) =>
        chunks.ExecuteAsync(context, context.Message.RunId, context.Message.Chunk, new EditorWork(context.Message.RunId, context.Message.EditorVersionId, distiller, registry));

    private sealed class EditorWork(Guid runId, Guid versionId, EditorDistiller distiller, EditorRegistry registry) : IChunkedWork
    {
        private DistillRequest? _request;
        private DistilledEditor? _editor;

        public string Kind => "distill";

        public async Task<(string Prefix, int TotalSteps)> ResolveAsync(CancellationToken ct)
        {
            var run = await distiller.ResolveAsync(runId, versionId, ct);
            _request = run;
            return (run.Prefix, run.Settings.Steps);
        }

        public async Task<ChunkResult> RunChunkAsync(int chunk, ChunkProgress? from, RunLease lease, CancellationToken stopping)
        {
            var (result, editor) = await distiller.RunChunkAsync(runId, _request!, chunk, from, lease, stopping);
            _editor = editor;
            return result;
        }

        public async Task<Guid> CompleteAsync(ChunkResult result, CancellationToken ct)
        {
            await registry.PublishAsync(runId, versionId, _request!.Prefix, _editor!, result.Step, ct);
            return versionId;
        }

        public Task FailTargetAsync(CancellationToken ct) => registry.FailAsync(versionId, ct);

        public object NextChunk(int chunk) => new RunDistillChunk(runId, versionId, chunk);
    }
}
