using MassTransit;
using Sdd.Contracts;
using Sdd.Distill.Runs;
using Sdd.Distill.Training;

namespace Sdd.Distill.Components;

/// <summary>Trains a teacher in chunks: TrainTeacher starts the run (chunk 1), RunTeacherChunk continues it; the last chunk trains its judge.</summary>
public sealed class TeacherRunConsumer(ChunkedRun chunks, TeacherRuns training) : IConsumer<TrainTeacher>, IConsumer<RunTeacherChunk>
{
    public Task Consume(ConsumeContext<TrainTeacher> context) =>
        chunks.ExecuteAsync(context, context.Message.RunId, 1, new TeacherWork(context.Message.RunId, context.Message.TeacherId, training));

    public Task Consume(ConsumeContext<RunTeacherChunk> context) =>
        chunks.ExecuteAsync(context, context.Message.RunId, context.Message.Chunk, new TeacherWork(context.Message.RunId, context.Message.TeacherId, training));

    private sealed class TeacherWork(Guid runId, Guid teacherId, TeacherRuns training) : IChunkedWork
    {
        private TeacherRequest? _request;

        public string Kind => "teacher";

        public async Task<(string Prefix, int TotalSteps)> ResolveAsync(CancellationToken ct)
        {
            var run = await training.ResolveAsync(teacherId, ct);
            _request = run;
            return (run.Prefix, run.Steps);
        }

        public Task<ChunkResult> RunChunkAsync(int chunk, ChunkProgress? from, RunLease lease, CancellationToken stopping) =>
            training.RunChunkAsync(runId, _request!, chunk, from, lease, stopping);

        public async Task<Guid> CompleteAsync(ChunkResult result, CancellationToken ct)
        {
            await training.CompleteAsync(runId, _request!, result.Step, ct);
            return teacherId;
        }

        public Task FailTargetAsync(CancellationToken ct) => training.FailAsync(teacherId, ct);

        public object NextChunk(int chunk) => new RunTeacherChunk(runId, teacherId, chunk);
    }
}
