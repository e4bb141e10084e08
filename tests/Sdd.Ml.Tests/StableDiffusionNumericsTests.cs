using System.Text;
using Sdd.Ml.StableDiffusion;

namespace Sdd.Ml.Tests;

/// <summary>
/// The SD modules' numerics against values computed here by hand (timestep features, attention, the schedule), their
/// properties (causality of the text encoder, linear vs conv projections), SD 1.5's exact parameter counts, and the
/// CLIP tokenizer on OpenAI's published vocabulary.
/// </summary>
[Collection(TorchCollection.Name)]
public sealed class StableDiffusionNumericsTests
{
    private static double RelativeError(Tensor expected, Tensor actual) =>
        (expected.to_type(ScalarType.Float64) - actual.to_type(ScalarType.Float64)).abs().max().item<double>() / expected.abs().max().to_type(ScalarType.Float64).item<double>();

    [Fact]
    public void Timestep_features_are_diffusers_sinusoids_computed_by_hand()
    {
        var ts = new long[] { 0, 1, 500, 999 };
        foreach (var (flip, shift) in new[] { (true, 0), (false, 1) })
        {
            var f = SdOps.TimestepFeatures(tensor(ts), 8, flip, shift);
            Assert.Equal([4, 8], f.shape);
            for (int r = 0; r < ts.Length; r++)
                for (int i = 0; i < 4; i++)
                {
                    double freq = Math.Exp(-Math.Log(10000) * i / (4 - shift)), arg = ts[r] * freq;
                    double first = flip ? Math.Cos(arg) : Math.Sin(arg), second = flip ? Math.Sin(arg) : Math.Cos(arg);
                    Assert.Equal(first, f[r, i].item<float>(), 3e-4);
                    Assert.Equal(second, f[r, 4 + i].item<float>(), 3e-4);
                }
        }
        Assert.Equal([2, 7], SdOps.TimestepFeatures(tensor(new long[] { 3, 4 }), 7, true, 0).shape);
    }

    private static Tensor ManualAttention(Tensor q, Tensor k, Tensor v, int heads, bool causal)
    {
        long d = q.shape[2] / heads;
        var outs = new List<Tensor>();
        for (int h = 0; h < heads; h++)
        {
            var (qh, kh, vh) = (q[.., .., (int)(h * d)..(int)((h + 1) * d)], k[.., .., (int)(h * d)..(int)((h + 1) * d)], v[.., .., (int)(h * d)..(int)((h + 1) * d)]);
            var scores = qh.to_type(ScalarType.Float64).matmul(kh.to_type(ScalarType.Float64).transpose(1, 2)) / Math.Sqrt(d);
            if (causal) scores = scores.masked_fill(ones(scores.shape[1], scores.shape[2], dtype: ScalarType.Bool).triu(1), double.NegativeInfinity);
            outs.Add(scores.softmax(-1).matmul(vh.to_type(ScalarType.Float64)));
        }
        return cat(outs, -1);
    }

    [Fact]
    public void Attention_is_softmax_of_scaled_dot_products_per_head_causal_when_asked()
    {
        var g = new Generator(51);
        var q = randn([2, 5, 12], generator: g);
        var k = randn([2, 7, 12], generator: g);
        var v = randn([2, 7, 12], generator: g);
        Assert.True(RelativeError(ManualAttention(q, k, v, 3, false), SdOps.Attend(q, k, v, 3)) < 1e-5);
        var kc = randn([2, 5, 12], generator: g);
        var vc = randn([2, 5, 12], generator: g);
        var causal = SdOps.Attend(q, kc, vc, 2, causal: true);
        Assert.True(RelativeError(ManualAttention(q, kc, vc, 2, true), causal) < 1e-5);
        // The first position attends to itself only.
        Assert.True(RelativeError(vc[.., 0], causal[.., 0]) < 1e-5);
    }

    [Fact]
    public void The_scaled_linear_schedule_runs_from_beta_0_00085_to_0_012_as_diffusers_computes_it()
    {
        var ab = new SdScheduleConfig().ToNoiseSchedule().AlphaBars;
        Assert.Equal(1000, ab.Length);
        double product = 1;
        for (int t = 0; t < 1000; t++)
        {
            // diffusers: betas = torch.linspace(beta_start ** 0.5, beta_end ** 0.5, T) ** 2; alphas_cumprod = cumprod(1 - betas).
            double s = Math.Sqrt(0.00085) + t * (Math.Sqrt(0.012) - Math.Sqrt(0.00085)) / 999;
            product *= 1 - s * s;
            Assert.Equal(product, ab[t], 1e-12);
        }
        Assert.Equal(1 - 0.00085, ab[0], 1e-12);
        Assert.Equal(0.012, 1 - ab[999] / ab[998], 1e-12);
        Assert.InRange(ab[999], 0.0045, 0.0048); // SD 1.x's final ᾱ, 0.0047
        var linear = new SdScheduleConfig { BetaSchedule = "linear", BetaStart = 1e-4, BetaEnd = 0.02 }.ToNoiseSchedule();
        Assert.Equal(ScheduleKind.Linear, linear.Kind);
        Assert.Equal(0.02, linear.Betas[999], 1e-12);
    }

    [Fact]
    public void The_text_encoder_is_causal_each_position_sees_only_the_tokens_before_it()
    {
        random.manual_seed(53);
        using var text = new ClipTextModel(new ClipTextConfig { VocabSize = 100, HiddenSize = 32, IntermediateSize = 37, Layers = 3, Heads = 4, MaxPositions = 77 });
        Tiny.Perturb(text, 53);
        using var _ = no_grad();
        var a = randint(0, 100, [1, 77], generator: new Generator(55));
        var b = a.clone();
        b[0, 9] = (a[0, 9] + 1) % 100;
        var (ha, hb) = (text.forward(a), text.forward(b));
        Assert.True((ha[.., ..9] - hb[.., ..9]).abs().max().item<float>() < 1e-6);
        Assert.True((ha[.., 9..] - hb[.., 9..]).abs().amax([0, 2]).min().item<float>() > 1e-4);
        // The final layer norm: every position has mean ≈ bias mean and the model's hidden width.
        Assert.Equal([1, 77, 32], ha.shape);
        Assert.Throws<ArgumentException>(() => text.forward(full([1, 78], 1L)));
        Assert.Throws<ArgumentException>(() => text.forward(full([1, 5], 100L)));
    }

    [Fact]
    public void A_linear_projection_UNet_computes_what_the_conv_one_does_with_the_same_weights()
    {
        random.manual_seed(57);
        var conv = new UNetConditionConfig { BlockOutChannels = [32, 64], DownCrossAttention = [false, true], UpCrossAttention = [true, false], CrossAttentionDim = 32, Heads = [2, 4] };
        using var a = new UNet2DCondition(conv);
        using var b = new UNet2DCondition(conv with { UseLinearProjection = true });
        Tiny.Perturb(a, 57);
        using var _ = no_grad();
        var target = b.state_dict();
        int reshaped = 0;
        foreach (var (name, t) in a.state_dict())
        {
            var dst = target[name];
            if (!dst.shape.SequenceEqual(t.shape)) { reshaped++; dst.copy_(t.reshape(dst.shape)); }
            else dst.copy_(t);
        }
        Assert.Equal(6 * 2, reshaped); // proj_in and proj_out of the 2 down, 1 mid and 3 up transformers
        a.eval();
        b.eval();
        var g = new Generator(59);
        var x = randn([2, 4, 8, 8], generator: g);
        var ctx = randn([2, 77, 32], generator: g);
        var (ya, yb) = (a.Forward(x, tensor(300L), ctx), b.Forward(x, tensor(300L), ctx));
        Assert.True(RelativeError(ya, yb) < 1e-5);
        Assert.True(ya.std().item<float>() > 1e-3f);
        // Cross-attention is real: another context changes the output.
        Assert.True(RelativeError(ya, a.Forward(x, tensor(300L), randn([2, 77, 32], generator: g))) > 1e-4);
        // So is the time embedding.
        Assert.True(RelativeError(ya, a.Forward(x, tensor(301L), ctx)) > 1e-6);
    }

    [Fact]
    public void SD_1_5_sized_modules_have_exactly_its_parameter_and_key_counts()
    {
        static (long Params, int Keys) Count(nn.Module m) => (m.parameters().Sum(p => p.numel()), m.state_dict().Count);
        using (var unet = new UNet2DCondition(new UNetConditionConfig()))
            Assert.Equal((859_520_964L, 686), Count(unet));
        using (var vae = new Sdd.Ml.Diffusion.AutoencoderKL(new AutoencoderConfig
        {
            BlockOutChannels = [128, 256, 512, 512], DownBlockTypes = [.. Enumerable.Repeat(AutoencoderConfig.DownBlock, 4)],
            UpBlockTypes = [.. Enumerable.Repeat(AutoencoderConfig.UpBlock, 4)], LayersPerBlock = 2, NormNumGroups = 32,
        }))
            Assert.Equal((83_653_863L, 248), Count(vae));
        using (var text = new ClipTextModel(new ClipTextConfig()))
            Assert.Equal((123_060_480L, 196), Count(text));
    }

    private static ClipTokenizer? OpenAi(out Dictionary<string, int> vocab)
    {
        vocab = [];
        var merges = SdFixtures.OpenAiMerges();
        if (merges is null) return null;
        vocab = SdFixtures.Vocabulary(merges);
        return new ClipTokenizer(vocab, merges);
    }

    [Fact]
    public void The_byte_symbols_are_GPT_2s_in_vocabulary_order()
    {
        Assert.Equal(SdFixtures.GptByteSymbols(), ClipTokenizer.ByteSymbolsInVocabularyOrder());
        Assert.Equal("!", ClipTokenizer.ByteSymbolsInVocabularyOrder()[0]);
        Assert.Equal("Ā", ClipTokenizer.ByteSymbolsInVocabularyOrder()[188]); // byte 0
    }

    [Fact]
    public void On_OpenAIs_vocabulary_prompts_tokenize_to_CLIPs_ids()
    {
        var tok = OpenAi(out var v);
        if (tok is null) { Assert.Fail("../shared/data/clip/bpe_simple_vocab_16e6.txt.gz not found beside the checkout"); return; }
        Assert.Equal(49408, v.Count);
        Assert.Equal(49406, tok.BosId);
        Assert.Equal(49407, tok.EosId);
        Assert.Equal(49407, tok.PadId);
        var ids = tok.Encode("a photo of a cat");
        Assert.Equal(new long[] { 49406, 320, 1125, 539, 320, 2368, 49407 }, ids[..7]);
        Assert.All(ids[7..], id => Assert.Equal(49407, id));
        // Case, runs of spaces, tabs and newlines, leading and trailing space are cleaned away.
        Assert.Equal(ids, tok.Encode("  A   PHOTO\tof\n\na Cat "));
        // Punctuation: each run of non-letters, non-digits is one piece.
        Assert.Equal([v["a</w>"], v["cat</w>"], v[",</w>"], v["dog</w>"], v["!!</w>"]], tok.Tokens("a cat, dog!!"));
        // Digits are single pieces: "1</w>" is 272.
        Assert.Equal([272, 273, 271, 275], tok.Tokens("1204"));
        // Apostrophes: 's, 't, 're, 've, 'm, 'll, 'd split off.
        Assert.Equal([v["it</w>"], v["'s</w>"], v["don</w>"], v["'t</w>"], v["we</w>"], v["'re</w>"]], tok.Tokens("it's don't we're"));
        // HTML entities are unescaped twice (ftfy's rule): &amp;amp; is &.
        Assert.Equal(tok.Tokens("rock & roll"), tok.Tokens("rock &amp; roll"));
        Assert.Equal(tok.Tokens("rock & roll"), tok.Tokens("rock &amp;amp; roll"));
        // Unicode: NFC, so a combining accent equals the composed letter; every byte maps to a symbol and back.
        Assert.Equal(tok.Tokens("café"), tok.Tokens("cafe\u0301"));
        var inverse = v.ToDictionary(kv => kv.Value, kv => kv.Key);
        var bytes = SdFixtures.SymbolBytes();
        foreach (var text in new[] { "café", "🙂", "naïve", "東京" })
        {
            var symbols = string.Concat(tok.Tokens(text).Select(id => inverse[id])).Replace("</w>", "");
            var decoded = symbols.EnumerateRunes().Select(r => bytes[r.ToString()]).ToArray();
            Assert.Equal(Encoding.UTF8.GetBytes(text.Normalize(NormalizationForm.FormC)), decoded);
        }
        // The special tokens in text are the special ids.
        Assert.Equal([320, 49407, 320], tok.Tokens("a <|endoftext|> a"));
    }

    [Fact]
    public void Prompts_are_truncated_to_75_tokens_and_padded_to_77()
    {
        var tok = OpenAi(out _);
        if (tok is null) { Assert.Fail("../shared/data/clip/bpe_simple_vocab_16e6.txt.gz not found beside the checkout"); return; }
        var empty = tok.Encode("");
        Assert.Equal(49406, empty[0]);
        Assert.All(empty[1..], id => Assert.Equal(49407, id));
        string Words(int n) => string.Join(' ', Enumerable.Repeat("cat", n));
        var exact = tok.Encode(Words(75));
        Assert.Equal(77, exact.Length);
        Assert.All(exact[1..76], id => Assert.Equal(2368, id));
        Assert.Equal(49407, exact[76]);
        var longer = tok.Encode(Words(100));
        Assert.Equal(exact, longer);
        var shorter = tok.Encode(Words(74));
        Assert.Equal(2368, shorter[74]);
        Assert.Equal(49407, shorter[75]);
        Assert.Equal(49407, shorter[76]);
    }

    [Fact]
    public void A_pad_token_named_in_special_tokens_map_pads_SD_2_style()
    {
        var merges = SdFixtures.OpenAiMerges();
        if (merges is null) { Assert.Fail("../shared/data/clip/bpe_simple_vocab_16e6.txt.gz not found beside the checkout"); return; }
        using var dir = new TempDir();
        SdFixtures.WriteTokenizer(dir.Path, merges, pad: "!");
        var tok = ClipTokenizer.FromFolder(dir.Path);
        var ids = tok.Encode("a photo of a cat");
        Assert.Equal(new long[] { 49406, 320, 1125, 539, 320, 2368, 49407, 0, 0 }, ids[..9]);
        Assert.All(ids[7..], id => Assert.Equal(0, id));
        File.WriteAllText(System.IO.Path.Combine(dir.Path, "merges.txt"), "#version: 0.2\na b c\n");
        Assert.Contains("not a pair", Assert.Throws<WeightsException>(() => ClipTokenizer.FromFolder(dir.Path)).Message);
    }
}
