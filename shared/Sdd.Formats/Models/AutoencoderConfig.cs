using System.Text.Json.Serialization;

namespace Sdd.Formats.Models;

/// <summary>
/// An autoencoder's <c>config.json</c> in the diffusers <c>AutoencoderKL</c> layout (snake_case, the same field names), so a
/// diffusers VAE folder (<c>config.json</c> + <c>diffusion_pytorch_model.safetensors</c>) is read by the same code. Fields
/// diffusers writes that this build does not use are ignored; <see cref="Sdd"/> holds what SDD adds (how it was trained
/// and measured), which diffusers in turn ignores.
/// </summary>
public sealed record AutoencoderConfig
{
    public const string ClassNameKl = "AutoencoderKL";
    public const string DownBlock = "DownEncoderBlock2D";
    public const string UpBlock = "UpDecoderBlock2D";
    /// <summary>The diffusers weights file of a model folder.</summary>
    public const string WeightsFile = "diffusion_pytorch_model.safetensors";

    [JsonPropertyName("_class_name")] public string ClassName { get; init; } = ClassNameKl;
    public int InChannels { get; init; } = 3;
    public int OutChannels { get; init; } = 3;
    public int LatentChannels { get; init; } = 4;
    /// <summary>Channels of each resolution; the latent side is the image side / 2^(count - 1).</summary>
    public int[] BlockOutChannels { get; init; } = [32, 64, 64];
    public string[] DownBlockTypes { get; init; } = [DownBlock, DownBlock, DownBlock];
    public string[] UpBlockTypes { get; init; } = [UpBlock, UpBlock, UpBlock];
    public int LayersPerBlock { get; init; } = 1;
    public int NormNumGroups { get; init; } = 8;
    public string ActFn { get; init; } = "silu";
    public int SampleSize { get; init; } = 128;
    /// <summary>Latents are multiplied by it for the diffusion model (SD 1.x: 0.18215), so they have about unit variance.</summary>
    public double ScalingFactor { get; init; } = 1.0;
    /// <summary>Self-attention in the mid blocks (absent in older diffusers configs: true).</summary>
    public bool MidBlockAddAttention { get; init; } = true;
    public SddAutoencoderInfo? Sdd { get; init; }

    /// <summary>How much smaller the latent's side is than the image's.</summary>
    [JsonIgnore] public int Downsampling => 1 << (BlockOutChannels.Length - 1);

    /// <summary>Throws <see cref="NotSupportedException"/> or <see cref="InvalidDataException"/> naming the field this build cannot honour.</summary>
    public AutoencoderConfig Validated()
    {
        if (ClassName != ClassNameKl) throw new NotSupportedException($"_class_name '{ClassName}' is not supported (only {ClassNameKl}).");
        if (ActFn != "silu") throw new NotSupportedException($"act_fn '{ActFn}' is not supported (only silu).");
        if (BlockOutChannels.Length == 0) throw new InvalidDataException("block_out_channels is empty.");
        if (DownBlockTypes.Length != BlockOutChannels.Length || DownBlockTypes.Any(t => t != DownBlock))
            throw new NotSupportedException($"down_block_types must be {BlockOutChannels.Length} x {DownBlock}, got [{string.Join(", ", DownBlockTypes)}].");
        if (UpBlockTypes.Length != BlockOutChannels.Length || UpBlockTypes.Any(t => t != UpBlock))
            throw new NotSupportedException($"up_block_types must be {BlockOutChannels.Length} x {UpBlock}, got [{string.Join(", ", UpBlockTypes)}].");
        if (NormNumGroups < 1 || BlockOutChannels.Any(c => c < 1 || c % NormNumGroups != 0))
            throw new InvalidDataException($"block_out_channels [{string.Join(", ", BlockOutChannels)}] must be multiples of norm_num_groups {NormNumGroups}.");
        if (LayersPerBlock < 1) throw new InvalidDataException($"layers_per_block must be at least 1, got {LayersPerBlock}.");
        if (InChannels < 1 || OutChannels < 1 || LatentChannels < 1) throw new InvalidDataException("in_channels, out_channels and latent_channels must be positive.");
        if (!(ScalingFactor > 0) || !double.IsFinite(ScalingFactor)) throw new InvalidDataException($"scaling_factor must be positive, got {ScalingFactor}.");
        return this;
    }
}

/// <summary>What SDD records about an autoencoder it trained: steps, data, held-out reconstruction PSNR.</summary>
public sealed record SddAutoencoderInfo
{
    public int Step { get; init; }
    public string? Dataset { get; init; }
    public AutoencoderTrainingSettings? Training { get; init; }
    public Dictionary<string, double> Metrics { get; init; } = [];
}

/// <summary>Hyper-parameters of autoencoder training (reconstruction L1 + MSE, a small KL term).</summary>
public sealed record AutoencoderTrainingSettings
{
    public int Steps { get; init; } = 3000;
    public int BatchSize { get; init; } = 16;
    public double LearningRate { get; init; } = 1e-3;
    public int WarmupSteps { get; init; } = 100;
    public double KlWeight { get; init; } = 1e-6;
    public double GradClip { get; init; } = 1.0;
    public int CheckpointEvery { get; init; } = 250;
    public long Seed { get; init; } = 1;
}
