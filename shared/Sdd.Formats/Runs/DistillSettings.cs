using System.Globalization;
using System.Text.Json;
using System.Text.Json.Nodes;
using System.Text.RegularExpressions;

namespace Sdd.Formats.Runs;

/// <summary>Which teacher signal becomes the editor's gradient.</summary>
public enum GuidanceMode
{
    /// <summary>The paper's score distillation: w(t) (eps_cfg(x_t, t, c_target) - eps), c_target = attribute present, others unknown.</summary>
    Sds,
    /// <summary>Reference-conditioned delta score: w(t) s (eps(x_t, c_target) - eps(x_t, c_source)), c_source = the image's own labels, c_target = the same with the attribute set.</summary>
    Delta,
    /// <summary>
    /// The attribute's own classifier-free guidance direction: w(t) s (eps(x_t, c_target) - eps(x_t, c_source with the
    /// attribute unknown)). Where the delta score keeps pushing by the same amount whatever the image already shows (its
    /// c_source still says the attribute is absent), this one fades as the teacher reads the attribute in the edited image.
    /// </summary>
    Cfg,
}

/// <summary>Which network an editor is (its config says; weights differ).</summary>
public enum EditorArchitecture
{
    /// <summary>y = x + g(x): the first editors; an editor config without an architecture is this one.</summary>
    Residual,
    /// <summary>y = x + m(x) * g(x), m in [0, 1] a soft mask (sigmoid) predicted beside the change: the default for new editors.</summary>
    Masked,
}

/// <summary>
/// How a latent teacher's gradient g on the latent z = E(y) of the edited image becomes a gradient on the image y
/// (a pixel teacher's gradient is on y already, so this does not apply to it).
/// </summary>
public enum LatentGradient
{
    /// <summary>Back through the frozen encoder: J_E^T g (autograd through E). The first latent editors were trained this way.</summary>
    Encoder,
    /// <summary>
    /// Forward through the frozen decoder: J_D g / f^2, the image change the latent step decodes to, per latent cell of
    /// f x f pixels (central difference of two decoder passes; the encoder runs without gradient). The decoder only draws
    /// images like the ones it learned, so the edit follows what the teacher's step looks like rather than whatever pixel
    /// change moves the encoder most.
    /// </summary>
    Decoder,
}

/// <summary>Settings of the guidance gradient; part of an editor's JSON.</summary>
public sealed record GuidanceSettings
{
    public GuidanceMode Mode { get; init; } = GuidanceMode.Delta;
    /// <summary>Guidance scale s (official code: 100 for SDS); null = automatic, calibrated on the validation split to the target editability.</summary>
    public double? Scale { get; init; }
    /// <summary>
    /// Keep only the k largest |gradient| values of the batch (0 = off): of the teacher's gradient on the images, or, for a
    /// latent teacher, of the image gradient its latent gradient stands for (decoded, or through the encoder's transpose).
    /// </summary>
    public int TopK { get; init; }

    public bool AutoScale => Scale is null;

    /// <summary>
    /// The reference scale of a mode: 10 for the delta score, 30 for SDS (whose gradient is weaker per unit). The middle
    /// of the automatic search's grid, the scale the indicator is computed at when the scale is automatic, and the scale
    /// used when automatic calibration has no judge to read.
    /// </summary>
    public static double DefaultScale(GuidanceMode mode) => mode == GuidanceMode.Sds ? 30 : 10;

    /// <summary>Whether the gradient is taken against the image's own condition (delta, cfg), not against the noise (SDS).</summary>
    public static bool FromSource(GuidanceMode mode) => mode != GuidanceMode.Sds;

    /// <summary>These settings with the scale filled in: the given one, else the mode's reference scale.</summary>
    public GuidanceSettings WithReferenceScale() => Scale is null ? this with { Scale = DefaultScale(Mode) } : this;

    /// <summary>The scale, which must have been given or calibrated.</summary>
    public double RequireScale() => Scale ?? throw new InvalidOperationException("The guidance scale is automatic and not yet calibrated.");
}

/// <summary>
/// Settings of a distillation run, with the one set of defaults: what the API stores for a run (<see cref="ToApiJson"/>,
/// every key filled in), what the worker and the CLI read, and what the editor's config.json records.
/// </summary>
public sealed partial record DistillSettings
{
    public int Steps { get; init; } = 300;
    public int BatchSize { get; init; } = 16;
    public double LearningRate { get; init; } = 5e-4;
    public double WeightDecay { get; init; } = 1e-4;
    /// <summary>Fidelity weight lambda of sum (f(x) - x)^2 (per batch, summed over pixels, like the guidance).</summary>
    public double Lambda { get; init; } = 1.0;
    public GuidanceSettings Guidance { get; init; } = new();
    /// <summary>hqs, random, fixed:T or list:T1,T2.</summary>
    public string Timesteps { get; init; } = "hqs";
    public long Seed { get; init; } = 1;
    /// <summary>Automatic scale: the smallest scale whose editor the judge sees with the attribute on this share of the validation images.</summary>
    public double TargetEditability { get; init; } = 0.95;
    /// <summary>Automatic scale: steps of each short probe distillation of the search; null = <see cref="ProbeSteps"/>'s default, a third of <see cref="Steps"/>.</summary>
    public int? CalibrationSteps { get; init; }
    /// <summary>
    /// Automatic scale: after the grid search, this many bisections (in log scale) between the last failing and the first
    /// passing grid scale, so the chosen scale is within a factor 2^(1/2^n) of the smallest that passes (2: 1.19) rather
    /// than the grid's factor 2; each costs one probe. A scale larger than needed over-draws the edit.
    /// </summary>
    public int CalibrationRefinements { get; init; } = 2;

    /// <summary>The steps of one probe of the automatic scale search (at least 1).</summary>
    public int ProbeSteps => CalibrationSteps ?? Math.Max(1, Steps / 3);
    /// <summary>
    /// Share of each batch drawn from training images that already have the attribute (delta mode only: their guidance
    /// is zero, so fidelity and the mask penalties teach the editor to leave them alone). 0 = images lacking it only.
    /// </summary>
    public double PositiveShare { get; init; } = DefaultPositiveShare(GuidanceMode.Delta);
    /// <summary>The network of new editors.</summary>
    public EditorArchitecture Editor { get; init; } = EditorArchitecture.Masked;
    /// <summary>Masked editors: weight of the sparsity penalty sum m (per batch, summed over pixels like the other terms).</summary>
    public double MaskSparsity { get; init; } = 0.02;
    /// <summary>Masked editors: weight of the smoothness penalty, the total variation sum |m(i+1, j) - m(i, j)| + |m(i, j+1) - m(i, j)|.</summary>
    public double MaskSmoothness { get; init; } = 0.05;
    /// <summary>Latent teachers: how the latent gradient reaches the image (<see cref="Runs.LatentGradient"/>).</summary>
    public LatentGradient LatentGradient { get; init; } = LatentGradient.Encoder;
    /// <summary>
    /// Latent teachers through the decoder: null = the decoder's derivative along g (J_D g, a small central difference);
    /// a number k &gt; 0 = the finite change the teacher's own step decodes to, D(z) - D(z + k (x0_target - x0_reference)),
    /// with x0 the teacher's predictions of the clean latent (k = 3 is the guided sampler's step), rescaled so that for
    /// a small k it is the derivative again. The derivative follows the decoder's slope at the unedited image; the finite
    /// step follows what the decoder draws for a latent that has the attribute.
    /// </summary>
    public double? DecoderStep { get; init; }
    /// <summary>
    /// Masked editors: the mask gate in [0, 1) (mask values below gate / 2 stop editing; 0 = off), or null = automatic:
    /// chosen after training on the validation images, the largest gate of 0, 0.05, ..., 0.9 that keeps the judge's
    /// editability at <see cref="TargetEditability"/> (0 when there is no judge or no validation image).
    /// </summary>
    public double? MaskGate { get; init; }

    public bool AutoMaskGate => MaskGate is null;

    /// <summary>0.25 in delta mode; 0 for SDS, whose guidance on an image with the attribute is not zero (it would be pushed further).</summary>
    public static double DefaultPositiveShare(GuidanceMode mode) => GuidanceSettings.FromSource(mode) ? 0.25 : 0;

    public const int MaxSteps = 1_000_000;

    /// <summary>Throws <see cref="FormatException"/> saying which setting is out of bounds.</summary>
    public DistillSettings Validated()
    {
        if (Steps is < 1 or > MaxSteps) throw new FormatException($"settings.steps must be between 1 and {MaxSteps}.");
        if (BatchSize is < 1 or > 1024) throw new FormatException("settings.batchSize must be between 1 and 1024.");
        if (!(LearningRate > 0 && LearningRate <= 1)) throw new FormatException("settings.learningRate must be in (0, 1].");
        if (!(WeightDecay >= 0 && WeightDecay <= 1)) throw new FormatException("settings.weightDecay must be in [0, 1].");
        if (!(Lambda >= 0) || double.IsInfinity(Lambda)) throw new FormatException("settings.lambda must be a number >= 0.");
        if (Guidance.Scale is { } scale && (!(scale > 0) || double.IsInfinity(scale))) throw new FormatException("settings.scale must be a positive number or \"auto\".");
        if (!(TargetEditability > 0 && TargetEditability <= 1)) throw new FormatException("settings.targetEditability must be in (0, 1].");
        if (CalibrationSteps is < 1 or > MaxSteps) throw new FormatException($"settings.calibrationSteps must be between 1 and {MaxSteps}.");
        if (CalibrationRefinements is < 0 or > 6) throw new FormatException("settings.calibrationRefinements must be between 0 and 6.");
        if (!(PositiveShare >= 0 && PositiveShare < 1)) throw new FormatException("settings.positiveShare must be in [0, 1).");
        if (PositiveShare > 0 && !GuidanceSettings.FromSource(Guidance.Mode))
            throw new FormatException("settings.positiveShare must be 0 with mode sds (its guidance on an image that has the attribute is not zero).");
        if (!(MaskSparsity >= 0) || double.IsInfinity(MaskSparsity)) throw new FormatException("settings.maskSparsity must be a number >= 0.");
        if (!(MaskSmoothness >= 0) || double.IsInfinity(MaskSmoothness)) throw new FormatException("settings.maskSmoothness must be a number >= 0.");
        if (Guidance.TopK < 0) throw new FormatException("settings.topK must be >= 0.");
        if (MaskGate is { } gate && !(gate >= 0 && gate < 1)) throw new FormatException("settings.maskGate must be a number in [0, 1) or \"auto\".");
        if (DecoderStep is { } step && !(step > 0 && step <= 100)) throw new FormatException("settings.decoderStep must be a number in (0, 100] or null.");
        if (DecoderStep is not null && LatentGradient != LatentGradient.Decoder) throw new FormatException("settings.decoderStep needs latentGradient 'decoder'.");
        if (MaskGate > 0 && Editor != EditorArchitecture.Masked) throw new FormatException("settings.maskGate must be 0 or \"auto\" for a residual editor (it has no mask to gate).");
        if (!TimestepsPattern().IsMatch(Timesteps ?? ""))
            throw new FormatException("settings.timesteps must be 'hqs', 'random', 'fixed:T' or 'list:T1,T2,...' with 0 <= T < 1000.");
        return this;
    }

    /// <summary>
    /// The API's settings object ({ steps, mode, scale, lambda, timesteps, batchSize, learningRate, weightDecay, topK, seed,
    /// targetEditability, calibrationSteps, positiveShare, editor, maskSparsity, maskSmoothness, latentGradient, maskGate, decoderStep }, any casing, '_' ignored;
    /// batch and lr as short names; null or absent = the default; scale or maskGate absent, null or "auto" = automatic) as validated settings.
    /// Unknown keys are refused, so nothing a caller sends is silently ignored.
    /// </summary>
    public static DistillSettings FromApi(JsonObject? given)
    {
        var o = new Dictionary<string, JsonNode?>(StringComparer.OrdinalIgnoreCase);
        foreach (var (key, value) in given ?? [])
        {
            var k = key.Replace("_", "");
            k = k.ToLowerInvariant() switch { "batch" => "batchSize", "lr" => "learningRate", _ => k };
            if (!ApiKeys.Contains(k, StringComparer.OrdinalIgnoreCase))
                throw new FormatException($"settings.{key} is not a distillation setting (they are: {string.Join(", ", ApiKeys)}).");
            if (value is not null) o[k] = value;
        }
        double? Num(string name)
        {
            if (!o.TryGetValue(name, out var v)) return null;
            var text = v!.GetValueKind() switch
            {
                JsonValueKind.Number => v.ToJsonString(),
                JsonValueKind.String => v.GetValue<string>(),
                _ => null,
            };
            return double.TryParse(text, NumberStyles.Float, CultureInfo.InvariantCulture, out var x) && double.IsFinite(x)
                ? x
                : throw new FormatException($"settings.{name} must be a number, got {v.ToJsonString()}.");
        }
        int? Int(string name) => Num(name) is { } d
            ? d == Math.Floor(d) && Math.Abs(d) <= int.MaxValue ? (int)d : throw new FormatException($"settings.{name} must be a whole number, got {d}.")
            : null;
        string? Str(string name) => o.TryGetValue(name, out var v)
            ? v!.GetValueKind() == JsonValueKind.String ? v.GetValue<string>() : throw new FormatException($"settings.{name} must be a string, got {v.ToJsonString()}.")
            : null;

        var d = new DistillSettings();
        var mode = Str("mode")?.ToLowerInvariant() switch
        {
            null => d.Guidance.Mode,
            "delta" => GuidanceMode.Delta,
            "sds" => GuidanceMode.Sds,
            "cfg" => GuidanceMode.Cfg,
            var m => throw new FormatException($"settings.mode must be 'delta', 'cfg' or 'sds', got '{m}'."),
        };
        bool Given(string name) => o.TryGetValue(name, out var v) && !(v!.GetValueKind() == JsonValueKind.String && v.GetValue<string>().Trim().Equals("auto", StringComparison.OrdinalIgnoreCase));
        var scaleGiven = Given("scale");
        var editor = Str("editor")?.ToLowerInvariant() switch
        {
            null => d.Editor,
            "masked" => EditorArchitecture.Masked,
            "residual" => EditorArchitecture.Residual,
            var e => throw new FormatException($"settings.editor must be 'masked' or 'residual', got '{e}'."),
        };
        var latentGradient = Str("latentGradient")?.ToLowerInvariant() switch
        {
            null => d.LatentGradient,
            "encoder" => LatentGradient.Encoder,
            "decoder" => LatentGradient.Decoder,
            var g => throw new FormatException($"settings.latentGradient must be 'encoder' or 'decoder', got '{g}'."),
        };
        return new DistillSettings
        {
            Steps = Int("steps") ?? d.Steps,
            BatchSize = Int("batchSize") ?? d.BatchSize,
            LearningRate = Num("learningRate") ?? d.LearningRate,
            WeightDecay = Num("weightDecay") ?? d.WeightDecay,
            Lambda = Num("lambda") ?? d.Lambda,
            Guidance = new GuidanceSettings { Mode = mode, Scale = scaleGiven ? Num("scale") : null, TopK = Int("topK") ?? d.Guidance.TopK },
            Timesteps = Str("timesteps") ?? d.Timesteps,
            Seed = (long)(Num("seed") ?? d.Seed),
            TargetEditability = Num("targetEditability") ?? d.TargetEditability,
            CalibrationSteps = Int("calibrationSteps"),
            CalibrationRefinements = Int("calibrationRefinements") ?? d.CalibrationRefinements,
            PositiveShare = Num("positiveShare") ?? DefaultPositiveShare(mode),
            Editor = editor,
            MaskSparsity = Num("maskSparsity") ?? d.MaskSparsity,
            MaskSmoothness = Num("maskSmoothness") ?? d.MaskSmoothness,
            LatentGradient = latentGradient,
            MaskGate = Given("maskGate") ? Num("maskGate") : null,
            DecoderStep = Num("decoderStep"),
        }.Validated();
    }

    /// <summary>Parses the JSON text the API stored (see <see cref="FromApi(JsonObject?)"/>).</summary>
    public static DistillSettings FromApiJson(string? json)
    {
        if (string.IsNullOrWhiteSpace(json)) return FromApi(null);
        JsonNode? node;
        try { node = JsonNode.Parse(json); }
        catch (JsonException e) { throw new FormatException($"settings are not JSON: {e.Message}"); }
        return FromApi(node as JsonObject ?? throw new FormatException("settings must be a JSON object."));
    }

    /// <summary>The API's form: every setting, camelCase (mode and editor in lower case, an automatic scale as "auto").</summary>
    public JsonObject ToApi() => new()
    {
        ["steps"] = Steps,
        ["mode"] = Guidance.Mode.ToString().ToLowerInvariant(),
        ["scale"] = Guidance.Scale is { } scale ? JsonValue.Create(scale) : JsonValue.Create("auto"),
        ["lambda"] = Lambda,
        ["timesteps"] = Timesteps,
        ["batchSize"] = BatchSize,
        ["learningRate"] = LearningRate,
        ["weightDecay"] = WeightDecay,
        ["topK"] = Guidance.TopK,
        ["seed"] = Seed,
        ["targetEditability"] = TargetEditability,
        ["calibrationSteps"] = CalibrationSteps, // null: a third of steps
        ["calibrationRefinements"] = CalibrationRefinements,
        ["positiveShare"] = PositiveShare,
        ["editor"] = Editor.ToString().ToLowerInvariant(),
        ["maskSparsity"] = MaskSparsity,
        ["maskSmoothness"] = MaskSmoothness,
        ["latentGradient"] = LatentGradient.ToString().ToLowerInvariant(),
        ["maskGate"] = MaskGate is { } gate ? JsonValue.Create(gate) : JsonValue.Create("auto"),
        ["decoderStep"] = DecoderStep, // null: the decoder's derivative
    };

    public string ToApiJson() => ToApi().ToJsonString();

    private static readonly string[] ApiKeys = ["steps", "mode", "scale", "lambda", "timesteps", "batchSize", "learningRate", "weightDecay", "topK", "seed",
        "targetEditability", "calibrationSteps", "calibrationRefinements", "positiveShare", "editor", "maskSparsity", "maskSmoothness", "latentGradient", "maskGate", "decoderStep"];

    [GeneratedRegex(@"^(hqs|random|fixed:\d{1,3}|list:\d{1,3}(,\d{1,3})*)$")]
    private static partial Regex TimestepsPattern();
}
