using Sdd.Ml.Torch;

namespace Sdd.Ml.StableDiffusion;

// The modules of Stable Diffusion 1.x / 2.x, built to compute what diffusers' UNet2DConditionModel and AutoencoderKL
// and transformers' CLIPTextModel compute. Field names are part of the weight format: a module's state-dict keys are
// exactly diffusers' (down_blocks.1.attentions.0.transformer_blocks.0.attn2.to_k.weight), so a diffusers folder loads
// with no renaming and the original single-file layout is renamed once, in SdCheckpoint.
#pragma warning disable IDE1006 // snake_case fields: they are the weight files' key names

public static class SdOps
{
    /// <summary>Multi-head scaled dot-product attention on (B, L, heads·d) projections.</summary>
    public static Tensor Attend(Tensor q, Tensor k, Tensor v, int heads, bool causal = false)
    {
        long b = q.shape[0], lq = q.shape[1], lk = k.shape[1], inner = q.shape[2];
        long d = inner / heads;
        var o = Attention.Scaled(
            q.view(b, lq, heads, d).transpose(1, 2), k.view(b, lk, heads, d).transpose(1, 2), v.view(b, lk, heads, d).transpose(1, 2),
            causal);
        return o.transpose(1, 2).reshape(b, lq, inner);
    }

    /// <summary>diffusers' get_timestep_embedding: exp(−ln(10000)·i / (half − shift)) frequencies, [sin, cos] or flipped.</summary>
    public static Tensor TimestepFeatures(Tensor timesteps, int dim, bool flipSinToCos, int freqShift)
    {
        int half = dim / 2;
        var exponent = arange(0, half, dtype: ScalarType.Float32, device: timesteps.device) * (float)(-Math.Log(10000.0));
        var freqs = (exponent / (half - freqShift)).exp();
        var args = timesteps.to_type(ScalarType.Float32).unsqueeze(1) * freqs.unsqueeze(0);
        var emb = flipSinToCos ? cat([args.cos(), args.sin()], -1) : cat([args.sin(), args.cos()], -1);
        return dim % 2 == 1 ? F.pad(emb, [0, 1]) : emb;
    }
}

/// <summary>diffusers' ResnetBlock2D (time_embedding_norm "default", output scale 1), with or without a time embedding.</summary>
public sealed class SdResnetBlock : nn.Module<Tensor, Tensor?, Tensor>
{
    private readonly GroupNorm norm1, norm2;
    private readonly Conv2d conv1, conv2;
    private readonly Linear? time_emb_proj;
    private readonly Conv2d? conv_shortcut;

    public SdResnetBlock(int inCh, int outCh, int? tembCh, int groups, double eps) : base(nameof(SdResnetBlock))
    {
        norm1 = Layers.GroupNorm(groups, inCh, eps);
        conv1 = nn.Conv2d(inCh, outCh, 3, padding: 1);
        time_emb_proj = tembCh is int t ? nn.Linear(t, outCh) : null;
        norm2 = Layers.GroupNorm(groups, outCh, eps);
        conv2 = nn.Conv2d(outCh, outCh, 3, padding: 1);
        conv_shortcut = inCh != outCh ? nn.Conv2d(inCh, outCh, 1) : null;
        RegisterComponents();
    }

    public override Tensor forward(Tensor x, Tensor? temb)
    {
        var h = conv1.forward(F.silu(norm1.forward(x)));
        if (time_emb_proj is not null && temb is not null) h = h + time_emb_proj.forward(F.silu(temb)).unsqueeze(-1).unsqueeze(-1);
        h = conv2.forward(F.silu(norm2.forward(h)));
        return (conv_shortcut is null ? x : conv_shortcut.forward(x)) + h;
    }
}

/// <summary>diffusers' Attention as the transformer blocks use it: no bias on q, k, v; to_out.0 with bias.</summary>
public sealed class SdAttention : nn.Module<Tensor, Tensor?, Tensor>
{
    private readonly Linear to_q, to_k, to_v;
    private readonly ModuleList<Linear> to_out;
    private readonly int heads;

    public SdAttention(int queryDim, int? contextDim, int heads, int headDim) : base(nameof(SdAttention))
    {
        this.heads = heads;
        int inner = heads * headDim;
        to_q = nn.Linear(queryDim, inner, hasBias: false);
        to_k = nn.Linear(contextDim ?? queryDim, inner, hasBias: false);
        to_v = nn.Linear(contextDim ?? queryDim, inner, hasBias: false);
        to_out = nn.ModuleList(nn.Linear(inner, queryDim));
        RegisterComponents();
    }

    public override Tensor forward(Tensor x, Tensor? context)
    {
        var c = context ?? x;
        return to_out[0].forward(SdOps.Attend(to_q.forward(x), to_k.forward(c), to_v.forward(c), heads));
    }
}

/// <summary>GEGLU: one projection to twice the width, the first half times GELU of the second.</summary>
public sealed class Geglu : nn.Module<Tensor, Tensor>
{
    private readonly Linear proj;

    public Geglu(int dim, int inner) : base(nameof(Geglu))
    {
        proj = nn.Linear(dim, 2 * inner);
        RegisterComponents();
    }

    public override Tensor forward(Tensor x)
    {
        var parts = proj.forward(x).chunk(2, -1);
        return parts[0] * F.gelu(parts[1]);
    }
}

/// <summary>diffusers' FeedForward with activation "geglu": net.0 (GEGLU), net.1 (dropout), net.2 (linear).</summary>
public sealed class SdFeedForward : nn.Module<Tensor, Tensor>
{
    private readonly ModuleList<nn.Module<Tensor, Tensor>> net;

    public SdFeedForward(int dim, int mult = 4) : base(nameof(SdFeedForward))
    {
        net = nn.ModuleList<nn.Module<Tensor, Tensor>>(new Geglu(dim, dim * mult), nn.Dropout(0.0), nn.Linear(dim * mult, dim));
        RegisterComponents();
    }

    public override Tensor forward(Tensor x) => net[2].forward(net[0].forward(x));
}

/// <summary>diffusers' BasicTransformerBlock: self-attention, cross-attention on the text, GEGLU feed-forward, pre-LN.</summary>
public sealed class BasicTransformerBlock : nn.Module<Tensor, Tensor, Tensor>
{
    private readonly LayerNorm norm1, norm2, norm3;
    private readonly SdAttention attn1, attn2;
    private readonly SdFeedForward ff;

    public BasicTransformerBlock(int dim, int heads, int headDim, int contextDim) : base(nameof(BasicTransformerBlock))
    {
        norm1 = nn.LayerNorm(dim, 1e-5);
        attn1 = new SdAttention(dim, null, heads, headDim);
        norm2 = nn.LayerNorm(dim, 1e-5);
        attn2 = new SdAttention(dim, contextDim, heads, headDim);
        norm3 = nn.LayerNorm(dim, 1e-5);
        ff = new SdFeedForward(dim);
        RegisterComponents();
    }

    public override Tensor forward(Tensor x, Tensor context)
    {
        x = attn1.forward(norm1.forward(x), null) + x;
        x = attn2.forward(norm2.forward(x), context) + x;
        return ff.forward(norm3.forward(x)) + x;
    }
}

/// <summary>diffusers' Transformer2DModel (continuous input): GroupNorm (eps 1e-6), proj_in (1×1 conv, or linear with
/// use_linear_projection as SD 2.x), the transformer blocks over the pixels, proj_out, plus the input.</summary>
public sealed class Transformer2D : nn.Module<Tensor, Tensor, Tensor>
{
    private readonly GroupNorm norm;
    private readonly nn.Module<Tensor, Tensor> proj_in, proj_out;
    private readonly ModuleList<BasicTransformerBlock> transformer_blocks;
    private readonly bool linear;

    public Transformer2D(int channels, int heads, int contextDim, int layers, bool linearProjection, int groups) : base(nameof(Transformer2D))
    {
        linear = linearProjection;
        norm = Layers.GroupNorm(groups, channels, 1e-6);
        proj_in = linear ? nn.Linear(channels, channels) : nn.Conv2d(channels, channels, 1);
        transformer_blocks = nn.ModuleList(Enumerable.Range(0, layers).Select(_ => new BasicTransformerBlock(channels, heads, channels / heads, contextDim)).ToArray());
        proj_out = linear ? nn.Linear(channels, channels) : nn.Conv2d(channels, channels, 1);
        RegisterComponents();
    }

    public override Tensor forward(Tensor x, Tensor context)
    {
        long b = x.shape[0], c = x.shape[1], hh = x.shape[2], ww = x.shape[3];
        var h = norm.forward(x);
        h = linear ? proj_in.forward(h.permute(0, 2, 3, 1).reshape(b, hh * ww, c)) : proj_in.forward(h).permute(0, 2, 3, 1).reshape(b, hh * ww, c);
        foreach (var block in transformer_blocks) h = block.forward(h, context);
        h = linear ? proj_out.forward(h).reshape(b, hh, ww, c).permute(0, 3, 1, 2) : proj_out.forward(h.reshape(b, hh, ww, c).permute(0, 3, 1, 2));
        return h + x;
    }
}

/// <summary>diffusers' Downsample2D as the UNet uses it: a 3×3 conv, stride 2, padding 1 (the VAE's is in <see cref="Diffusion.VaeResample"/>).</summary>
public sealed class SdDownsample : nn.Module<Tensor, Tensor>
{
    private readonly Conv2d conv;

    public SdDownsample(int channels) : base(nameof(SdDownsample))
    {
        conv = nn.Conv2d(channels, channels, 3, stride: 2, padding: 1);
        RegisterComponents();
    }

    public override Tensor forward(Tensor x) => conv.forward(x);
}

/// <summary>diffusers' Upsample2D: nearest-neighbour to twice the size (or to the skip's size), then a 3×3 conv.</summary>
public sealed class SdUpsample : nn.Module<Tensor, long[]?, Tensor>
{
    private readonly Conv2d conv;

    public SdUpsample(int channels) : base(nameof(SdUpsample))
    {
        conv = nn.Conv2d(channels, channels, 3, padding: 1);
        RegisterComponents();
    }

    public override Tensor forward(Tensor x, long[]? size) =>
        conv.forward(size is null
            ? F.interpolate(x, scale_factor: [2.0, 2.0], mode: InterpolationMode.Nearest)
            : F.interpolate(x, size: size, mode: InterpolationMode.Nearest));
}

/// <summary>CrossAttnDownBlock2D / DownBlock2D.</summary>
public sealed class SdDownBlock : nn.Module
{
    private readonly ModuleList<SdResnetBlock> resnets;
    private readonly ModuleList<Transformer2D> attentions;
    private readonly ModuleList<SdDownsample> downsamplers;

    public SdDownBlock(int inCh, int outCh, int layers, int? tembCh, int groups, double eps, Func<Transformer2D>? attention, bool downsample)
        : base(nameof(SdDownBlock))
    {
        resnets = nn.ModuleList(Enumerable.Range(0, layers).Select(j => new SdResnetBlock(j == 0 ? inCh : outCh, outCh, tembCh, groups, eps)).ToArray());
        attentions = nn.ModuleList(attention is null ? [] : Enumerable.Range(0, layers).Select(_ => attention()).ToArray());
        downsamplers = nn.ModuleList(downsample ? [new SdDownsample(outCh)] : Array.Empty<SdDownsample>());
        RegisterComponents();
    }

    /// <summary>The block's output and the states it hands to the up path (one per resnet, one after the downsampler).</summary>
    public Tensor Forward(Tensor h, Tensor? temb, Tensor? context, List<Tensor>? skips)
    {
        for (int j = 0; j < resnets.Count; j++)
        {
            h = resnets[j].forward(h, temb);
            if (attentions.Count > 0) h = attentions[j].forward(h, context!);
            skips?.Add(h);
        }
        if (downsamplers.Count > 0)
        {
            h = downsamplers[0].forward(h);
            skips?.Add(h);
        }
        return h;
    }
}

/// <summary>CrossAttnUpBlock2D / UpBlock2D, each resnet fed the matching skip.</summary>
public sealed class SdUpBlock : nn.Module
{
    private readonly ModuleList<SdResnetBlock> resnets;
    private readonly ModuleList<Transformer2D> attentions;
    private readonly ModuleList<SdUpsample> upsamplers;

    public int Resnets => resnets.Count;

    /// <param name="skipChannels">Per resnet, the channels of the skip it takes (none for the VAE's decoder).</param>
    public SdUpBlock(int prevCh, int outCh, int layers, int[]? skipChannels, int? tembCh, int groups, double eps, Func<Transformer2D>? attention, bool upsample)
        : base(nameof(SdUpBlock))
    {
        resnets = nn.ModuleList(Enumerable.Range(0, layers)
            .Select(j => new SdResnetBlock((j == 0 ? prevCh : outCh) + (skipChannels?[j] ?? 0), outCh, tembCh, groups, eps)).ToArray());
        attentions = nn.ModuleList(attention is null ? [] : Enumerable.Range(0, layers).Select(_ => attention()).ToArray());
        upsamplers = nn.ModuleList(upsample ? [new SdUpsample(outCh)] : Array.Empty<SdUpsample>());
        RegisterComponents();
    }

    public Tensor Forward(Tensor h, Tensor? temb, Tensor? context, List<Tensor>? skips, long[]? upsampleSize)
    {
        for (int j = 0; j < resnets.Count; j++)
        {
            if (skips is not null)
            {
                h = cat([h, skips[^1]], 1);
                skips.RemoveAt(skips.Count - 1);
            }
            h = resnets[j].forward(h, temb);
            if (attentions.Count > 0) h = attentions[j].forward(h, context!);
        }
        return upsamplers.Count > 0 ? upsamplers[0].forward(h, upsampleSize) : h;
    }
}

/// <summary>UNetMidBlock2DCrossAttn: resnet, transformer, resnet.</summary>
public sealed class SdMidBlockCrossAttn : nn.Module
{
    private readonly ModuleList<SdResnetBlock> resnets;
    private readonly ModuleList<Transformer2D> attentions;

    public SdMidBlockCrossAttn(int ch, int tembCh, int groups, double eps, Transformer2D attention) : base(nameof(SdMidBlockCrossAttn))
    {
        resnets = nn.ModuleList(new SdResnetBlock(ch, ch, tembCh, groups, eps), new SdResnetBlock(ch, ch, tembCh, groups, eps));
        attentions = nn.ModuleList(attention);
        RegisterComponents();
    }

    public Tensor Forward(Tensor h, Tensor temb, Tensor context) =>
        resnets[1].forward(attentions[0].forward(resnets[0].forward(h, temb), context), temb);
}

/// <summary>TimestepEmbedding: linear_1, SiLU, linear_2.</summary>
public sealed class SdTimestepEmbedding : nn.Module<Tensor, Tensor>
{
    private readonly Linear linear_1, linear_2;

    public SdTimestepEmbedding(int inCh, int dim) : base(nameof(SdTimestepEmbedding))
    {
        linear_1 = nn.Linear(inCh, dim);
        linear_2 = nn.Linear(dim, dim);
        RegisterComponents();
    }

    public override Tensor forward(Tensor x) => linear_2.forward(F.silu(linear_1.forward(x)));
}

/// <summary>diffusers' UNet2DConditionModel for text-conditioned SD: ε_θ(z_t, t, text embeddings).</summary>
public sealed class UNet2DCondition : nn.Module
{
    private readonly Conv2d conv_in, conv_out;
    private readonly SdTimestepEmbedding time_embedding;
    private readonly ModuleList<SdDownBlock> down_blocks;
    private readonly SdMidBlockCrossAttn mid_block;
    private readonly ModuleList<SdUpBlock> up_blocks;
    private readonly GroupNorm conv_norm_out;

    public UNetConditionConfig Config { get; }

    public UNet2DCondition(UNetConditionConfig c) : base(nameof(UNet2DCondition))
    {
        Config = c;
        var ch = c.BlockOutChannels;
        int n = ch.Length, temb = ch[0] * 4, lpb = c.LayersPerBlock;
        conv_in = nn.Conv2d(c.InChannels, ch[0], 3, padding: 1);
        time_embedding = new SdTimestepEmbedding(ch[0], temb);
        Func<Transformer2D> Attention(int channels, int heads) =>
            () => new Transformer2D(channels, heads, c.CrossAttentionDim, c.TransformerLayers, c.UseLinearProjection, c.NormGroups);
        var downs = new List<SdDownBlock>();
        int output = ch[0];
        for (int i = 0; i < n; i++)
        {
            int input = output;
            output = ch[i];
            downs.Add(new SdDownBlock(input, output, lpb, temb, c.NormGroups, c.NormEps,
                c.DownCrossAttention[i] ? Attention(output, c.Heads[i]) : null, downsample: i < n - 1));
        }
        down_blocks = nn.ModuleList(downs.ToArray());
        mid_block = new SdMidBlockCrossAttn(ch[^1], temb, c.NormGroups, c.NormEps, Attention(ch[^1], c.Heads[^1])());
        // The skips the up path takes, in the order it takes them (last first): conv_in's, then each down block's.
        var skipChannels = new List<int> { ch[0] };
        for (int i = 0; i < n; i++)
        {
            for (int j = 0; j < lpb; j++) skipChannels.Add(ch[i]);
            if (i < n - 1) skipChannels.Add(ch[i]);
        }
        var ups = new List<SdUpBlock>();
        var reversed = ch.Reverse().ToArray();
        var reversedHeads = c.Heads.Reverse().ToArray();
        output = reversed[0];
        for (int i = 0; i < n; i++)
        {
            int prev = output;
            output = reversed[i];
            var skips = new int[lpb + 1];
            for (int j = 0; j <= lpb; j++)
            {
                skips[j] = skipChannels[^1];
                skipChannels.RemoveAt(skipChannels.Count - 1);
            }
            ups.Add(new SdUpBlock(prev, output, lpb + 1, skips, temb, c.NormGroups, c.NormEps,
                c.UpCrossAttention[i] ? Attention(output, reversedHeads[i]) : null, upsample: i < n - 1));
        }
        up_blocks = nn.ModuleList(ups.ToArray());
        conv_norm_out = Layers.GroupNorm(c.NormGroups, ch[0], c.NormEps);
        conv_out = nn.Conv2d(ch[0], c.OutChannels, 3, padding: 1);
        RegisterComponents();
    }

    /// <summary>The UNet's output (ε, or v for a v-prediction model) for latents (B, C, h, w) at timesteps (B) or one timestep.</summary>
    public Tensor Forward(Tensor sample, Tensor timesteps, Tensor context)
    {
        long b = sample.shape[0];
        var t = timesteps.dim() == 0 ? timesteps.expand(b) : timesteps;
        var temb = time_embedding.forward(SdOps.TimestepFeatures(t.to(sample.device), Config.BlockOutChannels[0], Config.FlipSinToCos, Config.FreqShift).to_type(sample.dtype));
        var h = conv_in.forward(sample);
        var skips = new List<Tensor> { h };
        foreach (var down in down_blocks) h = down.Forward(h, temb, context, skips);
        h = mid_block.Forward(h, temb, context);
        for (int i = 0; i < up_blocks.Count; i++)
        {
            var up = up_blocks[i];
            var mine = skips.GetRange(skips.Count - up.Resnets, up.Resnets);
            skips.RemoveRange(skips.Count - up.Resnets, up.Resnets);
            long[]? size = skips.Count > 0 ? [skips[^1].shape[2], skips[^1].shape[3]] : null;
            h = up.Forward(h, temb, context, mine, size);
        }
        return conv_out.forward(F.silu(conv_norm_out.forward(h)));
    }
}

/// <summary>transformers' CLIPAttention: q, k, v, out projections with bias; causal in the text model.</summary>
public sealed class ClipAttention : nn.Module<Tensor, Tensor>
{
    private readonly Linear q_proj, k_proj, v_proj, out_proj;
    private readonly int heads;

    public ClipAttention(int dim, int heads) : base(nameof(ClipAttention))
    {
        this.heads = heads;
        q_proj = nn.Linear(dim, dim);
        k_proj = nn.Linear(dim, dim);
        v_proj = nn.Linear(dim, dim);
        out_proj = nn.Linear(dim, dim);
        RegisterComponents();
    }

    public override Tensor forward(Tensor x) =>
        out_proj.forward(SdOps.Attend(q_proj.forward(x), k_proj.forward(x), v_proj.forward(x), heads, causal: true));
}

public sealed class ClipMlp : nn.Module<Tensor, Tensor>
{
    private readonly Linear fc1, fc2;
    private readonly bool quickGelu;

    public ClipMlp(int dim, int inner, bool quickGelu) : base(nameof(ClipMlp))
    {
        this.quickGelu = quickGelu;
        fc1 = nn.Linear(dim, inner);
        fc2 = nn.Linear(inner, dim);
        RegisterComponents();
    }

    public override Tensor forward(Tensor x)
    {
        var h = fc1.forward(x);
        h = quickGelu ? h * (h * 1.702f).sigmoid() : F.gelu(h);
        return fc2.forward(h);
    }
}

public sealed class ClipEncoderLayer : nn.Module<Tensor, Tensor>
{
    private readonly ClipAttention self_attn;
    private readonly LayerNorm layer_norm1, layer_norm2;
    private readonly ClipMlp mlp;

    public ClipEncoderLayer(ClipTextConfig c) : base(nameof(ClipEncoderLayer))
    {
        self_attn = new ClipAttention(c.HiddenSize, c.Heads);
        layer_norm1 = nn.LayerNorm(c.HiddenSize, c.LayerNormEps);
        mlp = new ClipMlp(c.HiddenSize, c.IntermediateSize, c.HiddenAct == "quick_gelu");
        layer_norm2 = nn.LayerNorm(c.HiddenSize, c.LayerNormEps);
        RegisterComponents();
    }

    public override Tensor forward(Tensor x)
    {
        x = x + self_attn.forward(layer_norm1.forward(x));
        return x + mlp.forward(layer_norm2.forward(x));
    }
}

public sealed class ClipEncoder : nn.Module<Tensor, Tensor>
{
    private readonly ModuleList<ClipEncoderLayer> layers;

    public ClipEncoder(ClipTextConfig c) : base(nameof(ClipEncoder))
    {
        layers = nn.ModuleList(Enumerable.Range(0, c.Layers).Select(_ => new ClipEncoderLayer(c)).ToArray());
        RegisterComponents();
    }

    public override Tensor forward(Tensor x)
    {
        foreach (var layer in layers) x = layer.forward(x);
        return x;
    }
}

public sealed class ClipEmbeddings : nn.Module<Tensor, Tensor>
{
    private readonly Embedding token_embedding, position_embedding;

    public ClipEmbeddings(ClipTextConfig c) : base(nameof(ClipEmbeddings))
    {
        token_embedding = nn.Embedding(c.VocabSize, c.HiddenSize);
        position_embedding = nn.Embedding(c.MaxPositions, c.HiddenSize);
        RegisterComponents();
    }

    public override Tensor forward(Tensor ids) =>
        token_embedding.forward(ids) + position_embedding.forward(arange(ids.shape[1], dtype: ScalarType.Int64, device: ids.device)).unsqueeze(0);
}

public sealed class ClipTextTransformer : nn.Module<Tensor, Tensor>
{
    private readonly ClipEmbeddings embeddings;
    private readonly ClipEncoder encoder;
    private readonly LayerNorm final_layer_norm;

    public ClipTextTransformer(ClipTextConfig c) : base(nameof(ClipTextTransformer))
    {
        embeddings = new ClipEmbeddings(c);
        encoder = new ClipEncoder(c);
        final_layer_norm = nn.LayerNorm(c.HiddenSize, c.LayerNormEps);
        RegisterComponents();
    }

    public override Tensor forward(Tensor ids) => final_layer_norm.forward(encoder.forward(embeddings.forward(ids)));
}

/// <summary>transformers' CLIPTextModel: its last hidden state (after the final layer norm) is SD's text conditioning.</summary>
public sealed class ClipTextModel : nn.Module<Tensor, Tensor>
{
    private readonly ClipTextTransformer text_model;

    public ClipTextConfig Config { get; }

    public ClipTextModel(ClipTextConfig c) : base(nameof(ClipTextModel))
    {
        Config = c;
        text_model = new ClipTextTransformer(c);
        RegisterComponents();
    }

    /// <summary>Token ids (B, L) with L ≤ max positions → (B, L, hidden).</summary>
    public override Tensor forward(Tensor ids)
    {
        if (ids.shape[1] > Config.MaxPositions) throw new ArgumentException($"{ids.shape[1]} tokens, more than the text encoder's {Config.MaxPositions} positions");
        if (ids.max().item<long>() >= Config.VocabSize || ids.min().item<long>() < 0)
            throw new ArgumentException($"a token id outside the text encoder's vocabulary of {Config.VocabSize}");
        return text_model.forward(ids);
    }
}
