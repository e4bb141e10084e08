using System.Text.Json;
using Sdd.Ml.Diffusion;

namespace Sdd.Ml.StableDiffusion;

/// <summary>Reads a diffusers / transformers <c>config.json</c>, refusing settings the modules here do not build.</summary>
internal sealed class ConfigReader(JsonElement root, string source)
{
    public string Source => source;

    public static ConfigReader Open(string path)
    {
        if (!File.Exists(path)) throw new WeightsException($"{path}: missing");
        if (new FileInfo(path).Length > 1 << 20) throw new WeightsException($"{path}: over 1 MiB, not a model config");
        try
        {
            using var doc = JsonDocument.Parse(File.ReadAllBytes(path));
            return new ConfigReader(doc.RootElement.Clone(), path);
        }
        catch (JsonException e) { throw new WeightsException($"{path}: not JSON ({e.Message})"); }
    }

    public static ConfigReader Empty(string source) => new(JsonDocument.Parse("{}").RootElement.Clone(), source);

    private bool Has(string name, out JsonElement e) => root.TryGetProperty(name, out e) && e.ValueKind != JsonValueKind.Null;

    public int Int(string name, int fallback) => !Has(name, out var e) ? fallback
        : e.ValueKind == JsonValueKind.Number && e.TryGetDouble(out double d) && d == Math.Floor(d) && Math.Abs(d) < int.MaxValue ? (int)d
        : throw new WeightsException($"{source}: '{name}' = {e.GetRawText()} is not a whole number");
    public double Double(string name, double fallback) => !Has(name, out var e) ? fallback
        : e.ValueKind == JsonValueKind.Number ? e.GetDouble() : throw new WeightsException($"{source}: '{name}' = {e.GetRawText()} is not a number");
    public bool Bool(string name, bool fallback) => !Has(name, out var e) ? fallback
        : e.ValueKind is JsonValueKind.True or JsonValueKind.False ? e.GetBoolean() : throw new WeightsException($"{source}: '{name}' = {e.GetRawText()} is not true or false");
    public string Str(string name, string fallback) => !Has(name, out var e) ? fallback
        : e.ValueKind == JsonValueKind.String ? e.GetString()! : throw new WeightsException($"{source}: '{name}' = {e.GetRawText()} is not a string");
    public bool IsSet(string name) => Has(name, out _);
    public JsonValueKind Kind(string name) => Has(name, out var e) ? e.ValueKind : JsonValueKind.Undefined;

    /// <summary>An int or a list of ints, as a list of <paramref name="count"/>; null when absent.</summary>
    public int[]? IntOrList(string name, int count)
    {
        if (!Has(name, out var e)) return null;
        if (e.ValueKind == JsonValueKind.Number) return Enumerable.Repeat(e.GetInt32(), count).ToArray();
        var list = e.EnumerateArray().Select(x => x.GetInt32()).ToArray();
        if (list.Length != count) throw new WeightsException($"{source}: '{name}' has {list.Length} values for {count} blocks");
        return list;
    }

    public int[] Ints(string name, int[] fallback) => Has(name, out var e) ? e.EnumerateArray().Select(x => x.GetInt32()).ToArray() : fallback;
    public string[] Strings(string name, string[] fallback) => Has(name, out var e) ? e.EnumerateArray().Select(x => x.GetString() ?? "").ToArray() : fallback;

    /// <summary>Refuses a setting that changes the architecture away from what is built here.</summary>
    public void Require(string name, object expected)
    {
        if (!Has(name, out var e)) return;
        bool ok = expected switch
        {
            bool b => e.ValueKind is JsonValueKind.True or JsonValueKind.False && e.GetBoolean() == b,
            string s => e.ValueKind == JsonValueKind.String && e.GetString() == s,
            int i => e.ValueKind == JsonValueKind.Number && e.GetDouble() == i,
            _ => false,
        };
        if (!ok) throw new WeightsException($"{source}: '{name}' = {e.GetRawText()} is not supported (only {JsonSerializer.Serialize(expected)})");
    }

    public void RequireNull(params string[] names)
    {
        foreach (var n in names)
            if (Has(n, out var e)) throw new WeightsException($"{source}: '{n}' = {e.GetRawText()} is not supported (a plain text-conditioned SD UNet has none)");
    }
}

/// <summary>diffusers' <c>UNet2DConditionModel</c> config, as far as SD 1.x and 2.x use it.</summary>
public sealed record UNetConditionConfig
{
    public int InChannels { get; init; } = 4;
    public int OutChannels { get; init; } = 4;
    public int[] BlockOutChannels { get; init; } = [320, 640, 1280, 1280];
    /// <summary>Per down block: true for CrossAttnDownBlock2D, false for DownBlock2D.</summary>
    public bool[] DownCrossAttention { get; init; } = [true, true, true, false];
    /// <summary>Per up block (in the up order): true for CrossAttnUpBlock2D, false for UpBlock2D.</summary>
    public bool[] UpCrossAttention { get; init; } = [false, true, true, true];
    public int LayersPerBlock { get; init; } = 2;
    public int CrossAttentionDim { get; init; } = 768;
    /// <summary>Heads per down block (SD 1.x's <c>attention_head_dim: 8</c> is this, a quirk of that config).</summary>
    public int[] Heads { get; init; } = [8, 8, 8, 8];
    public int TransformerLayers { get; init; } = 1;
    public bool UseLinearProjection { get; init; }
    public int NormGroups { get; init; } = 32;
    public double NormEps { get; init; } = 1e-5;
    public bool FlipSinToCos { get; init; } = true;
    public int FreqShift { get; init; }
    public int SampleSize { get; init; } = 64;

    public static UNetConditionConfig Read(string path)
    {
        var c = ConfigReader.Open(path);
        c.Require("act_fn", "silu");
        c.Require("time_embedding_type", "positional");
        c.Require("resnet_time_scale_shift", "default");
        c.Require("center_input_sample", false);
        c.Require("only_cross_attention", false);
        c.Require("dual_cross_attention", false);
        c.Require("conv_in_kernel", 3);
        c.Require("conv_out_kernel", 3);
        c.Require("downsample_padding", 1);
        c.Require("resnet_out_scale_factor", 1);
        c.Require("resnet_skip_time_act", false);
        c.Require("dropout", 0);
        c.Require("mid_block_type", "UNetMidBlock2DCrossAttn");
        c.Require("mid_block_scale_factor", 1);
        c.Require("mid_block_only_cross_attention", false);
        c.RequireNull("class_embed_type", "addition_embed_type", "num_class_embeds", "time_cond_proj_dim", "encoder_hid_dim",
            "projection_class_embeddings_input_dim", "time_embedding_dim", "timestep_post_act", "attention_type_default_override",
            "cross_attention_norm", "time_embedding_act_fn", "reverse_transformer_layers_per_block", "encoder_hid_dim_type", "addition_time_embed_dim");
        c.Require("class_embeddings_concat", false);
        if (c.IsSet("attention_type")) c.Require("attention_type", "default");
        var channels = c.Ints("block_out_channels", [320, 640, 1280, 1280]);
        int n = channels.Length;
        var down = c.Strings("down_block_types", ["CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"]);
        var up = c.Strings("up_block_types", ["UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"]);
        if (down.Length != n || up.Length != n) throw new WeightsException($"{path}: {down.Length} down and {up.Length} up blocks for {n} block_out_channels");
        bool Cross(string t, string plain, string cross) => t == cross ? true : t == plain ? false
            : throw new WeightsException($"{path}: block type '{t}' is not supported ({plain} or {cross})");
        var layers = c.IntOrList("layers_per_block", n) ?? Enumerable.Repeat(2, n).ToArray();
        if (layers.Distinct().Count() != 1) throw new WeightsException($"{path}: layers_per_block differs between blocks; not supported");
        var tl = c.IntOrList("transformer_layers_per_block", n) ?? Enumerable.Repeat(1, n).ToArray();
        if (tl.Distinct().Count() != 1) throw new WeightsException($"{path}: transformer_layers_per_block differs between blocks; not supported");
        if (c.IsSet("cross_attention_dim") && c.Kind("cross_attention_dim") != JsonValueKind.Number)
            throw new WeightsException($"{path}: a per-block cross_attention_dim is not supported");
        // diffusers: num_attention_heads = num_attention_heads or attention_head_dim (the SD 1.x/2.x configs name heads
        // 'attention_head_dim'); each transformer's head size is then its channels / heads.
        var heads = c.IntOrList("num_attention_heads", n) ?? c.IntOrList("attention_head_dim", n) ?? Enumerable.Repeat(8, n).ToArray();
        var config = new UNetConditionConfig
        {
            InChannels = c.Int("in_channels", 4),
            OutChannels = c.Int("out_channels", 4),
            BlockOutChannels = channels,
            DownCrossAttention = down.Select(t => Cross(t, "DownBlock2D", "CrossAttnDownBlock2D")).ToArray(),
            UpCrossAttention = up.Select(t => Cross(t, "UpBlock2D", "CrossAttnUpBlock2D")).ToArray(),
            LayersPerBlock = layers[0],
            CrossAttentionDim = c.Int("cross_attention_dim", 1280),
            Heads = heads,
            TransformerLayers = tl[0],
            UseLinearProjection = c.Bool("use_linear_projection", false),
            NormGroups = c.Int("norm_num_groups", 32),
            NormEps = c.Double("norm_eps", 1e-5),
            FlipSinToCos = c.Bool("flip_sin_to_cos", true),
            FreqShift = c.Int("freq_shift", 0),
            SampleSize = c.Int("sample_size", 64),
        };
        config.Validate(path);
        return config;
    }

    public void Validate(string source)
    {
        int n = BlockOutChannels.Length;
        if (n < 1 || DownCrossAttention.Length != n || UpCrossAttention.Length != n || Heads.Length != n)
            throw new WeightsException($"{source}: block lists of different lengths");
        for (int i = 0; i < n; i++)
        {
            if (BlockOutChannels[i] % NormGroups != 0) throw new WeightsException($"{source}: {BlockOutChannels[i]} channels do not divide into {NormGroups} groups");
            if (Heads[i] < 1 || BlockOutChannels[i] % Heads[i] != 0) throw new WeightsException($"{source}: {BlockOutChannels[i]} channels do not divide into {Heads[i]} heads");
        }
    }
}

/// <summary>
/// diffusers' <c>AutoencoderKL</c> config, read strictly into the project's <see cref="AutoencoderConfig"/>: the VAE is
/// the one <see cref="Diffusion.Autoencoder"/> the latent teachers use (same module tree, same keys).
/// </summary>
public static class VaeConfig
{
    public const double SdScalingFactor = 0.18215;

    public static AutoencoderConfig Read(string path)
    {
        var c = ConfigReader.Open(path);
        c.Require("_class_name", AutoencoderConfig.ClassNameKl);
        c.Require("act_fn", "silu");
        c.Require("use_quant_conv", true);
        c.Require("use_post_quant_conv", true);
        c.RequireNull("shift_factor", "latents_mean", "latents_std");
        var channels = c.Ints("block_out_channels", [64]);
        var down = c.Strings("down_block_types", [.. channels.Select(_ => AutoencoderConfig.DownBlock)]);
        var up = c.Strings("up_block_types", [.. channels.Select(_ => AutoencoderConfig.UpBlock)]);
        try
        {
            return new AutoencoderConfig
            {
                InChannels = c.Int("in_channels", 3),
                OutChannels = c.Int("out_channels", 3),
                LatentChannels = c.Int("latent_channels", 4),
                BlockOutChannels = channels,
                DownBlockTypes = down,
                UpBlockTypes = up,
                LayersPerBlock = c.Int("layers_per_block", 1),
                NormNumGroups = c.Int("norm_num_groups", 32),
                SampleSize = c.Int("sample_size", 512),
                ScalingFactor = c.Double("scaling_factor", SdScalingFactor),
                MidBlockAddAttention = c.Bool("mid_block_add_attention", true),
            }.Validated();
        }
        catch (Exception e) when (e is NotSupportedException or InvalidDataException) { throw new WeightsException($"{path}: {e.Message}"); }
    }
}

/// <summary>transformers' <c>CLIPTextConfig</c>.</summary>
public sealed record ClipTextConfig
{
    public int VocabSize { get; init; } = 49408;
    public int HiddenSize { get; init; } = 768;
    public int IntermediateSize { get; init; } = 3072;
    public int Layers { get; init; } = 12;
    public int Heads { get; init; } = 12;
    public int MaxPositions { get; init; } = 77;
    public double LayerNormEps { get; init; } = 1e-5;
    /// <summary>quick_gelu (CLIP ViT-L/14, SD 1.x) or gelu (OpenCLIP ViT-H, SD 2.x).</summary>
    public string HiddenAct { get; init; } = "quick_gelu";

    public static ClipTextConfig Read(string path)
    {
        var c = ConfigReader.Open(path);
        var act = c.Str("hidden_act", "quick_gelu");
        if (act is not ("quick_gelu" or "gelu")) throw new WeightsException($"{path}: hidden_act '{act}' is not supported (quick_gelu or gelu)");
        var config = new ClipTextConfig
        {
            VocabSize = c.Int("vocab_size", 49408),
            HiddenSize = c.Int("hidden_size", 512),
            IntermediateSize = c.Int("intermediate_size", 2048),
            Layers = c.Int("num_hidden_layers", 12),
            Heads = c.Int("num_attention_heads", 8),
            MaxPositions = c.Int("max_position_embeddings", 77),
            LayerNormEps = c.Double("layer_norm_eps", 1e-5),
            HiddenAct = act,
        };
        if (config.Heads < 1 || config.HiddenSize % config.Heads != 0) throw new WeightsException($"{path}: hidden_size {config.HiddenSize} does not divide into {config.Heads} heads");
        return config;
    }
}

/// <summary>The scheduler config's training schedule (every SD scheduler shares these fields).</summary>
public sealed record SdScheduleConfig
{
    public int TrainTimesteps { get; init; } = 1000;
    public double BetaStart { get; init; } = 0.00085;
    public double BetaEnd { get; init; } = 0.012;
    public string BetaSchedule { get; init; } = "scaled_linear";
    /// <summary>epsilon (SD 1.x, SD 2.x base) or v_prediction (SD 2.x 768).</summary>
    public string PredictionType { get; init; } = "epsilon";

    public static SdScheduleConfig Read(string path)
    {
        var c = ConfigReader.Open(path);
        var schedule = c.Str("beta_schedule", "scaled_linear");
        if (schedule is not ("scaled_linear" or "linear")) throw new WeightsException($"{path}: beta_schedule '{schedule}' is not supported (scaled_linear or linear)");
        c.RequireNull("trained_betas");
        var prediction = c.Str("prediction_type", "epsilon");
        if (prediction is not ("epsilon" or "v_prediction")) throw new WeightsException($"{path}: prediction_type '{prediction}' is not supported (epsilon or v_prediction)");
        return new SdScheduleConfig
        {
            TrainTimesteps = c.Int("num_train_timesteps", 1000),
            BetaStart = c.Double("beta_start", 0.00085),
            BetaEnd = c.Double("beta_end", 0.012),
            BetaSchedule = schedule,
            PredictionType = prediction,
        };
    }

    /// <summary>The training schedule as the project's <see cref="NoiseSchedule"/> (ᾱ in double precision; diffusers' float32 differs by about 1e-6 relative).</summary>
    public NoiseSchedule ToNoiseSchedule() =>
        new(BetaSchedule == "scaled_linear" ? ScheduleKind.ScaledLinear : ScheduleKind.Linear, TrainTimesteps, BetaStart, BetaEnd);
}
