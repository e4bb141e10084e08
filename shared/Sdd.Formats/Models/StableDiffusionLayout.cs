using System.Text.Json;
using System.Text.RegularExpressions;

namespace Sdd.Formats.Models;

/// <summary>What an import takes from a folder of Stable Diffusion files: the layout, its one weights file for a single file, the files to copy.</summary>
public sealed record StableDiffusionImportPlan(string Layout, string? SingleFile, IReadOnlyList<string> Files, long Bytes)
{
    public const string Diffusers = "diffusers", SingleFileLayout = "single-file";
}

/// <summary>Where an import reads its files and what it takes: an imported teacher's SettingsJson (camelCase), written by the API, read by the distill worker.</summary>
public sealed record StableDiffusionImportSource(string Bucket, string Prefix, StableDiffusionImportPlan Plan)
{
    private static readonly JsonSerializerOptions Json = new(JsonSerializerDefaults.Web);

    public string ToJson() => JsonSerializer.Serialize(this, Json);

    public static StableDiffusionImportSource FromJson(string json)
    {
        try { return JsonSerializer.Deserialize<StableDiffusionImportSource>(json, Json) ?? throw new FormatException("the import's settings are null"); }
        catch (JsonException e) { throw new FormatException($"the import's settings cannot be read: {e.Message}", e); }
    }
}

/// <summary>
/// The file layouts of Stable Diffusion weights a user brings, checked by name and size before a byte is read (the API's
/// check at import and the distill worker's before it loads them): a diffusers folder (model_index.json, unet/, vae/,
/// text_encoder/ with .safetensors weights, tokenizer/, scheduler/), or one original .safetensors checkpoint with a
/// tokenizer/ beside it (and optionally the components' config.json). Pickle weights (.ckpt, .bin, .pt) are never read:
/// a component that has only those is refused with <see cref="PickleMessage"/>; beside safetensors they are skipped, as are
/// the parts SDD does not use (safety_checker/, feature_extractor/, READMEs).
/// </summary>
public static partial class StableDiffusionLayout
{
    public const int MaxFiles = 256;
    public const long MaxSmallFileBytes = 64L << 20;
    public const long DefaultMaxBytes = 16L << 30;
    private static readonly string[] Pickles = [".ckpt", ".bin", ".pt", ".pth", ".pkl", ".pickle"];
    private static readonly (string Folder, string Weights, string Config)[] Components =
        [("unet", "diffusion_pytorch_model", "config.json"), ("vae", "diffusion_pytorch_model", "config.json"), ("text_encoder", "model", "config.json")];
    private static readonly string[] TokenizerFiles = ["vocab.json", "merges.txt", "special_tokens_map.json", "tokenizer_config.json"];

    public static bool IsPickle(string path) => Pickles.Contains(Path.GetExtension(path).ToLowerInvariant());

    /// <summary>Why a pickle checkpoint is refused and how to convert it.</summary>
    public static string PickleMessage(string path) =>
        $"{path}: a pickle checkpoint (.ckpt, .bin, .pt): loading one can run arbitrary code, so SDD never reads them. " +
        "Convert it to safetensors first (diffusers: pipe.save_pretrained(dir, safe_serialization=True); one file: " +
        "safetensors.torch.save_file(torch.load(path, weights_only=True)[\"state_dict\"], \"model.safetensors\")) and pass the .safetensors.";

    /// <summary>
    /// The plan for the files (paths relative to the folder, with their sizes), or the reason they are not an SD pipeline
    /// SDD reads. <paramref name="maxBytes"/> bounds what is copied.
    /// </summary>
    public static (StableDiffusionImportPlan? Plan, string? Problem) Plan(IReadOnlyCollection<(string Path, long Size)> files, long maxBytes = DefaultMaxBytes)
    {
        if (files.Count == 0) return (null, "There are no files there.");
        if (files.Count > MaxFiles) return (null, $"{files.Count} files: a Stable Diffusion folder has fewer than {MaxFiles}.");
        var sizes = new Dictionary<string, long>(StringComparer.Ordinal);
        foreach (var (path, size) in files)
        {
            if (!SafePath().IsMatch(path) || path.Split('/').Any(p => p is "" or "." or ".."))
                return (null, $"'{path}': file names are letters, digits, '.', '_', '-' and '/'.");
            sizes[path] = size;
        }
        var chosen = new List<string>();
        string? Need(string path, bool small = true)
        {
            if (!sizes.TryGetValue(path, out var size)) return $"{path} is missing.";
            if (small && size > MaxSmallFileBytes) return $"{path} is {size} bytes; at most {MaxSmallFileBytes >> 20} MiB.";
            chosen.Add(path);
            return null;
        }
        void Optional(string path) { if (sizes.TryGetValue(path, out var size) && size <= MaxSmallFileBytes) chosen.Add(path); }
        string? Tokenizer() => Need("tokenizer/vocab.json") ?? Need("tokenizer/merges.txt")
            ?? Pass(() => { foreach (var f in TokenizerFiles.Skip(2)) Optional("tokenizer/" + f); });

        string layout;
        string? single = null;
        if (sizes.ContainsKey("model_index.json"))
        {
            layout = StableDiffusionImportPlan.Diffusers;
            if ((Need("model_index.json") ?? Need("scheduler/scheduler_config.json") ?? Tokenizer()) is { } problem) return (null, problem);
            foreach (var (folder, weights, config) in Components)
            {
                if (Need($"{folder}/{config}") is { } missing) return (null, missing);
                if (ComponentWeights(sizes, folder, weights) is not { } picked)
                {
                    var pickle = sizes.Keys.FirstOrDefault(k => k.StartsWith(folder + "/", StringComparison.Ordinal) && IsPickle(k));
                    return (null, pickle is not null ? PickleMessage(pickle)
                        : $"{folder}/ has no {weights}.safetensors, {weights}.fp16.safetensors or {weights}.safetensors.index.json.");
                }
                chosen.AddRange(picked);
            }
        }
        else
        {
            layout = StableDiffusionImportPlan.SingleFileLayout;
            var top = sizes.Keys.Where(k => !k.Contains('/')).ToList();
            var weights = top.Where(k => k.EndsWith(".safetensors", StringComparison.OrdinalIgnoreCase)).ToList();
            if (weights.Count == 0)
                return (null, top.FirstOrDefault(IsPickle) is { } pickle ? PickleMessage(pickle)
                    : "Neither a diffusers folder (model_index.json) nor one original checkpoint (a .safetensors file at the top).");
            if (weights.Count > 1) return (null, $"{weights.Count} .safetensors files at the top ({string.Join(", ", weights.Take(4))}): one original checkpoint is read.");
            single = weights[0];
            chosen.Add(single);
            if (Tokenizer() is { } problem)
                return (null, $"{problem} A single-file checkpoint carries no tokenizer: put the tokenizer/ of a diffusers folder of the same model beside it.");
            foreach (var (folder, _, config) in Components) Optional($"{folder}/{config}");
            Optional("scheduler/scheduler_config.json");
        }
        long bytes = chosen.Sum(p => sizes[p]);
        if (bytes > maxBytes) return (null, $"{bytes} bytes of weights and configs; this deployment imports at most {maxBytes} (SDD_TEACHER_IMPORT_MAX_BYTES).");
        return (new StableDiffusionImportPlan(layout, single, chosen.Distinct().Order(StringComparer.Ordinal).ToList(), bytes), null);
    }

    private static string? Pass(Action a) { a(); return null; }

    /// <summary>A component's weights as the loader reads them: the full-precision file, else the fp16 variant, else the shards of an index.</summary>
    private static List<string>? ComponentWeights(Dictionary<string, long> sizes, string folder, string weights)
    {
        foreach (var variant in new[] { "", ".fp16" })
        {
            if (sizes.ContainsKey($"{folder}/{weights}{variant}.safetensors")) return [$"{folder}/{weights}{variant}.safetensors"];
            foreach (var index in new[] { $"{folder}/{weights}.safetensors.index{variant}.json", $"{folder}/{weights}{variant}.safetensors.index.json" })
                if (sizes.ContainsKey(index))
                {
                    // The shards are named inside the index; without reading it, every .safetensors file of the folder goes with it.
                    return [index, .. sizes.Keys.Where(k => k.StartsWith(folder + "/", StringComparison.Ordinal) && !k[(folder.Length + 1)..].Contains('/')
                        && k.EndsWith(".safetensors", StringComparison.Ordinal))];
                }
        }
        return null;
    }

    [GeneratedRegex(@"^[A-Za-z0-9._/-]{1,300}$")]
    private static partial Regex SafePath();
}
