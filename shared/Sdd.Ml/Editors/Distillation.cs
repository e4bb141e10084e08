using System.Diagnostics;
using Sdd.Ml.Diffusion;
using Sdd.Ml.Guidance;
using Sdd.Ml.Torch;
using TorchSharp.PyBridge;

namespace Sdd.Ml.Editors;

/// <summary>
/// Selective diffusion distillation (paper Sec. 4.1, eq. 4): trains an editor f on images lacking an attribute.
/// Each step edits a batch, draws t from the selected set, takes the teacher's guidance gradient on the
/// edited images (no gradient through the teacher) and adds the fidelity term lambda * sum (f(x) - x)^2; a masked
/// editor adds the sparsity and smoothness penalties on its mask. With <see cref="DistillSettings.PositiveShare"/>
/// part of each batch is images that already have the attribute (delta guidance: zero on them).
/// Checkpoints (editor, optimiser, step, RNG) under <c>train/</c> make a run resumable.
/// </summary>
public sealed class Distillation : IDisposable
{
    private readonly string _dir;
    private readonly Teacher _teacher;
    private readonly Tensor _images, _sourceStates;
    private readonly Tensor? _positives, _positiveStates;
    private readonly int _attribute;
    private readonly TimestepSampler _timesteps;
    private readonly DistillSettings _s;
    private readonly OptimizerHelper _opt;
    private readonly Generator _gen;
    private EditorConfig _config;
    private double _smoothedEdit = double.NaN;

    public Editor Editor { get; }
    public int Step { get; private set; }
    /// <summary>Teacher network evaluations spent on training so far (per image).</summary>
    public long TeacherEvaluations => _teacher.Evaluations;

    /// <summary>
    /// <paramref name="images"/>/<paramref name="labels"/>: training images lacking the attribute; <paramref name="positives"/>:
    /// images that have it (with their labels), drawn for <see cref="DistillSettings.PositiveShare"/> of each batch.
    /// The tensors are the run's own (disposed with it).
    /// </summary>
    public Distillation(string dir, Teacher teacher, EditorConfig config, TimestepSampler timesteps, Tensor images, Tensor labels, bool resume,
        (Tensor Images, Tensor Labels)? positives = null)
    {
        _dir = dir;
        _teacher = teacher;
        _s = config.Settings;
        _config = config;
        _attribute = teacher.AttributeIndex(config.Attribute);
        _timesteps = timesteps;
        _images = images.to(teacher.Device).DetachFromDisposeScope();
        _sourceStates = AttributeCondition.FromLabels(labels).to(teacher.Device).DetachFromDisposeScope();
        if (positives is { } pos && pos.Images.shape[0] > 0 && _s.PositiveShare > 0)
        {
            _positives = pos.Images.to(teacher.Device).DetachFromDisposeScope();
            _positiveStates = AttributeCondition.FromLabels(pos.Labels).to(teacher.Device).DetachFromDisposeScope();
        }
        random.manual_seed(_s.Seed);
        Editor = new Editor(config, teacher.Device);
        _gen = new Generator((ulong)_s.Seed, teacher.Device);
        _opt = optim.AdamW(Editor.Net.parameters(), _s.LearningRate, 0.9, 0.999, 1e-8, _s.WeightDecay, false);
        var stateFile = Path.Combine(dir, "train", "state.json");
        if (resume && File.Exists(stateFile))
        {
            var state = TrainingState.Load(stateFile);
            Editor.Net.load_safetensors(Path.Combine(dir, Teacher.WeightsFile), strict: true);
            _opt.load_py(Path.Combine(dir, "train", "optimizer.bin"));
            state.Restore(_gen);
            Step = state.Step;
            _smoothedEdit = state.SmoothedLoss;
        }
    }

    /// <summary>One step; returns the mean squared edit |f(x) - x|^2 per pixel of the batch.</summary>
    public double TrainStep()
    {
        using var scope = NewDisposeScope();
        Editor.Net.train();
        int b = _s.BatchSize;
        int nPos = PositivesPerBatch;
        var idx = randint(0, _images.shape[0], [b - nPos], generator: _gen, dtype: ScalarType.Int64, device: _images.device);
        var x = _images.index_select(0, idx);
        var source = _sourceStates.index_select(0, idx);
        if (nPos > 0)
        {
            var pidx = randint(0, _positives!.shape[0], [nPos], generator: _gen, dtype: ScalarType.Int64, device: _images.device);
            x = cat([x, _positives.index_select(0, pidx)]);
            source = cat([source, _positiveStates!.index_select(0, pidx)]);
        }
        var target = GuidanceSettings.FromSource(_s.Guidance.Mode) ? source.clone() : AttributeCondition.Null(b, _teacher.Attributes.Count, x.device);
        target[.., _attribute] = AttributeCondition.Present;
        var t = _timesteps.Sample(b, _gen, x.device);
        var eps = randn(_teacher.ModelShape(x.shape), generator: _gen, device: x.device);

        _opt.zero_grad();
        var (change, mask) = Editor.Net.Parts(x);
        var y = mask is null ? x + change : x + mask * change;
        // The teacher's gradient is taken where the teacher works: on y itself (pixels), or on the latent z = E(y) of a
        // latent teacher, from where autograd carries it back through the frozen encoder into y and the editor, or (the
        // decoder setting) the decoder turns it into the image change it stands for.
        Tensor surrogate;
        var edit = (y - x).pow(2);
        if (_teacher.Latent && _s.LatentGradient == LatentGradient.Decoder)
        {
            Tensor z;
            using (no_grad()) z = _teacher.ToModelSpace(y.detach());
            // Top-k, when on, keeps the largest values of the image gradient, not of the latent one: a latent step decodes to
            // the edit where it is large plus a faint change everywhere (the decoder's group norms and attention see the
            // whole image), and it is that faint change that top-k should drop.
            var grad = ScoreDistillation.Gradient(_teacher, z, t, eps, target, source, _s.Guidance with { TopK = 0 });
            // d/dy of the first term is J_D grad / f^2; of the second 2 lambda (y - x).
            var decoded = _s.DecoderStep is { } step
                ? ScoreDistillation.DecodedStep(_teacher, z, grad, t, _s.Guidance.RequireScale(), step, _s.Guidance.TopK)
                : ScoreDistillation.DecodedGradient(_teacher, z, grad, topK: _s.Guidance.TopK);
            surrogate = (decoded * y).sum() + _s.Lambda * edit.sum();
        }
        else if (_teacher.Latent && _s.Guidance.TopK > 0)
        {
            // Through the encoder with top-k: as in the decoder setting, top-k keeps the largest values of the image gradient
            // (J_E^T g), not of the latent one, so the editor is pushed only where the teacher's step lands in pixels and not by
            // the faint spread the encoder's transpose gives it everywhere.
            var pixels = ScoreDistillation.EncodedGradient(_teacher, y,
                z => ScoreDistillation.Gradient(_teacher, z, t, eps, target, source, _s.Guidance with { TopK = 0 }), _s.Guidance.TopK);
            surrogate = (pixels * y).sum() + _s.Lambda * edit.sum();
        }
        else
        {
            var z = _teacher.ToModelSpace(y);
            var grad = ScoreDistillation.Gradient(_teacher, z, t, eps, target, source, _s.Guidance);
            // d/dz of the first term is grad (so d/dy is grad for pixels, J_E^T grad for latents); of the second 2 lambda (y - x).
            surrogate = (grad * z).sum() + _s.Lambda * edit.sum();
        }
        if (mask is not null) surrogate = surrogate + MaskPenalty(mask, _s);
        surrogate.backward();
        _opt.step();
        Step++;
        var e = edit.mean().item<float>();
        _smoothedEdit = double.IsNaN(_smoothedEdit) ? e : 0.95 * _smoothedEdit + 0.05 * e;
        return e;
    }

    /// <summary>How many images of each batch already have the attribute.</summary>
    public int PositivesPerBatch => _positives is null ? 0 : Math.Min(_s.BatchSize - 1, (int)Math.Round(_s.BatchSize * _s.PositiveShare));

    /// <summary>
    /// The mask's penalties, summed over the batch like the other terms: sparsity weight * sum m (edit as little area as
    /// the guidance allows) plus smoothness weight * total variation of m (one region, not speckle).
    /// </summary>
    public static Tensor MaskPenalty(Tensor mask, DistillSettings s)
    {
        long h = mask.shape[2], w = mask.shape[3];
        var tv = (mask.narrow(2, 1, h - 1) - mask.narrow(2, 0, h - 1)).abs().sum() + (mask.narrow(3, 1, w - 1) - mask.narrow(3, 0, w - 1)).abs().sum();
        return s.MaskSparsity * mask.sum() + s.MaskSmoothness * tv;
    }

    /// <summary>
    /// Trains while <paramref name="allows"/> the next step (given the current step), checkpointing every
    /// <paramref name="checkpointEvery"/> steps (0: only at the end) and at the end; returns the steps trained.
    /// </summary>
    public int Advance(Func<int, bool> allows, int totalSteps, Action<TrainingProgress>? progress = null, int checkpointEvery = 0)
    {
        var sw = Stopwatch.StartNew();
        int start = Step;
        while (Step < totalSteps && allows(Step))
        {
            var e = TrainStep();
            if (!double.IsFinite(e)) throw new InvalidOperationException($"Distillation diverged at step {Step} (edit size {e}); lower the scale or raise lambda.");
            progress?.Invoke(new TrainingProgress(Step, totalSteps, _smoothedEdit, (Step - start) / Math.Max(1e-9, sw.Elapsed.TotalSeconds)));
            if (checkpointEvery > 0 && Step % checkpointEvery == 0 && Step < totalSteps) Checkpoint();
        }
        Checkpoint();
        return Step - start;
    }

    /// <summary>Trains until <paramref name="untilStep"/> (or cancellation), checkpointing at the end.</summary>
    public void Run(int untilStep, Action<TrainingProgress>? progress = null, CancellationToken cancel = default) =>
        Advance(_ => !cancel.IsCancellationRequested, untilStep, progress);

    /// <summary>Sets the editor's mask gate (<see cref="EditorConfig.MaskGate"/>); its config records it at the next checkpoint.</summary>
    public void SetMaskGate(double gate)
    {
        _config = _config with { MaskGate = gate };
        Editor.Net.MaskGate = Editor.GateOf(_config);
    }

    /// <summary>Sets the editor's domain gate (<see cref="EditorConfig.Domain"/>); the next checkpoint writes it with the config.</summary>
    public void SetDomain(DomainGate gate)
    {
        Editor.SetDomain(gate);
        _config = _config with { Domain = gate.Config };
        gate.Save(_dir);
    }

    public void Checkpoint(Dictionary<string, double>? metrics = null)
    {
        var train = Path.Combine(_dir, "train");
        Directory.CreateDirectory(train);
        var m = new Dictionary<string, double>(_config.Metrics);
        // A figure that could not be measured (NaN, an infinity) is left out: the config, the registry and the API are JSON.
        if (metrics is not null) foreach (var kv in metrics) { if (double.IsFinite(kv.Value)) m[kv.Key] = kv.Value; else m.Remove(kv.Key); }
        _config = _config with { Step = Step, Metrics = m };
        Editor.Save(_dir, _config);
        AtomicFile.Write(Path.Combine(train, "optimizer.bin"), p => _opt.save_py(p));
        AtomicFile.Write(Path.Combine(train, "state.json"), p => TrainingState.Capture(Step, _gen, _smoothedEdit).Save(p));
    }

    public void Dispose()
    {
        Editor.Dispose();
        _images.Dispose();
        _sourceStates.Dispose();
        _positives?.Dispose();
        _positiveStates?.Dispose();
    }
}
