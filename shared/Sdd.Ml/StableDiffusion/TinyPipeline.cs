using System.Text.Json;
using Sdd.Ml.Diffusion;

namespace Sdd.Ml.StableDiffusion;

/// <summary>
/// A tiny random Stable Diffusion 1.x pipeline written as a diffusers folder (the sizes of diffusers' own unit tests:
/// UNet blocks 32/64 with cross-attention on a 32-wide CLIP text encoder, a two-level VAE): the whole prompt path (import,
/// distillation, editing) can run and be tested on machines that have no real SD weights. Its edits mean nothing.
/// The UNet's sample_size 32 and the VAE's factor 2 make its images 64 px.
/// </summary>
public sealed class TinyPipeline(UNet2DCondition unet, Autoencoder vae, ClipTextModel text) : IDisposable
{
    public UNet2DCondition UNet { get; } = unet;
    public Autoencoder Vae { get; } = vae;
    public ClipTextModel Text { get; } = text;

    /// <summary>Merges for a tiny vocabulary: enough for "a photo of a cat" to take whole-word tokens.</summary>
    public static readonly (string, string)[] Merges =
        [("c", "a"), ("ca", "t</w>"), ("p", "h"), ("ph", "o"), ("t", "o</w>"), ("pho", "to</w>"), ("o", "f</w>")];

    public static int VocabularySize => 512 + Merges.Length + 2;

    public static string UNetJson(string heads = "[2, 4]", int cross = 32, bool linear = false, string extra = "") => $$"""
        {"_class_name": "UNet2DConditionModel", "_diffusers_version": "0.30.0", "act_fn": "silu",
         "attention_head_dim": {{heads}}, "block_out_channels": [32, 64], "center_input_sample": false,
         "cross_attention_dim": {{cross}}, "down_block_types": ["DownBlock2D", "CrossAttnDownBlock2D"],
         "downsample_padding": 1, "flip_sin_to_cos": true, "freq_shift": 0, "in_channels": 4, "layers_per_block": 2,
         "mid_block_scale_factor": 1, "norm_eps": 1e-05, "norm_num_groups": 32, "out_channels": 4, "sample_size": 32,
         "up_block_types": ["CrossAttnUpBlock2D", "UpBlock2D"], "use_linear_projection": {{(linear ? "true" : "false")}}{{extra}}}
        """;

    public const string VaeJson = """
        {"_class_name": "AutoencoderKL", "_diffusers_version": "0.30.0", "act_fn": "silu", "block_out_channels": [32, 64],
         "down_block_types": ["DownEncoderBlock2D", "DownEncoderBlock2D"], "in_channels": 3, "latent_channels": 4,
         "layers_per_block": 1, "norm_num_groups": 32, "out_channels": 3, "sample_size": 32, "scaling_factor": 0.18215,
         "up_block_types": ["UpDecoderBlock2D", "UpDecoderBlock2D"]}
        """;

    /// <summary>SD 1.5's own configs (UNet 859.5 M, VAE 83.7 M, CLIP ViT-L/14 text 123.1 M parameters): random weights of the real
    /// shapes, for memory and speed measurements where no real weights may be downloaded. Images 512 px.</summary>
    public static (string UNet, string Vae, string Text) Sd15Configs() => (
        """
        {"_class_name": "UNet2DConditionModel", "act_fn": "silu", "attention_head_dim": 8, "block_out_channels": [320, 640, 1280, 1280], "cross_attention_dim": 768,
         "down_block_types": ["CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"], "in_channels": 4, "layers_per_block": 2,
         "norm_num_groups": 32, "out_channels": 4, "sample_size": 64, "up_block_types": ["UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"]}
        """,
        """
        {"_class_name": "AutoencoderKL", "act_fn": "silu", "block_out_channels": [128, 256, 512, 512], "down_block_types": ["DownEncoderBlock2D", "DownEncoderBlock2D",
         "DownEncoderBlock2D", "DownEncoderBlock2D"], "in_channels": 3, "latent_channels": 4, "layers_per_block": 2, "norm_num_groups": 32, "out_channels": 3,
         "sample_size": 512, "scaling_factor": 0.18215, "up_block_types": ["UpDecoderBlock2D", "UpDecoderBlock2D", "UpDecoderBlock2D", "UpDecoderBlock2D"]}
        """,
        """
        {"architectures": ["CLIPTextModel"], "hidden_act": "quick_gelu", "hidden_size": 768, "intermediate_size": 3072, "layer_norm_eps": 1e-05,
         "max_position_embeddings": 77, "num_attention_heads": 12, "num_hidden_layers": 12, "vocab_size": 49408}
        """);

    public static string TextJson(int hidden = 32, int heads = 4) => $$"""
        {"architectures": ["CLIPTextModel"], "bos_token_id": 0, "eos_token_id": 2, "hidden_act": "quick_gelu",
         "hidden_size": {{hidden}}, "intermediate_size": 37, "layer_norm_eps": 1e-05, "max_position_embeddings": 77,
         "model_type": "clip_text_model", "num_attention_heads": {{heads}}, "num_hidden_layers": 5, "pad_token_id": 1,
         "vocab_size": {{VocabularySize}}}
        """;

    public const string SchedulerJson = """
        {"_class_name": "PNDMScheduler", "_diffusers_version": "0.30.0", "beta_end": 0.012, "beta_schedule": "scaled_linear",
         "beta_start": 0.00085, "num_train_timesteps": 1000, "set_alpha_to_one": false, "skip_prk_steps": true, "steps_offset": 1}
        """;

    public const string ModelIndexJson = """
        {"_class_name": "StableDiffusionPipeline", "_diffusers_version": "0.30.0", "feature_extractor": [null, null],
         "safety_checker": [null, null], "scheduler": ["diffusers", "PNDMScheduler"], "text_encoder": ["transformers", "CLIPTextModel"],
         "tokenizer": ["transformers", "CLIPTokenizer"], "unet": ["diffusers", "UNet2DConditionModel"], "vae": ["diffusers", "AutoencoderKL"]}
        """;

    /// <summary>CLIP's vocabulary from its merges: the 256 byte symbols, the same with &lt;/w&gt;, one per merge, then the two specials.</summary>
    public static Dictionary<string, int> Vocabulary(IReadOnlyList<(string A, string B)> merges)
    {
        var symbols = ClipTokenizer.ByteSymbolsInVocabularyOrder();
        var v = new Dictionary<string, int>(StringComparer.Ordinal);
        foreach (var s in symbols) v[s] = v.Count;
        foreach (var s in symbols) v[s + "</w>"] = v.Count;
        for (int i = 0; i < merges.Count; i++) v[merges[i].A + merges[i].B] = 512 + i;
        v[ClipTokenizer.StartOfText] = 512 + merges.Count;
        v[ClipTokenizer.EndOfText] = 513 + merges.Count;
        return v;
    }

    /// <summary>A tokenizer/ folder as transformers writes CLIP's: vocab.json, merges.txt, special_tokens_map.json, tokenizer_config.json.</summary>
    public static void WriteTokenizer(string dir, IReadOnlyList<(string, string)> merges, string pad = ClipTokenizer.EndOfText)
    {
        Directory.CreateDirectory(dir);
        File.WriteAllText(Path.Combine(dir, "vocab.json"), JsonSerializer.Serialize(Vocabulary(merges)));
        File.WriteAllLines(Path.Combine(dir, "merges.txt"), ["#version: 0.2", .. merges.Select(m => $"{m.Item1} {m.Item2}")]);
        File.WriteAllText(Path.Combine(dir, "special_tokens_map.json"), JsonSerializer.Serialize(new
        {
            bos_token = ClipTokenizer.StartOfText, eos_token = ClipTokenizer.EndOfText, pad_token = pad, unk_token = ClipTokenizer.EndOfText,
        }));
        File.WriteAllText(Path.Combine(dir, "tokenizer_config.json"), """{"do_lower_case": true, "model_max_length": 77, "tokenizer_class": "CLIPTokenizer"}""");
    }

    /// <summary>
    /// Writes a diffusers folder (model_index.json, configs, tokenizer, weights in <paramref name="dtype"/> F32, F16 or BF16,
    /// named with <paramref name="variant"/>, e.g. ".fp16") with random weights from <paramref name="seed"/>, and returns its
    /// modules, rounded to that dtype, so that what loads from the folder computes exactly what they do.
    /// </summary>
    public static TinyPipeline Write(string dir, long seed, string? unetJson = null, string vaeJson = VaeJson, string? textJson = null,
        string dtype = "F32", string variant = "")
    {
        foreach (var part in new[] { "unet", "vae", "text_encoder", "scheduler" }) Directory.CreateDirectory(Path.Combine(dir, part));
        File.WriteAllText(Path.Combine(dir, "model_index.json"), ModelIndexJson);
        File.WriteAllText(Path.Combine(dir, "unet", "config.json"), unetJson ?? UNetJson());
        File.WriteAllText(Path.Combine(dir, "vae", "config.json"), vaeJson);
        File.WriteAllText(Path.Combine(dir, "text_encoder", "config.json"), textJson ?? TextJson());
        File.WriteAllText(Path.Combine(dir, "scheduler", "scheduler_config.json"), SchedulerJson);
        WriteTokenizer(Path.Combine(dir, "tokenizer"), Merges);
        random.manual_seed(seed);
        var pipeline = new TinyPipeline(
            new UNet2DCondition(UNetConditionConfig.Read(Path.Combine(dir, "unet", "config.json"))),
            new Autoencoder(VaeConfig.Read(Path.Combine(dir, "vae", "config.json"))),
            new ClipTextModel(ClipTextConfig.Read(Path.Combine(dir, "text_encoder", "config.json"))));
        var modules = new nn.Module[] { pipeline.UNet, pipeline.Vae.Net, pipeline.Text };
        using (no_grad())
        {
            for (int i = 0; i < modules.Length; i++)
            {
                using var scope = NewDisposeScope();
                // Off their initial values (zero biases, unit norms), so that no part of the network hides behind its init.
                var g = new Generator((ulong)(seed + i));
                foreach (var p in modules[i].parameters()) p.add_(randn(p.shape, generator: g) * 0.05);
                if (dtype != "F32")
                    foreach (var (_, p) in modules[i].state_dict()) p.copy_(p.to_type(dtype == "F16" ? ScalarType.Float16 : ScalarType.BFloat16).to_type(ScalarType.Float32));
                modules[i].eval();
            }
        }
        SafetensorsFile.Write(Path.Combine(dir, "unet", $"diffusion_pytorch_model{variant}.safetensors"), pipeline.UNet.state_dict(), dtype);
        SafetensorsFile.Write(Path.Combine(dir, "vae", $"diffusion_pytorch_model{variant}.safetensors"), pipeline.Vae.Net.state_dict(), dtype);
        SafetensorsFile.Write(Path.Combine(dir, "text_encoder", $"model{variant}.safetensors"), pipeline.Text.state_dict(), dtype);
        return pipeline;
    }

    public void Dispose()
    {
        UNet.Dispose();
        Vae.Dispose();
        Text.Dispose();
    }
}
