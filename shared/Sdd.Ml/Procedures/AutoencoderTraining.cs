using System.Text.Json;
using Sdd.Ml.Diffusion;
using Sdd.Ml.Evaluation;
using Sdd.Ml.Torch;
using TorchSharp.PyBridge;

namespace Sdd.Ml.Procedures;

/// <summary>
/// Training of an image autoencoder (<see cref="Autoencoder"/>) as a resumable procedure over a model folder: reconstruction
/// (L1) of a posterior sample plus a small KL term toward N(0, I), on random crops (the network is fully convolutional, so
/// crops cost less and teach the same filters), AdamW with warm-up and gradient clipping. <see cref="Finish"/> sets the
/// scaling factor so that latents have unit standard deviation (what the diffusion model expects) and measures held-out
/// reconstruction PSNR at full size. Files: config.json and diffusion_pytorch_model.safetensors (a diffusers folder), and
/// train/ (optimiser, generator state) while training.
/// </summary>
public sealed class AutoencoderTraining : IDisposable
{
    private readonly string _dir;
    private readonly Tensor _images;
    private readonly Autoencoder _ae;
    private readonly OptimizerHelper _opt;
    private readonly Generator _gen;
    private readonly AutoencoderTrainingSettings _s;
    private readonly int _crop;
    private double _smoothed = double.NaN;

    public int Step { get; private set; }
    public Autoencoder Autoencoder => _ae;
    public int TotalSteps => _s.Steps;

    /// <summary>
    /// Opens a folder: with <paramref name="resume"/> and a checkpoint there, continues it (the steps may be raised by
    /// <paramref name="settings"/>); otherwise starts from <paramref name="config"/>. <paramref name="images"/> (N, 3, S, S) in
    /// [-1, 1] are copied. <paramref name="crop"/>: the side of the random training crops (0: whole images).
    /// </summary>
    public AutoencoderTraining(string dir, AutoencoderConfig config, AutoencoderTrainingSettings settings, Tensor images, int crop, Device device, bool resume)
    {
        _dir = dir;
        var stateFile = Path.Combine(dir, "train", "state.json");
        bool resuming = resume && File.Exists(stateFile);
        if (resume && !resuming) throw new InvalidOperationException($"--resume was given but '{stateFile}' does not exist.");
        if (resuming)
        {
            var saved = Autoencoder.ReadConfig(dir);
            config = saved with { Sdd = (saved.Sdd ?? new SddAutoencoderInfo()) with { Training = (saved.Sdd?.Training ?? settings) with { Steps = settings.Steps } } };
        }
        else config = config with { Sdd = (config.Sdd ?? new SddAutoencoderInfo()) with { Training = settings } };
        _s = config.Sdd!.Training!;
        int side = (int)images.shape[^1];
        _crop = crop <= 0 || crop >= side ? side : crop;
        if (_crop % config.Downsampling != 0) throw new ArgumentException($"The crop {_crop} must be divisible by the autoencoder's downsampling {config.Downsampling}.");
        random.manual_seed(_s.Seed);
        _ae = new Autoencoder(config, device);
        _images = images.to(device).clone().DetachFromDisposeScope();
        _gen = new Generator((ulong)_s.Seed, device);
        _opt = optim.AdamW(_ae.Net.parameters(), _s.LearningRate, 0.9, 0.999, 1e-8, 0.0, false);
        if (resuming)
        {
            StrictWeights.Load(_ae.Net, Path.Combine(dir, AutoencoderConfig.WeightsFile));
            _opt.load_py(Path.Combine(dir, "train", "optimizer.bin"));
            var state = TrainingState.Load(stateFile);
            state.Restore(_gen);
            Step = state.Step;
            _smoothed = state.SmoothedLoss;
        }
    }

    private double LearningRate(int step) => _s.LearningRate * Math.Min(1.0, (step + 1.0) / Math.Max(1, _s.WarmupSteps));

    /// <summary>One optimisation step on a batch of random crops (randomly mirrored); returns the loss.</summary>
    public double TrainStep()
    {
        using var scope = NewDisposeScope();
        _ae.Net.train();
        long n = _images.shape[0], side = _images.shape[^1];
        int b = _s.BatchSize;
        var idx = randint(0, n, [b], generator: _gen, dtype: ScalarType.Int64, device: _images.device);
        var x = _images.index_select(0, idx);
        if (_crop < side)
        {
            var at = randint(0, side - _crop + 1, [2], generator: _gen, dtype: ScalarType.Int64).data<long>().ToArray();
            x = x[.., .., TensorIndex.Slice(at[0], at[0] + _crop), TensorIndex.Slice(at[1], at[1] + _crop)];
        }
        var flip = rand([b, 1, 1, 1], generator: _gen, device: x.device).lt(0.5);
        x = where(flip, x.flip(3), x);
        var (mean, logVar) = _ae.Net.Encode(x);
        var z = mean + (0.5 * logVar).exp() * randn(mean.shape, generator: _gen, device: mean.device);
        var recon = _ae.Net.Decode(z);
        var kl = 0.5 * (mean.pow(2) + logVar.exp() - 1 - logVar).sum([1, 2, 3]).mean();
        var loss = (recon - x).abs().mean() + _s.KlWeight * kl;
        foreach (var g in _opt.ParamGroups) g.LearningRate = LearningRate(Step);
        _opt.zero_grad();
        loss.backward();
        nn.utils.clip_grad_norm_(_ae.Net.parameters(), _s.GradClip);
        _opt.step();
        Step++;
        var l = loss.item<float>();
        _smoothed = double.IsNaN(_smoothed) ? l : 0.98 * _smoothed + 0.02 * l;
        return l;
    }

    /// <summary>Trains while <paramref name="allows"/> the next step and the run is not done, checkpointing at the cadence and at the end; returns the steps trained.</summary>
    public int Advance(Func<int, bool> allows, Action<TrainingProgress>? progress = null)
    {
        var sw = System.Diagnostics.Stopwatch.StartNew();
        int start = Step;
        while (Step < _s.Steps && allows(Step))
        {
            var l = TrainStep();
            if (!double.IsFinite(l)) throw new InvalidOperationException($"Autoencoder training diverged at step {Step} (loss {l}).");
            progress?.Invoke(new TrainingProgress(Step, _s.Steps, _smoothed, (Step - start) / Math.Max(1e-9, sw.Elapsed.TotalSeconds)));
            if (Step % _s.CheckpointEvery == 0 && Step < _s.Steps) Checkpoint();
        }
        Checkpoint();
        return Step - start;
    }

    /// <summary>Writes the autoencoder (a diffusers folder) and the training state; each file is replaced atomically.</summary>
    public void Checkpoint(AutoencoderConfig? config = null)
    {
        var train = Path.Combine(_dir, "train");
        Directory.CreateDirectory(train);
        var c = config ?? _ae.Config;
        var info = c.Sdd ?? new SddAutoencoderInfo();
        c = c with { Sdd = info with { Step = Step, Metrics = new Dictionary<string, double>(info.Metrics) { ["train_loss"] = Math.Round(_smoothed, 5) } } };
        AtomicFile.Write(Path.Combine(_dir, AutoencoderConfig.WeightsFile), p => _ae.Net.save_safetensors(p));
        AtomicFile.Write(Path.Combine(_dir, ModelFolder.ConfigFile), p => File.WriteAllText(p, ModelFolder.Serialize(c)));
        AtomicFile.Write(Path.Combine(train, "optimizer.bin"), p => _opt.save_py(p));
        AtomicFile.Write(Path.Combine(train, "state.json"), p => TrainingState.Capture(Step, _gen, _smoothed).Save(p));
        _ae.Config = c;
    }

    /// <summary>
    /// Sets the scaling factor to 1 / std of the latents' posterior means over (up to 512 of) the training images and
    /// records the held-out reconstruction PSNR (mean, through the posterior mean, at full size) in the config.
    /// </summary>
    public ReconstructionReport Finish(Tensor heldOut, string? dataset = null)
    {
        if (Step < _s.Steps) throw new InvalidOperationException($"The run is at step {Step} of {_s.Steps}: advance it to the end before finishing.");
        double std;
        using (var scope = NewDisposeScope())
        using (no_grad())
        {
            _ae.Net.eval();
            var sample = _images[TensorIndex.Slice(0, Math.Min(512, _images.shape[0]))];
            var means = Timed.Map(sample, 32, x => _ae.Net.Encode(x).Mean).Output;
            std = means.std().item<float>();
        }
        var scaled = _ae.Config with { ScalingFactor = Math.Round(1.0 / Math.Max(1e-6, std), 5) };
        _ae.Config = scaled;
        var report = Reconstruction(_ae, heldOut);
        var info = scaled.Sdd ?? new SddAutoencoderInfo();
        Checkpoint(scaled with
        {
            Sdd = info with
            {
                Dataset = dataset ?? info.Dataset,
                Metrics = new Dictionary<string, double>(info.Metrics) { ["heldout_psnr"] = report.Psnr, ["heldout_images"] = report.Images, ["latent_std"] = Math.Round(std, 5) },
            },
        });
        return report;
    }

    /// <summary>Mean reconstruction PSNR (posterior mean, decoded, clamped) and the worst image's, on images in [-1, 1].</summary>
    public static ReconstructionReport Reconstruction(Autoencoder ae, Tensor images)
    {
        using var scope = NewDisposeScope();
        using var _ = no_grad();
        ae.Net.eval();
        var (recon, ms) = Timed.Map(images, 16, x => ae.Decode(ae.Encode(x.to(ae.Device))));
        var psnr = ImageMetrics.Psnr(recon, images);
        return new ReconstructionReport((int)images.shape[0], Math.Round(psnr.mean().item<float>(), 2), Math.Round(psnr.min().item<float>(), 2), Math.Round(ms, 2));
    }

    public void Dispose()
    {
        _ae.Dispose();
        _images.Dispose();
    }
}

public sealed record ReconstructionReport(int Images, double Psnr, double WorstPsnr, double MsPerImage);
