using System.Net;
using System.Text;
using System.Text.Json;
using System.Text.RegularExpressions;

namespace Sdd.Ml.StableDiffusion;

/// <summary>
/// CLIP's byte-level BPE tokenizer, read from a Stable Diffusion <c>tokenizer/</c> folder (vocab.json, merges.txt,
/// special_tokens_map.json). The rules are OpenAI's: HTML entities unescaped twice, runs of whitespace to one space,
/// NFC-normalised, trimmed, lower-cased; split by CLIP's pattern; each piece's UTF-8 bytes mapped to GPT-2's printable byte symbols and
/// merged by rank, the last symbol carrying <c>&lt;/w&gt;</c>; then <c>&lt;|startoftext|&gt;</c>, at most
/// <c>max − 2</c> ids, <c>&lt;|endoftext|&gt;</c>, padded to <c>max</c> (77) with the pad token. Written here (about a
/// hundred lines) rather than on Microsoft.ML.Tokenizers' BPE: CLIP's cleaning, its split pattern, the byte map and
/// the end-of-word suffix would all have to be wrapped around that model anyway, and this way every rule is in one
/// place and tested against OpenAI's published vocabulary. ftfy's mojibake repair is not reproduced (it changes
/// only text that was already mis-decoded).
/// </summary>
public sealed partial class ClipTokenizer
{
    public const string StartOfText = "<|startoftext|>";
    public const string EndOfText = "<|endoftext|>";
    public const long MaxVocabularyBytes = 64L << 20;

    private readonly Dictionary<string, int> vocab;
    private readonly Dictionary<(string, string), int> ranks;
    private readonly Dictionary<string, string[]> cache = new(StringComparer.Ordinal);
    private static readonly string[] ByteSymbols = BuildByteSymbols();

    public int MaxLength { get; }
    public int BosId { get; }
    public int EosId { get; }
    public int PadId { get; }
    /// <summary>The id a symbol missing from the vocabulary becomes (transformers: the unk token, CLIP's &lt;|endoftext|&gt;).</summary>
    public int UnkId { get; }
    public int VocabularySize => vocab.Count;

    public ClipTokenizer(Dictionary<string, int> vocab, IEnumerable<(string, string)> merges, string padToken = EndOfText, int maxLength = 77,
        string bosToken = StartOfText, string eosToken = EndOfText, string unkToken = EndOfText)
    {
        this.vocab = vocab;
        ranks = new Dictionary<(string, string), int>();
        int r = 0;
        foreach (var m in merges) ranks.TryAdd(m, r++);
        MaxLength = maxLength;
        BosId = Id(bosToken);
        EosId = Id(eosToken);
        PadId = Id(padToken);
        UnkId = Id(unkToken);
    }

    private int Id(string token) => vocab.TryGetValue(token, out int id) ? id : throw new WeightsException($"the tokenizer's vocabulary has no '{token}'");

    /// <summary>Reads vocab.json, merges.txt and, when present, special_tokens_map.json / tokenizer_config.json.</summary>
    public static ClipTokenizer FromFolder(string dir)
    {
        string vocabPath = Path.Combine(dir, "vocab.json"), mergesPath = Path.Combine(dir, "merges.txt");
        foreach (var p in new[] { vocabPath, mergesPath })
        {
            if (!File.Exists(p)) throw new WeightsException($"{p}: missing (a CLIP tokenizer folder holds vocab.json and merges.txt)");
            if (new FileInfo(p).Length > MaxVocabularyBytes) throw new WeightsException($"{p}: over {MaxVocabularyBytes >> 20} MiB");
        }
        Dictionary<string, int> vocab;
        try { vocab = JsonSerializer.Deserialize<Dictionary<string, int>>(File.ReadAllBytes(vocabPath)) ?? []; }
        catch (JsonException e) { throw new WeightsException($"{vocabPath}: not a JSON object of token → id ({e.Message})"); }
        var merges = new List<(string, string)>();
        foreach (var line in File.ReadLines(mergesPath))
        {
            if (line.StartsWith("#version", StringComparison.Ordinal) || line.Length == 0) continue;
            var parts = line.Split(' ');
            if (parts.Length != 2) throw new WeightsException($"{mergesPath}: line '{line}' is not a pair");
            merges.Add((parts[0], parts[1]));
        }
        // The special tokens as transformers reads them: tokenizer_config.json, then special_tokens_map.json over it.
        var special = new Dictionary<string, string> { ["bos_token"] = StartOfText, ["eos_token"] = EndOfText, ["unk_token"] = EndOfText, ["pad_token"] = EndOfText };
        int maxLength = 77;
        foreach (var name in new[] { "tokenizer_config.json", "special_tokens_map.json" })
        {
            var p = Path.Combine(dir, name);
            if (!File.Exists(p) || new FileInfo(p).Length > 1 << 20) continue;
            try
            {
                using var doc = JsonDocument.Parse(File.ReadAllBytes(p));
                if (doc.RootElement.ValueKind != JsonValueKind.Object) continue;
                foreach (var key in special.Keys.ToList())
                    if (doc.RootElement.TryGetProperty(key, out var v))
                        special[key] = v.ValueKind == JsonValueKind.String ? v.GetString()!
                            : v.ValueKind == JsonValueKind.Object && v.TryGetProperty("content", out var c) && c.ValueKind == JsonValueKind.String ? c.GetString()! : special[key];
                if (doc.RootElement.TryGetProperty("model_max_length", out var ml) && ml.ValueKind == JsonValueKind.Number && ml.TryGetInt64(out long mll) && mll is > 2 and <= 4096) maxLength = (int)mll;
            }
            catch (JsonException e) { throw new WeightsException($"{p}: not JSON ({e.Message})"); }
        }
        return new ClipTokenizer(vocab, merges, special["pad_token"], maxLength, special["bos_token"], special["eos_token"], special["unk_token"]);
    }

    /// <summary>The cleaned, lower-cased text CLIP splits.</summary>
    public static string Clean(string text)
    {
        text = WebUtility.HtmlDecode(WebUtility.HtmlDecode(text)).Normalize(NormalizationForm.FormC);
        return Whitespace().Replace(text, " ").Trim().ToLowerInvariant();
    }

    /// <summary>The ids of the text's tokens, without start, end or padding.</summary>
    public List<int> Tokens(string text)
    {
        var ids = new List<int>();
        foreach (Match m in Pieces().Matches(Clean(text)))
        {
            if (m.Value is StartOfText or EndOfText) { ids.Add(vocab.TryGetValue(m.Value, out int special) ? special : UnkId); continue; }
            var sb = new StringBuilder();
            foreach (var b in Encoding.UTF8.GetBytes(m.Value)) sb.Append(ByteSymbols[b]);
            foreach (var symbol in Bpe(sb.ToString()))
                ids.Add(vocab.TryGetValue(symbol, out int id) ? id : UnkId); // every byte symbol is in CLIP's own vocabulary; a small one may lack some
        }
        return ids;
    }

    /// <summary>Stable Diffusion's prompt ids: start, at most MaxLength − 2 tokens, end, padding to MaxLength.</summary>
    public long[] Encode(string text)
    {
        var tokens = Tokens(text);
        var ids = new long[MaxLength];
        ids[0] = BosId;
        int n = Math.Min(tokens.Count, MaxLength - 2);
        for (int i = 0; i < n; i++) ids[i + 1] = tokens[i];
        ids[n + 1] = EosId;
        for (int i = n + 2; i < MaxLength; i++) ids[i] = PadId;
        return ids;
    }

    private string[] Bpe(string token)
    {
        if (cache.TryGetValue(token, out var hit)) return hit;
        var word = new List<string>(token.Length);
        for (int i = 0; i < token.Length - 1; i++) word.Add(token[i].ToString());
        word.Add(token[^1] + "</w>");
        while (word.Count > 1)
        {
            int best = int.MaxValue;
            (string, string) pair = default;
            for (int i = 0; i < word.Count - 1; i++)
                if (ranks.TryGetValue((word[i], word[i + 1]), out int r) && r < best) { best = r; pair = (word[i], word[i + 1]); }
            if (best == int.MaxValue) break;
            var merged = new List<string>(word.Count);
            for (int i = 0; i < word.Count; i++)
            {
                if (i < word.Count - 1 && word[i] == pair.Item1 && word[i + 1] == pair.Item2) { merged.Add(pair.Item1 + pair.Item2); i++; }
                else merged.Add(word[i]);
            }
            word = merged;
        }
        var result = word.ToArray();
        if (cache.Count < 100_000) cache[token] = result;
        return result;
    }

    /// <summary>GPT-2's map of the 256 bytes to printable characters; its order is also the vocabulary's first 256 ids.</summary>
    public static IReadOnlyList<string> ByteSymbolsInVocabularyOrder()
    {
        var bs = PrintableBytes();
        var order = new List<int>(bs);
        for (int b = 0; b < 256; b++) if (!bs.Contains(b)) order.Add(b);
        return order.Select(b => ByteSymbols[b]).ToList();
    }

    private static List<int> PrintableBytes()
    {
        var bs = new List<int>();
        for (int b = '!'; b <= '~'; b++) bs.Add(b);
        for (int b = 0xA1; b <= 0xAC; b++) bs.Add(b);
        for (int b = 0xAE; b <= 0xFF; b++) bs.Add(b);
        return bs;
    }

    private static string[] BuildByteSymbols()
    {
        var bs = PrintableBytes();
        var map = new string[256];
        foreach (var b in bs) map[b] = ((char)b).ToString();
        int n = 0;
        for (int b = 0; b < 256; b++) if (map[b] is null) map[b] = ((char)(256 + n++)).ToString();
        return map;
    }

    [GeneratedRegex(@"\s+")]
    private static partial Regex Whitespace();

    [GeneratedRegex(@"<\|startoftext\|>|<\|endoftext\|>|'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+", RegexOptions.IgnoreCase)]
    private static partial Regex Pieces();
}
