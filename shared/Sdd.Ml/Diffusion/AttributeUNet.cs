using Sdd.Ml.Torch;

namespace Sdd.Ml.Diffusion;

/// <summary>A ResNet block whose normalised activations are scaled and shifted by the time+condition embedding.</summary>
public sealed class ResBlock : nn.Module<Tensor, Tensor, Tensor>
{
    private readonly GroupNorm norm1, norm2;
    private readonly Conv2d conv1, conv2;
    private readonly Linear emb;
    private readonly nn.Module<Tensor, Tensor>? skip;

    public ResBlock(int inCh, int outCh, int embDim) : base(nameof(ResBlock))
    {
        norm1 = Layers.GroupNorm(8, inCh);
        conv1 = Layers.Conv3x3(inCh, outCh);
        emb = nn.Linear(embDim, 2 * outCh);
        norm2 = Layers.GroupNorm(8, outCh);
        conv2 = Layers.ZeroConv(outCh, outCh);
        skip = inCh == outCh ? null : nn.Conv2d(inCh, outCh, 1);
        RegisterComponents();
    }

    public override Tensor forward(Tensor x, Tensor e)
    {
        var h = conv1.forward(F.silu(norm1.forward(x)));
        var ss = emb.forward(F.silu(e)).unsqueeze(-1).unsqueeze(-1).chunk(2, 1);
        h = norm2.forward(h) * (1 + ss[0]) + ss[1];
        h = conv2.forward(F.silu(h));
        return (skip is null ? x : skip.forward(x)) + h;
    }
}

/// <summary>Multi-head self-attention over the pixels of a low-resolution feature map.</summary>
public sealed class SelfAttention : nn.Module<Tensor, Tensor>
{
    private readonly GroupNorm norm;
    private readonly Conv2d qkv, proj;
    private readonly int heads;

    public SelfAttention(int ch, int heads) : base(nameof(SelfAttention))
    {
        this.heads = heads;
        norm = Layers.GroupNorm(8, ch);
        qkv = nn.Conv2d(ch, 3 * ch, 1);
        proj = Layers.ZeroConv(ch, ch, 1);
        RegisterComponents();
    }

    public override Tensor forward(Tensor x)
    {
        long b = x.shape[0], c = x.shape[1], h = x.shape[2], w = x.shape[3];
        var q = qkv.forward(norm.forward(x)).view(b, 3, heads, c / heads, h * w).permute(1, 0, 2, 4, 3);
        var a = Attention.Scaled(q[0], q[1], q[2]); // (B, heads, HW, C/heads)
        return x + proj.forward(a.permute(0, 1, 3, 2).reshape(b, c, h, w));
    }
}

/// <summary>One resolution of the UNet: a ResBlock and, at low resolution, attention.</summary>
public sealed class UNetLevel : nn.Module<Tensor, Tensor, Tensor>
{
    private readonly ResBlock res;
    private readonly SelfAttention? attn;

    public UNetLevel(int inCh, int outCh, int embDim, bool attention, int heads) : base(nameof(UNetLevel))
    {
        res = new ResBlock(inCh, outCh, embDim);
        attn = attention ? new SelfAttention(outCh, heads) : null;
        RegisterComponents();
    }

    public override Tensor forward(Tensor x, Tensor e)
    {
        var h = res.forward(x, e);
        return attn is null ? h : attn.forward(h);
    }
}

/// <summary>
/// eps_theta(x_t, t, c): a UNet over pixels, conditioned on a sinusoidal timestep embedding plus one learned
/// embedding per attribute state (absent, present, unknown), summed over attributes.
/// </summary>
public sealed class AttributeUNet : nn.Module<Tensor, Tensor, Tensor, Tensor>
{
    public UNetConfig Config { get; }
    private readonly int baseCh;
    private readonly Conv2d inConv, outConv;
    private readonly Linear timeIn, timeOut;
    private readonly Embedding attrEmbedding;
    private readonly ModuleList<UNetLevel> down, up;
    private readonly ModuleList<Conv2d> downsample, upsample;
    private readonly UNetLevel mid1;
    private readonly ResBlock mid2;
    private readonly GroupNorm outNorm;

    public AttributeUNet(UNetConfig config) : base(nameof(AttributeUNet))
    {
        Config = config;
        var ch = config.Channels;
        baseCh = ch[0];
        int embDim = 4 * baseCh;
        inConv = Layers.Conv3x3(config.InChannels, ch[0]);
        timeIn = nn.Linear(baseCh, embDim);
        timeOut = nn.Linear(embDim, embDim);
        attrEmbedding = nn.Embedding(config.Attributes * 3, embDim);
        down = new ModuleList<UNetLevel>();
        up = new ModuleList<UNetLevel>();
        downsample = new ModuleList<Conv2d>();
        upsample = new ModuleList<Conv2d>();

        int res = config.ImageSize, prev = ch[0];
        var skips = new List<int>();
        for (int i = 0; i < ch.Length; i++)
        {
            down.Add(new UNetLevel(prev, ch[i], embDim, res <= config.AttentionBelow, config.Heads));
            prev = ch[i];
            skips.Add(prev);
            if (i < ch.Length - 1) { downsample.Add(Layers.Conv3x3(prev, prev, stride: 2)); res /= 2; }
        }
        mid1 = new UNetLevel(prev, prev, embDim, true, config.Heads);
        mid2 = new ResBlock(prev, prev, embDim);
        for (int i = ch.Length - 1; i >= 0; i--)
        {
            up.Add(new UNetLevel(prev + skips[i], ch[i], embDim, res <= config.AttentionBelow, config.Heads));
            prev = ch[i];
            if (i > 0) { upsample.Add(Layers.Conv3x3(prev, prev)); res *= 2; }
        }
        outNorm = Layers.GroupNorm(8, prev);
        outConv = Layers.ZeroConv(prev, config.InChannels);
        RegisterComponents();
    }

    /// <summary>Transformer-style sinusoidal embedding of integer timesteps (DDPM, Ho et al. 2020, App. B).</summary>
    private Tensor TimeEmbedding(Tensor t)
    {
        int half = baseCh / 2;
        var freqs = exp(arange(half, dtype: ScalarType.Float32, device: t.device) * (-Math.Log(10000.0) / half));
        var args = t.to_type(ScalarType.Float32).unsqueeze(1) * freqs.unsqueeze(0);
        return cat([sin(args), cos(args)], 1);
    }

    /// <param name="x">noised images or latents (B, InChannels, S, S)</param>
    /// <param name="t">integer timesteps (B)</param>
    /// <param name="states">attribute states (B, A): 0 absent, 1 present, 2 unknown</param>
    public override Tensor forward(Tensor x, Tensor t, Tensor states)
    {
        var offsets = arange(Config.Attributes, dtype: ScalarType.Int64, device: x.device).mul(3).unsqueeze(0);
        var e = timeOut.forward(F.silu(timeIn.forward(TimeEmbedding(t))))
              + attrEmbedding.forward(states + offsets).sum(1);

        var h = inConv.forward(x);
        var skips = new List<Tensor>();
        for (int i = 0; i < down.Count; i++)
        {
            h = down[i].forward(h, e);
            skips.Add(h);
            if (i < downsample.Count) h = downsample[i].forward(h);
        }
        h = mid2.forward(mid1.forward(h, e), e);
        for (int i = 0; i < up.Count; i++)
        {
            h = up[i].forward(cat([h, skips[^(i + 1)]], 1), e);
            if (i < upsample.Count)
                h = upsample[i].forward(F.interpolate(h, scale_factor: [2.0, 2.0], mode: InterpolationMode.Nearest));
        }
        return outConv.forward(F.silu(outNorm.forward(h)));
    }
}
