using MassTransit;
using Sdd.Contracts;
using Sdd.Distill.Runs;
using Sdd.Distill.Training;

namespace Sdd.Distill.Components;

/// <summary>Trains a teacher in chunks: TrainTeacher starts the run (chunk 1), RunTeacherChunk continues it; the last chunk trains its judge.</summary>
/// <remarks>A Stable Diffusion teacher's run is its import (<see cref="TeacherImports"/>): one step, no training.</remarks>
public sealed class TeacherRunConsumer(ChunkedRun chunks, TeacherRuns training, TeacherImports imports, IDbContextFactory<SddDbContext> databases)
    : IConsumer<TrainTeacher>, IConsumer<RunTeacherChunk>
{
    public Task Consume(ConsumeContext<TrainTeacher> context) =>
        chunks.ExecuteAsync(context, context.Message.RunId, 1, new TeacherWork(context.Message.RunId, context.Message.TeacherId, training, imports, databases));

    public Task Consume(ConsumeContext<RunTeacherChunk> context) =>
        chunks.ExecuteAsync(context, context.Message.RunId, context.Message.Chunk, new TeacherWork(context.Message.RunId, context.Message.TeacherId, training, imports, databases));

    private sealed class TeacherWork(Guid runId, Guid teacherId, TeacherRuns training, TeacherImports imports, IDbContextFactory<SddDbContext> databases) : IChunkedWork
    {
        private TeacherRequest? _request;
        private Sdd.Data.Entities.Teacher? _import;
        private TeacherImports.Imported? _imported;

        public string Kind => "teacher";

        public async Task<(string Prefix, int TotalSteps)> ResolveAsync(CancellationToken ct)
        {
            await using (var db = await databases.CreateDbContextAsync(ct))
            {
                var row = await db.Teachers.AsNoTracking().SingleOrDefaultAsync(t => t.Id == teacherId, ct) ?? throw new RunFailure($"Teacher {teacherId} does not exist.");
                if (TeacherImports.IsImport(row))
                {
                    _import = row;
                    return (TeacherImports.Prefix(row), 1);
                }
            }
            var run = await training.ResolveAsync(teacherId, ct);
            _request = run;
            return (run.Prefix, run.Steps);
        }

        public async Task<ChunkResult> RunChunkAsync(int chunk, ChunkProgress? from, RunLease lease, CancellationToken stopping)
        {
            if (_import is null) return await training.RunChunkAsync(runId, _request!, chunk, from, lease, stopping);
            _imported = await imports.RunAsync(runId, _import, lease, stopping);
            return new ChunkResult(1, 1, true, TeacherImports.Prefix(_import));
        }

        public async Task<Guid> CompleteAsync(ChunkResult result, CancellationToken ct)
        {
            if (_import is not null) await imports.CompleteAsync(runId, _import, _imported!, ct);
            else await training.CompleteAsync(runId, _request!, result.Step, ct);
            return teacherId;
        }

        public Task FailTargetAsync(CancellationToken ct) => _import is not null ? imports.FailAsync(_import, ct) : training.FailAsync(teacherId, ct);

        public object NextChunk(int chunk) => new RunTeacherChunk(runId, teacherId, chunk);
    }
}
