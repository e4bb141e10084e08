using System.Text.Json;

namespace Sdd.Formats.Models;

/// <summary>Linear betas (DDPM), the cosine schedule (improved DDPM), or scaled_linear (Stable Diffusion: β = linspace(√β₀, √β₁, T)²).</summary>
public enum ScheduleKind { Linear, Cosine, ScaledLinear }

/// <summary>The teacher's noise predictor: a UNet with attention at the low resolutions.</summary>
public sealed record UNetConfig
{
    public const int DefaultImageSize = 32;

    /// <summary>The side of what the UNet sees: the image for a pixel teacher, the latent for a latent one.</summary>
    public int ImageSize { get; init; } = DefaultImageSize;
    /// <summary>Channels of what the UNet sees (and predicts): 3 for pixels, the autoencoder's latent channels for latents.</summary>
    public int InChannels { get; init; } = 3;
    public int[] Channels { get; init; } = [32, 64, 96];
    /// <summary>Self-attention at feature maps of this size and smaller.</summary>
    public int AttentionBelow { get; init; } = DefaultAttentionBelow(DefaultImageSize);
    public int Heads { get; init; } = 4;
    public int Attributes { get; init; } = 5;

    /// <summary>A new teacher's attention: at a quarter of its image size and below, at least at 4 px.</summary>
    public static int DefaultAttentionBelow(int imageSize) => Math.Max(4, imageSize / 4);
}

/// <summary>Hyper-parameters of teacher training; stored in the teacher's config.</summary>
public sealed record TeacherTrainingSettings
{
    public int Steps { get; init; } = 2000;
    public int BatchSize { get; init; } = 64;
    public double LearningRate { get; init; } = 8e-4;
    public int WarmupSteps { get; init; } = 200;
    /// <summary>
    /// The step from which the learning rate falls along a half cosine to zero at <see cref="Steps"/>; null keeps it constant
    /// after the warm-up. Given on a resumed run it anneals a constant-rate run over the steps it adds.
    /// </summary>
    public int? DecayFrom { get; init; }
    public double WeightDecay { get; init; } = 0.0;
    public double EmaDecay { get; init; } = 0.999;
    public double DropAttribute { get; init; } = 0.15;
    public double DropAll { get; init; } = 0.1;
    public double GradClip { get; init; } = 1.0;
    public bool HorizontalFlip { get; init; } = true;
    public int CheckpointEvery { get; init; } = 250;
    public long Seed { get; init; } = 1;
}

/// <summary>The teacher's JSON config: everything needed to rebuild it, plus how it was trained and measured.</summary>
public sealed record TeacherConfig
{
    public const string KindAttributeDdpm = "attribute-ddpm";
    /// <summary>The UNet works on the latents of an autoencoder (the Stable Diffusion shape): <see cref="Autoencoder"/> names its folder.</summary>
    public const string KindLatentDdpm = "latent-ddpm";
    /// <summary>A user's Stable Diffusion 1.x / 2.x weights (a diffusers folder or one original .safetensors file) with text
    /// prompts: one attribute, the prompt; states present / absent / unknown are the prompt, the source prompt and the empty prompt.</summary>
    public const string KindStableDiffusion = "stable-diffusion";
    public const string DefaultAutoencoderFolder = "vae";
    public const ScheduleKind DefaultSchedule = ScheduleKind.Linear;

    public string Kind { get; init; } = KindAttributeDdpm;
    /// <summary>For <see cref="KindLatentDdpm"/>: the autoencoder's folder, relative to the teacher's (a diffusers AutoencoderKL folder).</summary>
    public string? Autoencoder { get; init; }
    public required string[] AttributeNames { get; init; }
    public required UNetConfig Unet { get; init; }
    public ScheduleKind Schedule { get; init; } = DefaultSchedule;
    public int TimeSteps { get; init; } = 1000;
    public double BetaStart { get; init; } = 1e-4;
    public double BetaEnd { get; init; } = 0.02;
    /// <summary>For <see cref="KindStableDiffusion"/>: the text the attribute stands for ("a photo of a smiling person").</summary>
    public string? Prompt { get; init; }
    /// <summary>For <see cref="KindStableDiffusion"/>: the text the source images stand for (delta guidance's reference; empty: the empty prompt).</summary>
    public string? SourcePrompt { get; init; }
    public TeacherTrainingSettings? Training { get; init; }
    public int Step { get; init; }
    public string? Dataset { get; init; }
    public Dictionary<string, double> Metrics { get; init; } = [];

    /// <summary>The serializer options of every model folder's config (<see cref="ModelFolder.Json"/>).</summary>
    public static JsonSerializerOptions Json => ModelFolder.Json;
}
