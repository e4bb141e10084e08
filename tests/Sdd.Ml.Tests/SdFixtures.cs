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
    public static readonly (string, string)[] TinyMerges = TinyPipeline.Merges;
    public static int TinyVocabulary => TinyPipeline.VocabularySize;
    public static string UNetJson(string heads = "[2, 4]", int cross = 32, bool linear = false, string extra = "") => TinyPipeline.UNetJson(heads, cross, linear, extra);
    public static string TextJson(int hidden = 32, int heads = 4) => TinyPipeline.TextJson(hidden, heads);
    public const string SchedulerJson = TinyPipeline.SchedulerJson;
    public static Dictionary<string, int> Vocabulary(IReadOnlyList<(string A, string B)> merges) => TinyPipeline.Vocabulary(merges);
    public static void WriteTokenizer(string dir, IReadOnlyList<(string, string)> merges, string pad = ClipTokenizer.EndOfText) => TinyPipeline.WriteTokenizer(dir, merges, pad);

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

    /// <summary>A tiny random diffusers folder and the modules it was written from (<see cref="TinyPipeline.Write"/>).</summary>
    public static TinyPipeline WriteDiffusers(string dir, long seed, string? unetJson = null, string vaeJson = TinyPipeline.VaeJson, string? textJson = null,
        string dtype = "F32", string variant = "") => TinyPipeline.Write(dir, seed, unetJson, vaeJson, textJson, dtype, variant);

    /// <summary>The modules' weights under the original single-file keys, with LDM's own buffers beside them.</summary>
    public static Dictionary<string, Tensor> SingleFileWeights(TinyPipeline p, bool oldTextPrefix = false)
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
    public static (Tensor Text, Tensor Eps, Tensor Decoded, Tensor Mean) Outputs(TinyPipeline p, long[] ids, Tensor latents, long t, Tensor image)
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
