using System.Globalization;
using System.Text.Json;
using Sdd.Formats.Models;

namespace Sdd.Formats.Runs;

/// <summary>
/// Settings of a teacher training run: the teacher's architecture and schedule, its training, and the judge trained
/// after it. The one set of defaults is that of the config records (<see cref="UNetConfig"/>, <see cref="TeacherConfig"/>,
/// <see cref="TeacherTrainingSettings"/>) plus the judge's steps. The CLI's options and a teacher's stored settings
/// (<see cref="FromJson"/>) map onto it, <see cref="Validated"/> checks it, and <see cref="Config"/> makes a new
/// teacher's config from it.
/// </summary>
public sealed record TeacherRunSettings
{
    public const int DefaultJudgeSteps = 1500;
    public const int MaxImageSize = 512;
    public const int MaxSteps = 10_000_000;

    /// <summary><see cref="TeacherConfig.KindAttributeDdpm"/> (on pixels) or <see cref="TeacherConfig.KindLatentDdpm"/> (on an autoencoder's latents).</summary>
    public string Kind { get; init; } = TeacherConfig.KindAttributeDdpm;
    /// <summary>The side of the images the teacher learns from (for a latent teacher its UNet sees this / the autoencoder's downsampling).</summary>
    public int ImageSize { get; init; } = UNetConfig.DefaultImageSize;
    /// <summary>UNet channels per level, multiples of 8; each level below the first halves the resolution.</summary>
    public int[] Channels { get; init; } = new UNetConfig().Channels;
    /// <summary>Attention at feature maps this size and smaller; null: <see cref="UNetConfig.DefaultAttentionBelow"/> of the image size.</summary>
    public int? AttentionBelow { get; init; }
    public ScheduleKind Schedule { get; init; } = TeacherConfig.DefaultSchedule;
    /// <summary>Steps, batch, learning rate, warmup, EMA, seed, checkpoint cadence and the rest of the recipe.</summary>
    public TeacherTrainingSettings Training { get; init; } = new();
    /// <summary>Steps of the judge trained on the data set's training split once the teacher is trained (0: no judge).</summary>
    public int JudgeSteps { get; init; } = DefaultJudgeSteps;

    /// <summary>Throws <see cref="FormatException"/> naming the setting that is out of bounds.</summary>
    public TeacherRunSettings Validated()
    {
        if (Kind is not (TeacherConfig.KindAttributeDdpm or TeacherConfig.KindLatentDdpm))
            throw new FormatException($"kind must be {TeacherConfig.KindAttributeDdpm} or {TeacherConfig.KindLatentDdpm}, got '{Kind}'.");
        if (Channels is not { Length: >= 1 and <= 6 }) throw new FormatException($"channels must name 1 to 6 levels like 32,64,96, got {Channels?.Length ?? 0}.");
        foreach (var c in Channels)
            if (c < 8 || c % 8 != 0) throw new FormatException($"channels must be multiples of 8 like 32,64,96, got {c} (in {string.Join(",", Channels)}).");
        if (ImageSize is < 8 or > MaxImageSize) throw new FormatException($"image size must be between 8 and {MaxImageSize}, got {ImageSize}.");
        int halving = 1 << (Channels.Length - 1);
        if (Kind == TeacherConfig.KindAttributeDdpm && ImageSize % halving != 0)
            throw new FormatException($"image size {ImageSize} must be divisible by {halving}: {Channels.Length} channel levels halve it {Channels.Length - 1} times.");
        if (AttentionBelow is < 1) throw new FormatException($"attention below must be at least 1, got {AttentionBelow}.");
        var t = Training;
        if (t.Steps is < 1 or > MaxSteps) throw new FormatException($"steps must be between 1 and {MaxSteps}, got {t.Steps}.");
        if (t.BatchSize is < 1 or > 4096) throw new FormatException($"batch size must be between 1 and 4096, got {t.BatchSize}.");
        if (!(t.LearningRate > 0 && t.LearningRate <= 1)) throw new FormatException($"learning rate must be in (0, 1], got {t.LearningRate}.");
        if (t.WarmupSteps < 0) throw new FormatException($"warmup steps must be at least 0, got {t.WarmupSteps}.");
        if (t.DecayFrom is { } from && (from < 0 || from >= t.Steps)) throw new FormatException($"the learning rate's decay must start at a step from 0 to below the {t.Steps} steps, got {from}.");
        if (!(t.EmaDecay >= 0 && t.EmaDecay <= 1)) throw new FormatException($"EMA decay must be in [0, 1], got {t.EmaDecay}.");
        if (!(t.WeightDecay >= 0 && t.WeightDecay <= 1)) throw new FormatException($"weight decay must be in [0, 1], got {t.WeightDecay}.");
        if (!(t.DropAttribute is >= 0 and <= 1 && t.DropAll is >= 0 and <= 1)) throw new FormatException("condition dropout rates must be in [0, 1].");
        if (!(t.GradClip > 0)) throw new FormatException($"gradient clip must be positive, got {t.GradClip}.");
        if (t.CheckpointEvery < 1) throw new FormatException($"checkpoint cadence must be at least 1 step, got {t.CheckpointEvery}.");
        if (JudgeSteps is < 0 or > MaxSteps) throw new FormatException($"judge steps must be between 0 and {MaxSteps}, got {JudgeSteps}.");
        return this;
    }

    /// <summary>A new teacher's config: these settings for a data set with <paramref name="attributes"/> (its name in <paramref name="dataset"/>).</summary>
    /// <remarks>A latent teacher needs its <paramref name="autoencoder"/>: the UNet sees its latents (side and channels).</remarks>
    public TeacherConfig Config(IReadOnlyList<string> attributes, string? dataset, AutoencoderConfig? autoencoder = null)
    {
        bool latent = Kind == TeacherConfig.KindLatentDdpm;
        if (latent && autoencoder is null) throw new FormatException($"a {TeacherConfig.KindLatentDdpm} teacher needs an autoencoder.");
        if (!latent && autoencoder is not null) throw new FormatException($"a {TeacherConfig.KindAttributeDdpm} teacher works on pixels and takes no autoencoder.");
        int side = ImageSize, channels = 3;
        if (autoencoder is not null)
        {
            if (ImageSize % autoencoder.Downsampling != 0)
                throw new FormatException($"image size {ImageSize} must be divisible by the autoencoder's downsampling {autoencoder.Downsampling}.");
            side = ImageSize / autoencoder.Downsampling;
            channels = autoencoder.LatentChannels;
            int halving = 1 << (Channels.Length - 1);
            if (side % halving != 0)
                throw new FormatException($"the latent side {side} ({ImageSize} px / {autoencoder.Downsampling}) must be divisible by {halving}: {Channels.Length} channel levels halve it {Channels.Length - 1} times.");
        }
        return new()
        {
            Kind = Kind,
            Autoencoder = latent ? TeacherConfig.DefaultAutoencoderFolder : null,
            AttributeNames = [.. attributes],
            Unet = new UNetConfig
            {
                ImageSize = side,
                InChannels = channels,
                Channels = [.. Channels],
                AttentionBelow = AttentionBelow ?? UNetConfig.DefaultAttentionBelow(side),
                Attributes = attributes.Count,
            },
            Schedule = Schedule,
            Dataset = dataset,
            Training = Training,
        };
    }

    /// <summary>The settings a teacher's config was trained with (the judge's steps are not recorded there).</summary>
    public static TeacherRunSettings Of(TeacherConfig config, int judgeSteps = DefaultJudgeSteps, int downsampling = 1) => new()
    {
        Kind = config.Kind,
        ImageSize = config.Unet.ImageSize * downsampling,
        Channels = config.Unet.Channels,
        AttentionBelow = config.Unet.AttentionBelow,
        Schedule = config.Schedule,
        Training = config.Training ?? new TeacherTrainingSettings(),
        JudgeSteps = judgeSteps,
    };

    /// <summary>
    /// A teacher's stored settings: a JSON object with any of { steps, imageSize, channels (array or "32,64,96"),
    /// attentionBelow, schedule, batch, lr, warmup, decayFrom, ema, seed, checkpointEvery, judgeSteps } (any casing, '_' ignored,
    /// batchSize, learningRate, warmupSteps, emaDecay and size also accepted); absent or null keys take
    /// <paramref name="defaults"/>' values. The API stores { steps, imageSize }; other keys are ignored (a builtin
    /// teacher stores its whole config). Validated; a bad value throws <see cref="FormatException"/>.
    /// </summary>
    public static TeacherRunSettings FromJson(string? json, TeacherRunSettings? defaults = null)
    {
        var d = defaults ?? new TeacherRunSettings();
        if (string.IsNullOrWhiteSpace(json)) return d.Validated();
        JsonDocument doc;
        try { doc = JsonDocument.Parse(json); }
        catch (JsonException e) { throw new FormatException($"teacher settings are not JSON: {e.Message}", e); }
        using var _ = doc;
        if (doc.RootElement.ValueKind != JsonValueKind.Object) throw new FormatException("teacher settings must be a JSON object.");
        var o = new Dictionary<string, JsonElement>(StringComparer.OrdinalIgnoreCase);
        foreach (var p in doc.RootElement.EnumerateObject())
        {
            var k = p.Name.Replace("_", "");
            if (Aliases.TryGetValue(k, out var name)) k = name;
            if (p.Value.ValueKind != JsonValueKind.Null) o[k] = p.Value;
        }
        double? Num(string name)
        {
            if (!o.TryGetValue(name, out var v)) return null;
            var text = v.ValueKind switch { JsonValueKind.Number => v.GetRawText(), JsonValueKind.String => v.GetString(), _ => null };
            return double.TryParse(text, NumberStyles.Float, CultureInfo.InvariantCulture, out var x) && double.IsFinite(x)
                ? x
                : throw new FormatException($"settings.{name} must be a number, got {v.GetRawText()}.");
        }
        int? Int(string name) => Num(name) is { } x
            ? x == Math.Floor(x) && Math.Abs(x) <= int.MaxValue ? (int)x : throw new FormatException($"settings.{name} must be a whole number, got {x}.")
            : null;
        int[]? ReadChannels()
        {
            if (!o.TryGetValue("channels", out var v)) return null;
            var parts = v.ValueKind switch
            {
                JsonValueKind.Array => v.EnumerateArray().Select(e => e.GetRawText()).ToArray(),
                JsonValueKind.String => v.GetString()!.Split(','),
                _ => null,
            };
            var list = parts?.Select(s => int.TryParse(s.Trim(), NumberStyles.Integer, CultureInfo.InvariantCulture, out var c) ? c : (int?)null).ToArray();
            return list is not null && list.All(c => c is not null)
                ? list.Select(c => c!.Value).ToArray()
                : throw new FormatException($"settings.channels must be whole numbers like [32,64,96] or \"32,64,96\", got {v.GetRawText()}.");
        }
        ScheduleKind? ReadSchedule() => o.TryGetValue("schedule", out var v)
            ? v.ValueKind == JsonValueKind.String && Enum.TryParse<ScheduleKind>(v.GetString(), ignoreCase: true, out var s) && Enum.IsDefined(s)
                ? s
                : throw new FormatException($"settings.schedule must be 'linear' or 'cosine', got {v.GetRawText()}.")
            : null;

        var t = d.Training;
        return (d with
        {
            ImageSize = Int("imageSize") ?? d.ImageSize,
            Channels = ReadChannels() ?? d.Channels,
            AttentionBelow = Int("attentionBelow") ?? d.AttentionBelow,
            Schedule = ReadSchedule() ?? d.Schedule,
            Training = t with
            {
                Steps = Int("steps") ?? t.Steps,
                BatchSize = Int("batchSize") ?? t.BatchSize,
                LearningRate = Num("learningRate") ?? t.LearningRate,
                WarmupSteps = Int("warmupSteps") ?? t.WarmupSteps,
                DecayFrom = Int("decayFrom") ?? t.DecayFrom,
                EmaDecay = Num("emaDecay") ?? t.EmaDecay,
                Seed = (long?)Num("seed") ?? t.Seed,
                CheckpointEvery = Int("checkpointEvery") ?? t.CheckpointEvery,
            },
            JudgeSteps = Int("judgeSteps") ?? d.JudgeSteps,
        }).Validated();
    }

    private static readonly Dictionary<string, string> Aliases = new(StringComparer.OrdinalIgnoreCase)
    {
        ["size"] = "imageSize", ["batch"] = "batchSize", ["lr"] = "learningRate", ["warmup"] = "warmupSteps", ["ema"] = "emaDecay",
    };
}
