using System.Text.Json;
using System.Text.RegularExpressions;

namespace Sdd.Ml.StableDiffusion;

/// <summary>Where one of a module's weights comes from: a file, its key there, and whether a 1×1 conv is read as a linear weight.</summary>
public sealed record WeightSource(SafetensorsFile File, string Key, bool SqueezeConv = false)
{
    public long[] Shape => SqueezeConv ? File.Entries[Key].Shape[..2] : File.Entries[Key].Shape;
}

/// <summary>
/// The weights of one SD pipeline, by diffusers key, from a diffusers folder (unet/, vae/, text_encoder/ with their
/// *.safetensors, *.fp16.safetensors or sharded *.safetensors.index.json) or from one original single-file checkpoint
/// (model.diffusion_model.*, first_stage_model.*, cond_stage_model.transformer.*), and the strict copy into modules:
/// every missing, unexpected or mis-shaped key is named in one error with its file.
/// </summary>
public static partial class SdCheckpoint
{
    public const string UNetPrefix = "model.diffusion_model.", VaePrefix = "first_stage_model.", TextPrefix = "cond_stage_model.transformer.";
    public const int MaxShards = 64;

    /// <summary>LDM's own buffers in a single file: the schedule it was trained with and the EMA copy; not weights of the modules.</summary>
    private static readonly HashSet<string> LdmBuffers =
    [
        "betas", "alphas_cumprod", "alphas_cumprod_prev", "sqrt_alphas_cumprod", "sqrt_one_minus_alphas_cumprod",
        "log_one_minus_alphas_cumprod", "sqrt_recip_alphas_cumprod", "sqrt_recipm1_alphas_cumprod", "posterior_variance",
        "posterior_log_variance_clipped", "posterior_mean_coef1", "posterior_mean_coef2", "logvar",
    ];

    /// <summary>The weight files of a diffusers component folder: full precision first, then the fp16 variant, then shards.</summary>
    public static IReadOnlyList<SafetensorsFile> ComponentFiles(string dir, string baseName)
    {
        if (!Directory.Exists(dir)) throw new WeightsException($"{dir}: missing (a diffusers folder has unet/, vae/, text_encoder/, tokenizer/ and scheduler/)");
        foreach (var variant in new[] { "", ".fp16" })
        {
            var single = Path.Combine(dir, $"{baseName}{variant}.safetensors");
            if (File.Exists(single)) return [SafetensorsFile.Open(single)];
            foreach (var index in new[] { $"{baseName}.safetensors.index{variant}.json", $"{baseName}{variant}.safetensors.index.json" })
            {
                var indexPath = Path.Combine(dir, index);
                if (File.Exists(indexPath)) return Shards(indexPath);
            }
        }
        var pickles = Directory.EnumerateFiles(dir).Where(f => Path.GetExtension(f).ToLowerInvariant() is ".bin" or ".ckpt" or ".pt" or ".pth").ToList();
        if (pickles.Count > 0) SafetensorsFile.RefusePickle(pickles[0]);
        throw new WeightsException($"{dir}: no {baseName}.safetensors, {baseName}.fp16.safetensors or {baseName}.safetensors.index.json");
    }

    private static List<SafetensorsFile> Shards(string indexPath)
    {
        if (new FileInfo(indexPath).Length > 16 << 20) throw new WeightsException($"{indexPath}: over 16 MiB, not a shard index");
        using var doc = JsonDocument.Parse(File.ReadAllBytes(indexPath));
        if (!doc.RootElement.TryGetProperty("weight_map", out var map)) throw new WeightsException($"{indexPath}: no weight_map");
        var names = map.EnumerateObject().Select(p => p.Value.GetString() ?? "").Distinct().ToList();
        if (names.Count > MaxShards) throw new WeightsException($"{indexPath}: {names.Count} shards, more than {MaxShards}");
        var dir = Path.GetDirectoryName(indexPath)!;
        var files = new Dictionary<string, SafetensorsFile>();
        foreach (var n in names)
        {
            if (n != Path.GetFileName(n) || !n.EndsWith(".safetensors", StringComparison.Ordinal))
                throw new WeightsException($"{indexPath}: shard '{n}' is not a .safetensors file name in this folder");
            files[n] = SafetensorsFile.Open(Path.Combine(dir, n));
        }
        foreach (var p in map.EnumerateObject())
            if (!files[p.Value.GetString()!].Entries.ContainsKey(p.Name)) throw new WeightsException($"{indexPath}: '{p.Name}' is mapped to {p.Value.GetString()}, which does not hold it");
        return files.Values.ToList();
    }

    /// <summary>Every key of the files as a diffusers key (a diffusers folder needs no renaming but the VAE's old attention names).</summary>
    public static Dictionary<string, WeightSource> DiffusersWeights(IEnumerable<SafetensorsFile> files, bool vae = false, bool text = false)
    {
        var result = new Dictionary<string, WeightSource>(StringComparer.Ordinal);
        foreach (var f in files)
            foreach (var key in f.Entries.Keys)
            {
                if (text && key.EndsWith("embeddings.position_ids", StringComparison.Ordinal)) continue; // a buffer older transformers saved
                var target = vae ? OldVaeAttention().Replace(key, m => m.Groups[1].Value + m.Groups[2].Value switch
                {
                    "query" => "to_q", "key" => "to_k", "value" => "to_v", _ => "to_out.0",
                } + ".") : key;
                bool squeeze = vae && target.Contains(".attentions.", StringComparison.Ordinal) && f.Entries[key].Shape.Length == 4 && target.EndsWith(".weight", StringComparison.Ordinal);
                if (!result.TryAdd(target, new WeightSource(f, key, squeeze))) throw new WeightsException($"{f.Path}: '{key}' is also in another file of the same model");
            }
        return result;
    }

    /// <summary>A single-file checkpoint's keys split by module and renamed to diffusers' keys; unplaceable keys are returned by name.</summary>
    public static (Dictionary<string, WeightSource> UNet, Dictionary<string, WeightSource> Vae, Dictionary<string, WeightSource> Text, List<string> Unexpected)
        SingleFileWeights(SafetensorsFile f)
    {
        var unet = new Dictionary<string, WeightSource>(StringComparer.Ordinal);
        var vae = new Dictionary<string, WeightSource>(StringComparer.Ordinal);
        var text = new Dictionary<string, WeightSource>(StringComparer.Ordinal);
        var unexpected = new List<string>();
        var keys = f.Entries.Keys.ToList();
        if (keys.Any(k => k.StartsWith("cond_stage_model.model.", StringComparison.Ordinal)))
            throw new WeightsException($"{f.Path}: an OpenCLIP text encoder (cond_stage_model.model.*, SD 2.x's single file) is not read; use SD 2.x as a diffusers folder");
        int lpb = UNetLayersPerBlock(keys);
        int decoderLevels = keys.Where(k => k.StartsWith(VaePrefix + "decoder.up.", StringComparison.Ordinal))
            .Select(k => int.Parse(k.Split('.')[3], System.Globalization.CultureInfo.InvariantCulture)).DefaultIfEmpty(-1).Max() + 1;
        foreach (var key in keys)
        {
            if (LdmBuffers.Contains(key) || key.StartsWith("model_ema.", StringComparison.Ordinal)) continue;
            if (key.StartsWith(UNetPrefix, StringComparison.Ordinal))
            {
                var target = UNetKey(key[UNetPrefix.Length..], lpb);
                if (target is null || !unet.TryAdd(target, new WeightSource(f, key))) unexpected.Add(key);
            }
            else if (key.StartsWith(VaePrefix, StringComparison.Ordinal))
            {
                var target = VaeKey(key[VaePrefix.Length..], decoderLevels);
                bool squeeze = target is not null && target.Contains(".attentions.", StringComparison.Ordinal) && f.Entries[key].Shape.Length == 4;
                if (target is null || !vae.TryAdd(target, new WeightSource(f, key, squeeze))) unexpected.Add(key);
            }
            else if (key.StartsWith(TextPrefix, StringComparison.Ordinal))
            {
                var rest = key[TextPrefix.Length..];
                if (rest.EndsWith("embeddings.position_ids", StringComparison.Ordinal)) continue;
                var target = rest.StartsWith("text_model.", StringComparison.Ordinal) ? rest : "text_model." + rest;
                if (!text.TryAdd(target, new WeightSource(f, key))) unexpected.Add(key);
            }
            else unexpected.Add(key);
        }
        return (unet, vae, text, unexpected);
    }

    private static int UNetLayersPerBlock(List<string> keys)
    {
        // input_blocks 1 .. lpb are the first level's resnets; lpb + 1 is its downsampler (…0.op.weight).
        for (int k = 1; k < 64; k++)
            if (keys.Contains($"{UNetPrefix}input_blocks.{k}.0.op.weight")) return k - 1;
        int resnets = 0;
        for (int k = 1; k < 64; k++) if (keys.Contains($"{UNetPrefix}input_blocks.{k}.0.in_layers.0.weight")) resnets = k;
        return Math.Max(1, resnets);
    }

    private static string ResnetKey(string rest) => rest
        .Replace("in_layers.0.", "norm1.").Replace("in_layers.2.", "conv1.").Replace("emb_layers.1.", "time_emb_proj.")
        .Replace("out_layers.0.", "norm2.").Replace("out_layers.3.", "conv2.").Replace("skip_connection.", "conv_shortcut.");

    /// <summary>An original UNet key (without model.diffusion_model.) as diffusers', or null.</summary>
    public static string? UNetKey(string k, int lpb)
    {
        if (k.StartsWith("time_embed.0.", StringComparison.Ordinal)) return "time_embedding.linear_1." + k[13..];
        if (k.StartsWith("time_embed.2.", StringComparison.Ordinal)) return "time_embedding.linear_2." + k[13..];
        if (k.StartsWith("input_blocks.0.0.", StringComparison.Ordinal)) return "conv_in." + k[17..];
        if (k.StartsWith("out.0.", StringComparison.Ordinal)) return "conv_norm_out." + k[6..];
        if (k.StartsWith("out.2.", StringComparison.Ordinal)) return "conv_out." + k[6..];
        var mid = MiddleKey().Match(k);
        if (mid.Success)
            return mid.Groups[1].Value switch
            {
                "0" => "mid_block.resnets.0." + ResnetKey(mid.Groups[2].Value),
                "1" => "mid_block.attentions.0." + mid.Groups[2].Value,
                "2" => "mid_block.resnets.1." + ResnetKey(mid.Groups[2].Value),
                _ => null,
            };
        var m = BlockKey().Match(k);
        if (!m.Success) return null;
        string kind = m.Groups[1].Value, rest = m.Groups[4].Value;
        int index = int.Parse(m.Groups[2].Value, System.Globalization.CultureInfo.InvariantCulture), sub = int.Parse(m.Groups[3].Value, System.Globalization.CultureInfo.InvariantCulture);
        switch (kind)
        {
            case "input_blocks":
            {
                int block = (index - 1) / (lpb + 1), layer = (index - 1) % (lpb + 1);
                if (layer < lpb) return sub switch { 0 => $"down_blocks.{block}.resnets.{layer}." + ResnetKey(rest), 1 => $"down_blocks.{block}.attentions.{layer}." + rest, _ => null };
                return sub == 0 && rest.StartsWith("op.", StringComparison.Ordinal) ? $"down_blocks.{block}.downsamplers.0.conv." + rest[3..] : null;
            }
            default:
            {
                int block = index / (lpb + 1), layer = index % (lpb + 1);
                if (sub == 0) return $"up_blocks.{block}.resnets.{layer}." + ResnetKey(rest);
                if (rest.StartsWith("conv.", StringComparison.Ordinal)) return $"up_blocks.{block}.upsamplers.0.conv." + rest[5..];
                return sub == 1 ? $"up_blocks.{block}.attentions.{layer}." + rest : null;
            }
        }
    }

    /// <summary>An original VAE key (without first_stage_model.) as diffusers', or null.</summary>
    public static string? VaeKey(string k, int decoderLevels)
    {
        if (k.StartsWith("quant_conv.", StringComparison.Ordinal) || k.StartsWith("post_quant_conv.", StringComparison.Ordinal)) return k;
        var parts = k.Split('.');
        if (parts.Length < 3 || parts[0] is not ("encoder" or "decoder")) return null;
        string side = parts[0], rest2 = string.Join('.', parts.Skip(2));
        switch (parts[1])
        {
            case "conv_in" or "conv_out": return k;
            case "norm_out": return $"{side}.conv_norm_out.{rest2}";
            case "mid" when parts.Length >= 4:
            {
                string tail = string.Join('.', parts.Skip(3));
                return parts[2] switch
                {
                    "block_1" => $"{side}.mid_block.resnets.0.{tail.Replace("nin_shortcut.", "conv_shortcut.")}",
                    "block_2" => $"{side}.mid_block.resnets.1.{tail.Replace("nin_shortcut.", "conv_shortcut.")}",
                    "attn_1" => parts[3] switch
                    {
                        "norm" => $"{side}.mid_block.attentions.0.group_norm.{string.Join('.', parts.Skip(4))}",
                        "q" => $"{side}.mid_block.attentions.0.to_q.{string.Join('.', parts.Skip(4))}",
                        "k" => $"{side}.mid_block.attentions.0.to_k.{string.Join('.', parts.Skip(4))}",
                        "v" => $"{side}.mid_block.attentions.0.to_v.{string.Join('.', parts.Skip(4))}",
                        "proj_out" => $"{side}.mid_block.attentions.0.to_out.0.{string.Join('.', parts.Skip(4))}",
                        _ => null,
                    },
                    _ => null,
                };
            }
            case "down" or "up" when parts.Length >= 5 && int.TryParse(parts[2], out int level):
            {
                int block = side == "decoder" ? decoderLevels - 1 - level : level;
                string group = side == "decoder" ? "up_blocks" : "down_blocks";
                if (parts[3] == "block" && int.TryParse(parts[4], out int j))
                    return $"{side}.{group}.{block}.resnets.{j}.{string.Join('.', parts.Skip(5)).Replace("nin_shortcut.", "conv_shortcut.")}";
                if (parts[3] is "downsample" or "upsample" && parts[4] == "conv")
                    return $"{side}.{group}.{block}.{(side == "decoder" ? "upsamplers" : "downsamplers")}.0.conv.{string.Join('.', parts.Skip(5))}";
                return null;
            }
            default: return null;
        }
    }

    /// <summary>
    /// Copies the weights into the module, strictly: the error names every key the module needs that no file has, every
    /// key the files have that the module does not, and every shape that differs, with the file each came from.
    /// </summary>
    public static void LoadStrict(nn.Module module, IReadOnlyDictionary<string, WeightSource> weights, string what, IEnumerable<string>? extraUnexpected = null, string? extraFile = null)
    {
        var expected = module.state_dict();
        var problems = new List<string>();
        foreach (var (name, t) in expected)
        {
            if (!weights.TryGetValue(name, out var src)) problems.Add($"missing: {name} [{string.Join(", ", t.shape)}]");
            else if (!src.Shape.SequenceEqual(t.shape))
                problems.Add($"mis-shaped: {name} is [{string.Join(", ", src.Shape)}] in {src.File.Path} ('{src.Key}'), the model needs [{string.Join(", ", t.shape)}]");
        }
        foreach (var (name, src) in weights)
            if (!expected.ContainsKey(name)) problems.Add($"unexpected: {name} in {src.File.Path}" + (src.Key != name ? $" ('{src.Key}')" : ""));
        foreach (var key in extraUnexpected ?? []) problems.Add($"unexpected: {key} in {extraFile}");
        if (problems.Count > 0)
        {
            var files = string.Join(", ", weights.Values.Select(w => w.File.Path).Concat(extraFile is null ? [] : [extraFile]).Distinct());
            throw new WeightsException($"{what} ({files}) does not match its config: {problems.Count} key(s) at fault:\n  " + string.Join("\n  ", problems));
        }
        using var _ = no_grad();
        foreach (var (name, t) in expected)
        {
            var src = weights[name];
            using var scope = NewDisposeScope();
            var value = src.File.ReadFloat32(src.Key);
            if (src.SqueezeConv) value = value.reshape(t.shape);
            t.copy_(value);
        }
    }

    [GeneratedRegex(@"^(input_blocks|output_blocks)\.(\d+)\.(\d+)\.(.*)$")]
    private static partial Regex BlockKey();

    [GeneratedRegex(@"^middle_block\.(\d+)\.(.*)$")]
    private static partial Regex MiddleKey();

    [GeneratedRegex(@"^(.*\.attentions\.\d+\.)(query|key|value|proj_attn)\.")]
    private static partial Regex OldVaeAttention();
}
