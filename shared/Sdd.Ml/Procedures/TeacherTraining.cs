using TorchSharp.PyBridge;
using Sdd.Ml.Data;
using Sdd.Ml.Diffusion;
using Sdd.Ml.Judging;
using Sdd.Ml.Torch;

namespace Sdd.Ml.Procedures;

/// <summary>A judge trained on a data set's training split; <see cref="Accuracy"/> per attribute on the held-out rows.</summary>
public sealed record TrainedJudge(string Dir, int TrainImages, int HeldOutImages, IReadOnlyDictionary<string, double> Accuracy);

/// <summary>
/// The training of a teacher (the attribute-conditional DDPM of <see cref="TeacherTrainer"/>) and of its judge as a
/// resumable procedure over a run folder, the one home of it for the CLI and the distill worker. <see cref="Open"/> a
/// folder (a fresh one, or one holding a checkpoint), <see cref="Advance"/> within a step or time budget
/// (checkpointing), and <see cref="Finish"/> (the judge, with its held-out accuracy). Files: the teacher (config.json,
/// model.safetensors holding the EMA weights), train/ (checkpoint), judge/.
/// </summary>
public sealed class TeacherTraining : IDisposable
{
    public const string JudgeFolder = Sdd.Formats.Models.ShippedModels.TeacherJudgeFolder;

    private readonly TeacherTrainer _trainer;

    public string Dir { get; }
    /// <summary>The run's settings: as given to a fresh run; a resumed run's are its checkpoint's, with the given steps and judge steps.</summary>
    public TeacherRunSettings Settings { get; }
    /// <summary>The teacher's config as the run started (the data set's attributes, the architecture, the recipe).</summary>
    public TeacherConfig Config { get; }
    public int Step => _trainer.Step;
    public bool Trained => Step >= Settings.Training.Steps;
    /// <summary>The teacher being trained (EMA weights).</summary>
    public Teacher Teacher => _trainer.Teacher;

    private TeacherTraining(string dir, TeacherTrainer trainer, TeacherConfig config, TeacherRunSettings settings)
    {
        Dir = dir;
        _trainer = trainer;
        Config = config;
        Settings = settings;
    }

    /// <summary>Whether a run folder holds a checkpoint to resume from.</summary>
    public static bool HasCheckpoint(string dir) => File.Exists(Path.Combine(dir, "train", "state.json"));

    /// <summary>The settings the teacher in a folder was trained with (the judge's steps are the default: a config does not record them).</summary>
    public static TeacherRunSettings SavedSettings(string dir)
    {
        var config = Teacher.ReadConfig(dir);
        int downsampling = config.Kind == TeacherConfig.KindLatentDdpm ? Autoencoder.ReadConfig(Teacher.AutoencoderDir(dir, config)).Downsampling : 1;
        return TeacherRunSettings.Of(config, downsampling: downsampling);
    }

    /// <summary>
    /// Opens a run folder. <paramref name="images"/> (N, 3, S, S) in [-1, 1] at the run's image size and
    /// <paramref name="labels"/> (N, A) of +1/-1/0 in <paramref name="attributes"/>' order are what the teacher learns
    /// from (the caller keeps them). With <paramref name="resume"/> a checkpoint in the folder is continued: its config
    /// rules (the weights were made with it) except the steps, which <paramref name="settings"/> may extend, and where the
    /// learning rate's decay starts; without one,
    /// or without <paramref name="resume"/>, the folder's previous run (train/, judge/) is discarded and a teacher is made
    /// from <paramref name="settings"/>. <paramref name="dataset"/> names the data set in the configs. Invalid settings
    /// throw <see cref="FormatException"/> naming the setting.
    /// </summary>
    /// <remarks>
    /// A latent teacher (<see cref="TeacherRunSettings.Kind"/> latent-ddpm) learns from the latents of the autoencoder in
    /// <paramref name="autoencoderDir"/> (copied into the run folder as vae/; a resumed run uses its own): the images are
    /// encoded once, with their mirror images (the random flip of pixel training cannot be applied to latents).
    /// </remarks>
    public static TeacherTraining Open(string dir, TeacherRunSettings settings, IReadOnlyList<string> attributes, Tensor images, Tensor labels,
        bool resume = true, string? dataset = null, string? autoencoderDir = null)
    {
        settings.Validated();
        if (labels.shape.Length != 2 || labels.shape[1] != attributes.Count)
            throw new ArgumentException($"The labels have {(labels.shape.Length == 2 ? labels.shape[1] : 0)} columns for {attributes.Count} attributes.");
        TeacherConfig config;
        bool continuing = resume && HasCheckpoint(dir);
        if (continuing)
        {
            var saved = Teacher.ReadConfig(dir);
            if (!saved.AttributeNames.SequenceEqual(attributes))
                throw new DatasetException($"The data set's attributes ({string.Join(",", attributes)}) differ from the teacher's ({string.Join(",", saved.AttributeNames)}).");
            config = saved with { Training = (saved.Training ?? new TeacherTrainingSettings()) with { Steps = settings.Training.Steps, DecayFrom = settings.Training.DecayFrom } };
            settings = TeacherRunSettings.Of(config, settings.JudgeSteps);
        }
        else
        {
            foreach (var stale in new[] { Path.Combine(dir, "train"), Path.Combine(dir, JudgeFolder) })
                if (Directory.Exists(stale)) Directory.Delete(stale, recursive: true);
            AutoencoderConfig? ae = null;
            if (settings.Kind == TeacherConfig.KindLatentDdpm)
            {
                if (autoencoderDir is null) throw new FormatException($"a {TeacherConfig.KindLatentDdpm} teacher needs an autoencoder folder.");
                ae = Autoencoder.ReadConfig(autoencoderDir);
                var own = Path.Combine(dir, TeacherConfig.DefaultAutoencoderFolder);
                if (Path.GetFullPath(own) != Path.GetFullPath(autoencoderDir))
                {
                    if (Directory.Exists(own)) Directory.Delete(own, recursive: true);
                    Directory.CreateDirectory(own);
                    foreach (var f in new[] { ModelFolder.ConfigFile, AutoencoderConfig.WeightsFile })
                        File.Copy(Path.Combine(autoencoderDir, f), Path.Combine(own, f));
                }
            }
            config = settings.Config(attributes, dataset, ae);
        }
        Directory.CreateDirectory(dir);
        TeacherTrainer trainer;
        if (config.Kind == TeacherConfig.KindLatentDdpm)
        {
            var autoencoder = Autoencoder.Load(Teacher.AutoencoderDir(dir, config), TorchRuntime.Device);
            var (latents, twice) = EncodeOnce(dir, autoencoder, images, labels, config.Training?.HorizontalFlip ?? true, continuing);
            using (latents) using (twice) trainer = new TeacherTrainer(dir, config, latents, twice, TorchRuntime.Device, continuing, autoencoder);
        }
        else trainer = new TeacherTrainer(dir, config, images, labels, TorchRuntime.Device, continuing);
        return new TeacherTraining(dir, trainer, config, settings);
    }

    /// <summary>The cache of a latent run's encoded training set: a resumed run reads it instead of encoding again (at 128 px
    /// on one busy thread encoding 16,000 images took about 13 minutes). Removed with train/ when a run starts afresh; a ".cache" file
    /// stays on the machine that made it (the worker's checkpoints leave it out).</summary>
    public const string LatentCacheFile = "latents.cache";

    private static (Tensor Latents, Tensor Labels) EncodeOnce(string dir, Autoencoder ae, Tensor images, Tensor labels, bool mirror, bool continuing)
    {
        var path = Path.Combine(dir, "train", LatentCacheFile);
        long rows = images.shape[0] * (mirror ? 2 : 1);
        if (continuing && File.Exists(path) && ReadCache(path) is { } cached)
        {
            if (cached.TryGetValue("latents", out var z) && cached.TryGetValue("labels", out var y) && z.shape[0] == rows
                && y.shape.SequenceEqual([rows, labels.shape[1]]) && y[TensorIndex.Slice(0, labels.shape[0])].to_type(labels.dtype).eq(labels).all().item<bool>())
                return (z, y.to_type(labels.dtype));
            foreach (var t in cached.Values) t.Dispose(); // another data set or autoencoder settings: encode again
        }
        var (latents, twice) = Encode(ae, images, labels, mirror);
        Directory.CreateDirectory(Path.GetDirectoryName(path)!);
        AtomicFile.Write(path, p => Safetensors.SaveStateDict(p, new Dictionary<string, Tensor> { ["latents"] = latents, ["labels"] = twice }));
        return (latents, twice);
    }

    /// <summary>The cached tensors, or null when the file cannot be read (it is only a cache: the set is encoded again).</summary>
    private static Dictionary<string, Tensor>? ReadCache(string path)
    {
        try { return Safetensors.LoadStateDict(path); }
        catch (Exception e) when (e is IOException or InvalidDataException or ArgumentException or FormatException or System.Text.Json.JsonException or NotImplementedException) { return null; }
    }

    /// <summary>Scaled latents (posterior means) of the images, and of their mirror images after them when <paramref name="mirror"/>; labels to match.</summary>
    private static (Tensor Latents, Tensor Labels) Encode(Autoencoder ae, Tensor images, Tensor labels, bool mirror)
    {
        using var _ = no_grad();
        var parts = new List<Tensor>();
        foreach (var flip in mirror ? new[] { false, true } : [false])
            for (long i = 0; i < images.shape[0]; i += 32)
            {
                using var scope = NewDisposeScope();
                var x = images[TensorIndex.Slice(i, Math.Min(i + 32, images.shape[0]))].to(ae.Device);
                parts.Add(ae.Encode(flip ? x.flip(3) : x).cpu().MoveToOuterDisposeScope());
            }
        var latents = cat(parts);
        foreach (var p in parts) p.Dispose();
        return (latents, mirror ? cat([labels, labels]) : labels.clone());
    }

    /// <summary>
    /// Trains while <paramref name="allows"/> the next step (given the current one) and the run is not done,
    /// checkpointing at the settings' cadence and at the end. Returns the steps trained. A non-finite loss throws
    /// <see cref="InvalidOperationException"/> saying at which step training diverged.
    /// </summary>
    public int Advance(Func<int, bool> allows, Action<TrainingProgress>? progress = null) =>
        _trainer.Advance(allows, Settings.Training.Steps, progress);

    /// <summary>Advances to the end (or until cancelled).</summary>
    public int AdvanceToEnd(Action<TrainingProgress>? progress = null, CancellationToken cancel = default) =>
        Advance(_ => !cancel.IsCancellationRequested, progress);

    /// <summary>
    /// Trains the teacher's judge (the settings' judge steps; none when 0) on the training split of
    /// <paramref name="set"/>, the data set the teacher learnt from, at the teacher's image size, and writes it to judge/
    /// with its held-out accuracy per attribute in judge/config.json. Returns it (null when no judge is trained).
    /// </summary>
    public TrainedJudge? Finish(LabeledImageSet set, Action<TrainingProgress>? progress = null)
    {
        if (!Trained) throw new InvalidOperationException($"The run is at step {Step} of {Settings.Training.Steps}: advance it to the end before finishing.");
        if (!set.Attributes.SequenceEqual(Config.AttributeNames))
            throw new DatasetException($"The data set's attributes ({string.Join(",", set.Attributes)}) differ from the teacher's ({string.Join(",", Config.AttributeNames)}).");
        if (Settings.JudgeSteps == 0) return null;
        return JudgeTraining.Train(set, Path.Combine(Dir, JudgeFolder), Teacher.Size, Settings.JudgeSteps, Config.Dataset, progress: progress);
    }

    public void Dispose() => _trainer.Dispose();
}

/// <summary>
/// The training of a judge: on a data set's training split (every tenth row held out, <see cref="LabeledImageSet.Split"/>),
/// its accuracy per attribute on the held-out rows recorded in its config. The last stage of a teacher run and `sdd judge train`.
/// </summary>
public static class JudgeTraining
{
    /// <summary>
    /// Trains and saves the judge to <paramref name="dir"/>; a set too small to hold rows out is scored on its training rows.
    /// <paramref name="augment"/> (default: from 64 px, <see cref="JudgeConfig.DefaultAugmented"/>) trains on distorted images,
    /// their colours jittered too unless <paramref name="colour"/> is false.
    /// </summary>
    public static TrainedJudge Train(LabeledImageSet set, string dir, int size, int steps, string? dataset = null,
        int? batch = null, double lr = Judge.DefaultLearningRate, long seed = 1, Action<TrainingProgress>? progress = null, bool? augment = null, bool colour = true)
    {
        var (train, held) = set.Split();
        var (x, y) = set.Load(size, train);
        var (hx, hy) = set.Load(size, held.Length > 0 ? held : train);
        using (x) using (y) using (hx) using (hy)
        {
            var config = new JudgeConfig { AttributeNames = set.Attributes.ToArray(), ImageSize = size, Channels = JudgeConfig.DefaultChannels(size),
                Augmented = augment ?? JudgeConfig.DefaultAugmented(size), Dataset = dataset };
            config = config with { ColourJitter = config.Augmented && colour };
            using var judge = Judge.Train(config, x, y, steps, batch ?? Judge.DefaultBatchFor(size), lr, seed, TorchRuntime.Device, progress);
            var acc = judge.Accuracy(hx, hy);
            var accuracy = set.Attributes.Select((a, i) => (a, i)).ToDictionary(p => p.a, p => Math.Round(acc[p.i], 4));
            judge.Save(dir, judge.Config with { Accuracy = accuracy });
            return new TrainedJudge(dir, train.Length, held.Length, accuracy);
        }
    }
}
