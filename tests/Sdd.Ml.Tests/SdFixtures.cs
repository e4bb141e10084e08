using System.IO.Compression;
using System.Text.Json;
using Sdd.Ml.Diffusion;
using Sdd.Ml.StableDiffusion;

namespace Sdd.Ml.Tests;

/// <summary>
/// Tiny random Stable Diffusion pipelines written by the tests, in the two layouts users have on disk: a diffusers
/// folder and one original single-file checkpoint. The single-file keys are produced here from diffusers' keys by a
/// mapping written independently of the loader's (diffusers → original, the loader goes original → diffusers).
/// </summary>
public static class SdFixtures
{
    /// <summary>Merges for a tiny vocabulary: enough for "a photo of a cat" to take whole-word tokens.</summary>
    public static readonly (string, string)[] TinyMerges =
        [("c", "a"), ("ca", "t</w>"), ("p", "h"), ("ph", "o"), ("t", "o</w>"), ("pho", "to</w>"), ("o", "f</w>")];

    public const int TinyVocabulary = 512 + 7 + 2;

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

    public static string TextJson(int hidden = 32, int heads = 4) => $$"""
        {"architectures": ["CLIPTextModel"], "bos_token_id": 0, "eos_token_id": 2, "hidden_act": "quick_gelu",
         "hidden_size": {{hidden}}, "intermediate_size": 37, "layer_norm_eps": 1e-05, "max_position_embeddings": 77,
         "model_type": "clip_text_model", "num_attention_heads": {{heads}}, "num_hidden_layers": 5, "pad_token_id": 1,
         "vocab_size": {{TinyVocabulary}}}
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

    /// <summary>CLIP's vocabulary from its merges: 256 byte symbols, the same with &lt;/w&gt;, one per merge, then the two specials.</summary>
    public static Dictionary<string, int> Vocabulary(IReadOnlyList<(string A, string B)> merges)
    {
        var symbols = GptByteSymbols();
        var v = new Dictionary<string, int>(StringComparer.Ordinal);
        foreach (var s in symbols) v[s] = v.Count;
        foreach (var s in symbols) v[s + "</w>"] = v.Count;
        for (int i = 0; i < merges.Count; i++) v[merges[i].A + merges[i].B] = 512 + i;
        v[ClipTokenizer.StartOfText] = 512 + merges.Count;
        v[ClipTokenizer.EndOfText] = 513 + merges.Count;
        return v;
    }

    /// <summary>GPT-2's bytes_to_unicode in vocabulary order, written out here from its definition.</summary>
    public static List<string> GptByteSymbols()
    {
        var bs = Enumerable.Range('!', '~' - '!' + 1).Concat(Enumerable.Range(0xA1, 0xAC - 0xA1 + 1)).Concat(Enumerable.Range(0xAE, 0xFF - 0xAE + 1)).ToList();
        var cs = bs.ToList();
        int n = 0;
        for (int b = 0; b < 256; b++)
            if (!bs.Contains(b)) { bs.Add(b); cs.Add(256 + n++); }
        return cs.Select(c => ((char)c).ToString()).ToList();
    }

    /// <summary>The byte each symbol stands for.</summary>
    public static Dictionary<string, byte> SymbolBytes()
    {
        var bs = Enumerable.Range('!', '~' - '!' + 1).Concat(Enumerable.Range(0xA1, 0xAC - 0xA1 + 1)).Concat(Enumerable.Range(0xAE, 0xFF - 0xAE + 1)).ToList();
        var order = bs.Concat(Enumerable.Range(0, 256).Where(b => !bs.Contains(b))).ToList();
        var symbols = GptByteSymbols();
        return Enumerable.Range(0, 256).ToDictionary(i => symbols[i], i => (byte)order[i]);
    }

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

    /// <summary>OpenAI's published merges (lines 2 .. 48,895 of bpe_simple_vocab_16e6.txt.gz beside the checkout), or null when absent.</summary>
    public static List<(string, string)>? OpenAiMerges()
    {
        var path = FindUp(Path.Combine("shared", "data", "clip", "bpe_simple_vocab_16e6.txt.gz"));
        if (path is null) return null;
        using var gz = new GZipStream(File.OpenRead(path), CompressionMode.Decompress);
        using var reader = new StreamReader(gz);
        var lines = reader.ReadToEnd().Split('\n');
        return lines[1..(49152 - 256 - 2 + 1)].Select(l => l.Split(' ')).Select(p => (p[0], p[1])).ToList();
    }

    private static string? FindUp(string relative)
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
            if (File.Exists(Path.Combine(dir.FullName, relative))) return Path.Combine(dir.FullName, relative);
        return null;
    }

    /// <summary>A pipeline's modules, built from configs and moved off their initial values: the reference the loaded copies must equal.</summary>
    public sealed class Parts(UNet2DCondition unet, Autoencoder vae, ClipTextModel text) : IDisposable
    {
        public UNet2DCondition UNet { get; } = unet;
        public Autoencoder Vae { get; } = vae;
        public ClipTextModel Text { get; } = text;

        public void Dispose()
        {
            UNet.Dispose();
            Vae.Dispose();
            Text.Dispose();
        }
    }

    /// <summary>Writes a diffusers folder (configs, tokenizer, weights in <paramref name="dtype"/>) and returns its modules,
    /// rounded to that dtype so that the loaded copy must equal them bit for bit.</summary>
    public static Parts WriteDiffusers(string dir, long seed, string? unetJson = null, string vaeJson = VaeJson, string? textJson = null,
        string dtype = "F32", string variant = "")
    {
        foreach (var part in new[] { "unet", "vae", "text_encoder", "scheduler" }) Directory.CreateDirectory(Path.Combine(dir, part));
        File.WriteAllText(Path.Combine(dir, "model_index.json"), ModelIndexJson);
        File.WriteAllText(Path.Combine(dir, "unet", "config.json"), unetJson ?? UNetJson());
        File.WriteAllText(Path.Combine(dir, "vae", "config.json"), vaeJson);
        File.WriteAllText(Path.Combine(dir, "text_encoder", "config.json"), textJson ?? TextJson());
        File.WriteAllText(Path.Combine(dir, "scheduler", "scheduler_config.json"), SchedulerJson);
        WriteTokenizer(Path.Combine(dir, "tokenizer"), TinyMerges);
        var parts = Build(dir, seed);
        foreach (var m in new nn.Module[] { parts.UNet, parts.Vae.Net, parts.Text }) Round(m, dtype);
        SafetensorsFile.Write(Path.Combine(dir, "unet", $"diffusion_pytorch_model{variant}.safetensors"), parts.UNet.state_dict(), dtype);
        SafetensorsFile.Write(Path.Combine(dir, "vae", $"diffusion_pytorch_model{variant}.safetensors"), parts.Vae.Net.state_dict(), dtype);
        SafetensorsFile.Write(Path.Combine(dir, "text_encoder", $"model{variant}.safetensors"), parts.Text.state_dict(), dtype);
        return parts;
    }

    /// <summary>The modules a folder's configs describe, perturbed with the seed.</summary>
    public static Parts Build(string dir, long seed)
    {
        random.manual_seed(seed);
        var parts = new Parts(
            new UNet2DCondition(UNetConditionConfig.Read(Path.Combine(dir, "unet", "config.json"))),
            new Autoencoder(VaeConfig.Read(Path.Combine(dir, "vae", "config.json"))),
            new ClipTextModel(ClipTextConfig.Read(Path.Combine(dir, "text_encoder", "config.json"))));
        Tiny.Perturb(parts.UNet, seed, 0.05);
        Tiny.Perturb(parts.Vae.Net, seed + 1, 0.05);
        Tiny.Perturb(parts.Text, seed + 2, 0.05);
        foreach (var m in new nn.Module[] { parts.UNet, parts.Vae.Net, parts.Text }) m.eval();
        return parts;
    }

    private static void Round(nn.Module m, string dtype)
    {
        if (dtype == "F32") return;
        using var _ = no_grad();
        var type = dtype == "F16" ? ScalarType.Float16 : ScalarType.BFloat16;
        foreach (var (_, p) in m.state_dict()) p.copy_(p.to_type(type).to_type(ScalarType.Float32));
    }

    /// <summary>The modules' weights under the original single-file keys, with LDM's own buffers beside them.</summary>
    public static Dictionary<string, Tensor> SingleFileWeights(Parts p, bool oldTextPrefix = false)
    {
        var all = new Dictionary<string, Tensor>(StringComparer.Ordinal);
        var uc = p.UNet.Config;
        foreach (var (k, t) in p.UNet.state_dict()) all[SdCheckpoint.UNetPrefix + OriginalUNetKey(k, uc.LayersPerBlock, uc.UpCrossAttention)] = t;
        int levels = p.Vae.Config.BlockOutChannels.Length;
        foreach (var (k, t) in p.Vae.Net.state_dict())
        {
            var (key, conv) = OriginalVaeKey(k, levels);
            all[SdCheckpoint.VaePrefix + key] = conv ? t.reshape(t.shape[0], t.shape[1], 1, 1) : t;
        }
        foreach (var (k, t) in p.Text.state_dict()) all[SdCheckpoint.TextPrefix + (oldTextPrefix ? k["text_model.".Length..] : k)] = t;
        all["alphas_cumprod"] = tensor(new SdScheduleConfig().ToNoiseSchedule().AlphaBars.Select(a => (float)a).ToArray());
        all["model_ema.decay"] = tensor(0.9999f);
        all["model_ema.diffusion_modelconv_inweight"] = zeros(2, 2);
        return all;
    }

    private static string Rest(string[] p, int from) => string.Join('.', p.Skip(from));

    private static string OriginalResnet(string r) => r
        .Replace("norm1.", "in_layers.0.").Replace("conv1.", "in_layers.2.").Replace("time_emb_proj.", "emb_layers.1.")
        .Replace("norm2.", "out_layers.0.").Replace("conv2.", "out_layers.3.").Replace("conv_shortcut.", "skip_connection.");

    /// <summary>diffusers' UNet key → the original's (without model.diffusion_model.).</summary>
    public static string OriginalUNetKey(string k, int lpb, bool[] upCross)
    {
        var p = k.Split('.');
        int I(int i) => int.Parse(p[i], System.Globalization.CultureInfo.InvariantCulture);
        return p[0] switch
        {
            "time_embedding" => $"time_embed.{(p[1] == "linear_1" ? 0 : 2)}.{Rest(p, 2)}",
            "conv_in" => $"input_blocks.0.0.{Rest(p, 1)}",
            "conv_norm_out" => $"out.0.{Rest(p, 1)}",
            "conv_out" => $"out.2.{Rest(p, 1)}",
            "down_blocks" => p[2] switch
            {
                "resnets" => $"input_blocks.{1 + I(1) * (lpb + 1) + I(3)}.0.{OriginalResnet(Rest(p, 4))}",
                "attentions" => $"input_blocks.{1 + I(1) * (lpb + 1) + I(3)}.1.{Rest(p, 4)}",
                _ => $"input_blocks.{(I(1) + 1) * (lpb + 1)}.0.op.{Rest(p, 5)}",
            },
            "mid_block" => p[1] == "resnets" ? $"middle_block.{(I(2) == 0 ? 0 : 2)}.{OriginalResnet(Rest(p, 3))}" : $"middle_block.1.{Rest(p, 3)}",
            "up_blocks" => p[2] switch
            {
                "resnets" => $"output_blocks.{I(1) * (lpb + 1) + I(3)}.0.{OriginalResnet(Rest(p, 4))}",
                "attentions" => $"output_blocks.{I(1) * (lpb + 1) + I(3)}.1.{Rest(p, 4)}",
                _ => $"output_blocks.{I(1) * (lpb + 1) + lpb}.{(upCross[I(1)] ? 2 : 1)}.conv.{Rest(p, 5)}",
            },
            _ => throw new InvalidOperationException($"unmapped UNet key {k}"),
        };
    }

    /// <summary>diffusers' VAE key → the original's (without first_stage_model.), and whether it is stored as a 1×1 conv.</summary>
    public static (string Key, bool Conv) OriginalVaeKey(string k, int levels)
    {
        var p = k.Split('.');
        if (p[0] is "quant_conv" or "post_quant_conv") return (k, false);
        string side = p[0];
        int I(int i) => int.Parse(p[i], System.Globalization.CultureInfo.InvariantCulture);
        string Shortcut(string r) => r.Replace("conv_shortcut.", "nin_shortcut.");
        switch (p[1])
        {
            case "conv_in" or "conv_out": return (k, false);
            case "conv_norm_out": return ($"{side}.norm_out.{Rest(p, 2)}", false);
            case "mid_block" when p[2] == "resnets": return ($"{side}.mid.block_{I(3) + 1}.{Shortcut(Rest(p, 4))}", false);
            case "mid_block":
                return p[4] switch
                {
                    "group_norm" => ($"{side}.mid.attn_1.norm.{Rest(p, 5)}", false),
                    "to_q" => ($"{side}.mid.attn_1.q.{Rest(p, 5)}", p[^1] == "weight"),
                    "to_k" => ($"{side}.mid.attn_1.k.{Rest(p, 5)}", p[^1] == "weight"),
                    "to_v" => ($"{side}.mid.attn_1.v.{Rest(p, 5)}", p[^1] == "weight"),
                    _ => ($"{side}.mid.attn_1.proj_out.{Rest(p, 6)}", p[^1] == "weight"),
                };
            case "down_blocks":
                return p[3] == "resnets" ? ($"{side}.down.{I(2)}.block.{I(4)}.{Shortcut(Rest(p, 5))}", false) : ($"{side}.down.{I(2)}.downsample.conv.{Rest(p, 6)}", false);
            case "up_blocks":
                return p[3] == "resnets" ? ($"{side}.up.{levels - 1 - I(2)}.block.{I(4)}.{Shortcut(Rest(p, 5))}", false)
                    : ($"{side}.up.{levels - 1 - I(2)}.upsample.conv.{Rest(p, 6)}", false);
            default: throw new InvalidOperationException($"unmapped VAE key {k}");
        }
    }

    /// <summary>Everything a pipeline computes for one prompt and one set of latents, with the reference modules.</summary>
    public static (Tensor Text, Tensor Eps, Tensor Decoded, Tensor Mean) Outputs(Parts p, long[] ids, Tensor latents, long t, Tensor image)
    {
        using var _ = no_grad();
        var text = p.Text.forward(tensor(ids, [1, ids.Length]));
        var eps = p.UNet.Forward(latents, tensor(t, ScalarType.Int64), text.expand(latents.shape[0], -1, -1));
        // Written out here rather than through Autoencoder.Encode/Decode: the modules' own posterior mean, scaled by hand.
        var decoded = p.Vae.Net.Decode(latents / 0.18215);
        var mean = p.Vae.Net.Encode(image).Mean * 0.18215;
        return (text, eps, decoded, mean);
    }

    /// <summary>The same through a loaded model.</summary>
    public static (Tensor Text, Tensor Eps, Tensor Decoded, Tensor Mean) Outputs(StableDiffusionModel m, string prompt, Tensor latents, long t, Tensor image)
    {
        using var _ = no_grad();
        var text = m.EncodePrompt(prompt);
        return (text, m.PredictNoise(latents, t, text), m.DecodeLatents(latents), m.EncodeMean(image));
    }
}
