using Sdd.Ml.Diffusion;
using Sdd.Ml.Procedures;

namespace Sdd.Ml.Tests;

[Collection(TorchCollection.Name)]
public sealed class AutoencoderTrainingTests
{
    private static AutoencoderConfig Config() => new() { BlockOutChannels = [8, 16, 16], LayersPerBlock = 1, NormNumGroups = 4, SampleSize = 16 };
    private static AutoencoderTrainingSettings Settings(int steps) => new() { Steps = steps, BatchSize = 8, LearningRate = 2e-3, WarmupSteps = 5, CheckpointEvery = 1000 };

    [Fact]
    public void Training_improves_reconstruction_and_finish_scales_latents_to_unit_spread_and_records_the_held_out_psnr()
    {
        var dir = Directory.CreateTempSubdirectory("sdd-vae-train-").FullName;
        try
        {
            var (x, _) = Tiny.Portraits(71, 0, 48, 16);
            var (held, _) = Tiny.Portraits(72, 0, 8, 16);
            using var run = new AutoencoderTraining(dir, Config(), Settings(150), x, crop: 0, CPU, resume: false);
            var before = AutoencoderTraining.Reconstruction(run.Autoencoder, held);
            run.Advance(_ => true);
            var report = run.Finish(held, "tiny");
            Assert.True(report.Psnr > before.Psnr + 3, $"held-out PSNR {before.Psnr} -> {report.Psnr} dB");

            using var loaded = Autoencoder.Load(dir);
            Assert.Equal(150, loaded.Config.Sdd!.Step);
            Assert.Equal(report.Psnr, loaded.Config.Sdd.Metrics["heldout_psnr"]);
            Assert.Equal("tiny", loaded.Config.Sdd.Dataset);
            using var scope = NewDisposeScope();
            using var _ = no_grad();
            var z = loaded.Encode(x);
            Assert.InRange(z.std().item<float>(), 0.9f, 1.1f); // the scaling factor makes latents unit-spread
            Assert.Equal(report.Psnr, AutoencoderTraining.Reconstruction(loaded, held).Psnr, 1);
        }
        finally { Directory.Delete(dir, true); }
    }

    [Fact]
    public void Resumed_training_matches_an_uninterrupted_run()
    {
        var a = Directory.CreateTempSubdirectory("sdd-vae-a-").FullName;
        var b = Directory.CreateTempSubdirectory("sdd-vae-b-").FullName;
        try
        {
            var (x, _) = Tiny.Portraits(73, 0, 16, 16);
            using (var whole = new AutoencoderTraining(a, Config(), Settings(6), x, crop: 8, CPU, resume: false)) whole.Advance(_ => true);
            using (var first = new AutoencoderTraining(b, Config(), Settings(6), x, crop: 8, CPU, resume: false)) first.Advance(step => step < 3);
            using (var second = new AutoencoderTraining(b, Config(), Settings(6), x, crop: 8, CPU, resume: true))
            {
                Assert.Equal(3, second.Step);
                second.Advance(_ => true);
            }
            using var wa = Autoencoder.Load(a);
            using var wb = Autoencoder.Load(b);
            var sa = wa.Net.state_dict(); var sb = wb.Net.state_dict();
            Assert.All(sa.Keys, k => Assert.True(Tiny.BitEqual(sa[k], sb[k]), $"{k} differs after resuming"));
            Assert.Throws<InvalidOperationException>(() => new AutoencoderTraining(Path.Combine(a, "nothing"), Config(), Settings(6), x, 8, CPU, resume: true));
        }
        finally { Directory.Delete(a, true); Directory.Delete(b, true); }
    }
}
