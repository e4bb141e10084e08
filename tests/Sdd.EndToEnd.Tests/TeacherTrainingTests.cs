namespace Sdd.EndToEnd.Tests;

/// <summary>A teacher trained from a registered data set by the distill worker, in chunks, with its judge.</summary>
[Collection(EndToEndCollection.Name)]
public sealed class TeacherTrainingTests(SddSystem system, ITestOutputHelper output)
{
    [Fact]
    public async Task A_teacher_is_trained_in_chunks_with_its_judge_and_becomes_ready()
    {
        var dataset = await system.DatasetAsync();
        var accepted = await system.Api.Teachers.TrainAsync(new TrainTeacher(dataset, Steps: 20, ImageSize: SddSystem.ImageSize));
        var (teacherId, runId) = (accepted.TeacherId, accepted.RunId);
        var run = await system.Api.WaitForFinishedAsync(runId, TimeSpan.FromMinutes(3), () => system.Distill.Tail());
        Assert.Equal(RunState.Succeeded, run.State);
        Assert.Equal(RunKind.Teacher, run.Kind);
        Assert.Equal(20, run.Step);
        var teacher = await system.Api.Teachers.GetAsync(teacherId);
        Assert.Equal(TeacherState.Ready, teacher.State);

        var prefix = $"tenants/{system.Owner}/teachers/{teacherId}/";
        foreach (var file in new[] { "config.json", "model.safetensors", "judge/config.json", "judge/model.safetensors" })
            Assert.NotNull(await system.Store.StatAsync(system.Settings.S3.ModelsBucket, prefix + file));
        var progress = JsonDocument.Parse(await system.Store.GetBytesAsync(system.Settings.S3.ModelsBucket, prefix + "train/progress.json")).RootElement;
        Assert.Equal(2, progress.Int("chunk")); // 20 steps in chunks of 10
        // The training state lives in the checkpoint generation the marker names.
        var generation = progress.Str("folder");
        Assert.StartsWith("train/chunk-00002-", generation);
        foreach (var file in new[] { "train/raw.safetensors", "train/optimizer.bin", "train/state.json" })
            Assert.NotNull(await system.Store.StatAsync(system.Settings.S3.ModelsBucket, prefix + generation + file));
        var judge = JsonDocument.Parse(await system.Store.GetBytesAsync(system.Settings.S3.ModelsBucket, prefix + "judge/config.json")).RootElement;
        Assert.Equal(5, judge.GetProperty("accuracy").EnumerateObject().Count()); // held-out accuracy per attribute
        output.WriteLine($"teacher {teacherId} ready; judge accuracy {judge.GetProperty("accuracy")}");
    }
}
