using System.Diagnostics;
using Sdd.Ml.Torch;
using TorchSharp.PyBridge;

namespace Sdd.Ml.Diffusion;

/// <summary>
/// Trains an attribute-conditional teacher by epsilon prediction (DDPM, Ho et al. 2020, eq. 14) with random
/// dropout of the condition (for classifier-free guidance) and EMA weights. Checkpoints hold weights, EMA,
/// optimiser state, step and RNG, so a resumed run matches an uninterrupted one.
/// Files: teacher files in the folder, training state under <c>train/</c>.
/// </summary>
public sealed class TeacherTrainer : IDisposable
{
    private readonly string _dir;
    private readonly Tensor _images, _states;
    private readonly AttributeUNet _raw;
    private readonly Teacher _teacher; // holds the EMA weights
    private readonly OptimizerHelper _opt;
    private readonly Generator _gen;
    private readonly TeacherTrainingSettings _s;
    private TeacherConfig _config;
    private double _smoothed = double.NaN;

    public int Step { get; private set; }
    public Teacher Teacher => _teacher;

    /// <param name="images">What the UNet learns: images, or for a latent teacher the scaled latents of its <paramref name="autoencoder"/>.</param>
    public TeacherTrainer(string dir, TeacherConfig config, Tensor images, Tensor labels, Device device, bool resume, Autoencoder? autoencoder = null)
    {
        _dir = dir;
        _s = config.Training ?? new TeacherTrainingSettings();
        _config = config with { Training = _s };
        _images = images.to(device).DetachFromDisposeScope();
        _states = AttributeCondition.FromLabels(labels).to(device).DetachFromDisposeScope();
        random.manual_seed(_s.Seed);
        _teacher = new Teacher(_config, device, autoencoder);
        _raw = new AttributeUNet(_config.Unet);
        _raw.to(device);
        Ema.Copy(_raw, _teacher.Net); // same initial weights
        _gen = new Generator((ulong)_s.Seed, device);
        _opt = optim.AdamW(_raw.parameters(), _s.LearningRate, 0.9, 0.999, 1e-8, _s.WeightDecay, false);

        var stateFile = Path.Combine(dir, "train", "state.json");
        if (resume && File.Exists(stateFile))
        {
            var state = TrainingState.Load(stateFile);
            _raw.load_safetensors(Path.Combine(dir, "train", "raw.safetensors"), strict: true);
            _teacher.Net.load_safetensors(Path.Combine(dir, Teacher.WeightsFile), strict: true);
            _opt.load_py(Path.Combine(dir, "train", "optimizer.bin"));
            state.Restore(_gen);
            Step = state.Step;
            _smoothed = state.SmoothedLoss;
            var saved = Teacher.ReadConfig(dir);
            _config = _config with { Metrics = saved.Metrics };
        }
        else if (resume)
        {
            throw new InvalidOperationException($"Resuming needs a checkpoint, but '{stateFile}' does not exist.");
        }
    }

    /// <summary>Linear warm-up, then constant, or from <c>DecayFrom</c> a half cosine to zero at the last step.</summary>
    public static double LearningRate(TeacherTrainingSettings s, int step)
    {
        double warm = Math.Min(1.0, (step + 1.0) / Math.Max(1, s.WarmupSteps));
        if (s.DecayFrom is not { } from || step < from) return s.LearningRate * warm;
        double progress = Math.Min(1.0, (step - from) / (double)Math.Max(1, s.Steps - from));
        return s.LearningRate * warm * 0.5 * (1 + Math.Cos(Math.PI * progress));
    }

    /// <summary>One optimisation step; returns the loss.</summary>
    public double TrainStep()
    {
        using var scope = NewDisposeScope();
        _raw.train();
        long n = _images.shape[0];
        int b = _s.BatchSize;
        var idx = randint(0, n, [b], generator: _gen, dtype: ScalarType.Int64, device: _images.device);
        var x0 = _images.index_select(0, idx);
        if (_s.HorizontalFlip && !_teacher.Latent) // a latent teacher's data holds both orientations, encoded once
        {
            var flip = rand([b, 1, 1, 1], generator: _gen, device: x0.device).lt(0.5);
            x0 = where(flip, x0.flip(3), x0);
        }
        var states = AttributeCondition.Dropout(_states.index_select(0, idx), _s.DropAttribute, _s.DropAll, _gen);
        var t = randint(0, _config.TimeSteps, [b], generator: _gen, dtype: ScalarType.Int64, device: x0.device);
        var eps = randn(x0.shape, generator: _gen, device: x0.device);
        var xt = _teacher.Schedule.AddNoise(x0, t, eps);

        foreach (var g in _opt.ParamGroups) g.LearningRate = LearningRate(_s, Step);
        _opt.zero_grad();
        var loss = F.mse_loss(_raw.forward(xt, t, states), eps);
        loss.backward();
        nn.utils.clip_grad_norm_(_raw.parameters(), _s.GradClip);
        _opt.step();
        Step++;
        Ema.Update(_teacher.Net, _raw, Ema.Decay(_s.EmaDecay, Step));
        var l = loss.item<float>();
        _smoothed = double.IsNaN(_smoothed) ? l : 0.98 * _smoothed + 0.02 * l;
        return l;
    }

    /// <summary>
    /// Trains while <paramref name="allows"/> the next step (given the current one) and the step is below
    /// <paramref name="totalSteps"/>, checkpointing every CheckpointEvery steps and at the end; returns the steps trained.
    /// A non-finite loss throws <see cref="InvalidOperationException"/> saying at which step the run diverged.
    /// </summary>
    public int Advance(Func<int, bool> allows, int totalSteps, Action<TrainingProgress>? progress = null)
    {
        var sw = Stopwatch.StartNew();
        int start = Step;
        while (Step < totalSteps && allows(Step))
        {
            var l = TrainStep();
            if (!double.IsFinite(l)) throw new InvalidOperationException($"Teacher training diverged at step {Step} (loss {l}).");
            progress?.Invoke(new TrainingProgress(Step, totalSteps, _smoothed, (Step - start) / Math.Max(1e-9, sw.Elapsed.TotalSeconds)));
            if (Step % _s.CheckpointEvery == 0 && Step < totalSteps) Checkpoint();
        }
        Checkpoint();
        return Step - start;
    }

    /// <summary>Trains until <paramref name="untilStep"/> (or cancellation), checkpointing as <see cref="Advance"/> does.</summary>
    public void Run(int untilStep, Action<TrainingProgress>? progress = null, CancellationToken cancel = default) =>
        Advance(_ => !cancel.IsCancellationRequested, untilStep, progress);

    /// <summary>Writes the teacher (EMA) and the training state; each file is replaced atomically.</summary>
    public void Checkpoint(Dictionary<string, double>? metrics = null)
    {
        var train = Path.Combine(_dir, "train");
        Directory.CreateDirectory(train);
        var m = new Dictionary<string, double>(_config.Metrics) { ["train_loss"] = Math.Round(_smoothed, 5) };
        if (metrics is not null) foreach (var kv in metrics) m[kv.Key] = kv.Value;
        _config = _config with { Step = Step, Metrics = m };
        AtomicFile.Write(Path.Combine(train, "raw.safetensors"), p => _raw.save_safetensors(p));
        AtomicFile.Write(Path.Combine(train, "optimizer.bin"), p => _opt.save_py(p));
        AtomicFile.Write(Path.Combine(_dir, Teacher.WeightsFile), p => _teacher.Net.save_safetensors(p));
        AtomicFile.Write(Path.Combine(_dir, Teacher.ConfigFile), p => File.WriteAllText(p, System.Text.Json.JsonSerializer.Serialize(_config, TeacherConfig.Json)));
        AtomicFile.Write(Path.Combine(train, "state.json"), p => TrainingState.Capture(Step, _gen, _smoothed).Save(p));
    }

    public void Dispose()
    {
        _teacher.Dispose();
        _raw.Dispose();
        _images.Dispose();
        _states.Dispose();
    }
}
