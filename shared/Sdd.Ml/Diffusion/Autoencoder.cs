using System.Text.Json;
using Sdd.Ml.Torch;
using TorchSharp.PyBridge;

namespace Sdd.Ml.Diffusion;

// The diffusers AutoencoderKL network (Rombach et al. 2022), module for module: every field below is named as its
// diffusers counterpart, so the parameter names (encoder.down_blocks.0.resnets.0.norm1.weight, ...) are the layout's.
// Group norms use eps 1e-6 and SiLU, as there.

/// <summary>diffusers ResnetBlock2D without a time embedding: norm1, conv1, norm2, conv2, conv_shortcut when the width changes.</summary>
public sealed class VaeResnetBlock : nn.Module<Tensor, Tensor>
{
    private readonly GroupNorm norm1, norm2;
    private readonly Conv2d conv1, conv2;
    private readonly Conv2d? conv_shortcut;

    public VaeResnetBlock(int inCh, int outCh, int groups) : base(nameof(VaeResnetBlock))
    {
        norm1 = Layers.GroupNorm(groups, inCh, 1e-6);
        conv1 = nn.Conv2d(inCh, outCh, 3, padding: 1);
        norm2 = Layers.GroupNorm(groups, outCh, 1e-6);
        conv2 = nn.Conv2d(outCh, outCh, 3, padding: 1);
        conv_shortcut = inCh == outCh ? null : nn.Conv2d(inCh, outCh, 1);
        RegisterComponents();
    }

    public override Tensor forward(Tensor x)
    {
        var h = conv1.forward(F.silu(norm1.forward(x)));
        h = conv2.forward(F.silu(norm2.forward(h)));
        return (conv_shortcut is null ? x : conv_shortcut.forward(x)) + h;
    }
}

/// <summary>diffusers Attention as the VAE uses it: one head over all pixels, group_norm, to_q/to_k/to_v, to_out.0, residual.</summary>
public sealed class VaeAttention : nn.Module<Tensor, Tensor>
{
    private readonly GroupNorm group_norm;
    private readonly Linear to_q, to_k, to_v;
    private readonly ModuleList<Linear> to_out;

    public VaeAttention(int ch, int groups) : base(nameof(VaeAttention))
    {
        group_norm = Layers.GroupNorm(groups, ch, 1e-6);
        to_q = nn.Linear(ch, ch);
        to_k = nn.Linear(ch, ch);
        to_v = nn.Linear(ch, ch);
        to_out = nn.ModuleList(nn.Linear(ch, ch));
        RegisterComponents();
    }

    public override Tensor forward(Tensor x)
    {
        long b = x.shape[0], c = x.shape[1], h = x.shape[2], w = x.shape[3];
        var s = group_norm.forward(x).view(b, c, h * w).transpose(1, 2); // (B, HW, C)
        var q = to_q.forward(s).unsqueeze(1); var k = to_k.forward(s).unsqueeze(1); var v = to_v.forward(s).unsqueeze(1);
        var a = Attention.Scaled(q, k, v).squeeze(1);
        return x + to_out[0].forward(a).transpose(1, 2).reshape(b, c, h, w);
    }
}

/// <summary>diffusers Downsample2D (conv, pad right and bottom by one, stride 2) and Upsample2D (nearest x2, conv).</summary>
public sealed class VaeResample : nn.Module<Tensor, Tensor>
{
    private readonly Conv2d conv;
    private readonly bool down;

    public VaeResample(int ch, bool down) : base(down ? "Downsample2D" : "Upsample2D")
    {
        this.down = down;
        conv = down ? nn.Conv2d(ch, ch, 3, stride: 2) : nn.Conv2d(ch, ch, 3, padding: 1);
        RegisterComponents();
    }

    public override Tensor forward(Tensor x) =>
        down ? conv.forward(F.pad(x, [0, 1, 0, 1])) : conv.forward(F.interpolate(x, scale_factor: [2.0, 2.0], mode: InterpolationMode.Nearest));
}

/// <summary>DownEncoderBlock2D / UpDecoderBlock2D: resnets, then downsamplers.0 or upsamplers.0 unless it is the last block.</summary>
public sealed class VaeBlock : nn.Module<Tensor, Tensor>
{
    private readonly ModuleList<VaeResnetBlock> resnets;
    private readonly ModuleList<VaeResample>? downsamplers, upsamplers;

    public VaeBlock(int inCh, int outCh, int layers, int groups, bool down, bool resample) : base(down ? "DownEncoderBlock2D" : "UpDecoderBlock2D")
    {
        resnets = nn.ModuleList(Enumerable.Range(0, layers).Select(i => new VaeResnetBlock(i == 0 ? inCh : outCh, outCh, groups)).ToArray());
        if (resample && down) downsamplers = nn.ModuleList(new VaeResample(outCh, down: true));
        if (resample && !down) upsamplers = nn.ModuleList(new VaeResample(outCh, down: false));
        RegisterComponents();
    }

    public override Tensor forward(Tensor x)
    {
        foreach (var r in resnets) x = r.forward(x);
        if (downsamplers is not null) x = downsamplers[0].forward(x);
        if (upsamplers is not null) x = upsamplers[0].forward(x);
        return x;
    }
}

/// <summary>UNetMidBlock2D without a time embedding: resnets.0, attentions.0 (when on), resnets.1.</summary>
public sealed class VaeMidBlock : nn.Module<Tensor, Tensor>
{
    private readonly ModuleList<VaeResnetBlock> resnets;
    private readonly ModuleList<VaeAttention>? attentions;

    public VaeMidBlock(int ch, int groups, bool attention) : base("UNetMidBlock2D")
    {
        resnets = nn.ModuleList(new VaeResnetBlock(ch, ch, groups), new VaeResnetBlock(ch, ch, groups));
        if (attention) attentions = nn.ModuleList(new VaeAttention(ch, groups));
        RegisterComponents();
    }

    public override Tensor forward(Tensor x)
    {
        x = resnets[0].forward(x);
        if (attentions is not null) x = attentions[0].forward(x);
        return resnets[1].forward(x);
    }
}

/// <summary>diffusers Encoder (double_z): conv_in, down_blocks, mid_block, conv_norm_out, conv_out to mean and log-variance.</summary>
public sealed class VaeEncoder : nn.Module<Tensor, Tensor>
{
    private readonly Conv2d conv_in, conv_out;
    private readonly ModuleList<VaeBlock> down_blocks;
    private readonly VaeMidBlock mid_block;
    private readonly GroupNorm conv_norm_out;

    public VaeEncoder(AutoencoderConfig c) : base("Encoder")
    {
        var ch = c.BlockOutChannels;
        conv_in = nn.Conv2d(c.InChannels, ch[0], 3, padding: 1);
        down_blocks = nn.ModuleList(ch.Select((o, i) => new VaeBlock(i == 0 ? ch[0] : ch[i - 1], o, c.LayersPerBlock, c.NormNumGroups, down: true, resample: i < ch.Length - 1)).ToArray());
        mid_block = new VaeMidBlock(ch[^1], c.NormNumGroups, c.MidBlockAddAttention);
        conv_norm_out = Layers.GroupNorm(c.NormNumGroups, ch[^1], 1e-6);
        conv_out = nn.Conv2d(ch[^1], 2 * c.LatentChannels, 3, padding: 1);
        RegisterComponents();
    }

    public override Tensor forward(Tensor x)
    {
        x = conv_in.forward(x);
        foreach (var b in down_blocks) x = b.forward(x);
        x = mid_block.forward(x);
        return conv_out.forward(F.silu(conv_norm_out.forward(x)));
    }
}

/// <summary>diffusers Decoder: conv_in, mid_block, up_blocks (layers_per_block + 1 resnets each), conv_norm_out, conv_out.</summary>
public sealed class VaeDecoder : nn.Module<Tensor, Tensor>
{
    private readonly Conv2d conv_in, conv_out;
    private readonly ModuleList<VaeBlock> up_blocks;
    private readonly VaeMidBlock mid_block;
    private readonly GroupNorm conv_norm_out;

    public VaeDecoder(AutoencoderConfig c) : base("Decoder")
    {
        var rev = c.BlockOutChannels.Reverse().ToArray();
        conv_in = nn.Conv2d(c.LatentChannels, rev[0], 3, padding: 1);
        mid_block = new VaeMidBlock(rev[0], c.NormNumGroups, c.MidBlockAddAttention);
        up_blocks = nn.ModuleList(rev.Select((o, i) => new VaeBlock(i == 0 ? rev[0] : rev[i - 1], o, c.LayersPerBlock + 1, c.NormNumGroups, down: false, resample: i < rev.Length - 1)).ToArray());
        conv_norm_out = Layers.GroupNorm(c.NormNumGroups, rev[^1], 1e-6);
        conv_out = nn.Conv2d(rev[^1], c.OutChannels, 3, padding: 1);
        RegisterComponents();
    }

    public override Tensor forward(Tensor z)
    {
        var x = mid_block.forward(conv_in.forward(z));
        foreach (var b in up_blocks) x = b.forward(x);
        return conv_out.forward(F.silu(conv_norm_out.forward(x)));
    }
}

/// <summary>diffusers AutoencoderKL: encoder, quant_conv, post_quant_conv, decoder.</summary>
public sealed class AutoencoderKL : nn.Module<Tensor, Tensor>
{
    private readonly VaeEncoder encoder;
    private readonly VaeDecoder decoder;
    private readonly Conv2d quant_conv, post_quant_conv;

    public AutoencoderKL(AutoencoderConfig c) : base(nameof(AutoencoderKL))
    {
        encoder = new VaeEncoder(c);
        decoder = new VaeDecoder(c);
        quant_conv = nn.Conv2d(2 * c.LatentChannels, 2 * c.LatentChannels, 1);
        post_quant_conv = nn.Conv2d(c.LatentChannels, c.LatentChannels, 1);
        RegisterComponents();
    }

    /// <summary>The posterior's mean and log-variance (clamped to [-30, 20] as in diffusers), unscaled.</summary>
    public (Tensor Mean, Tensor LogVar) Encode(Tensor x)
    {
        var m = quant_conv.forward(encoder.forward(x)).chunk(2, 1);
        return (m[0], m[1].clamp(-30, 20));
    }

    /// <summary>Decodes an unscaled latent.</summary>
    public Tensor Decode(Tensor z) => decoder.forward(post_quant_conv.forward(z));

    /// <summary>Reconstruction through the posterior's mean.</summary>
    public override Tensor forward(Tensor x) => Decode(Encode(x).Mean);
}

/// <summary>
/// An image autoencoder in the diffusers AutoencoderKL layout (<see cref="AutoencoderConfig"/>): images in [-1, 1] to
/// latents at 1/<see cref="AutoencoderConfig.Downsampling"/> of the side and back. Latents handed to a diffusion model are
/// scaled by <see cref="AutoencoderConfig.ScalingFactor"/>. Files: config.json and diffusion_pytorch_model.safetensors,
/// read strictly: a missing, unexpected or wrongly shaped tensor fails naming it.
/// </summary>
public sealed class Autoencoder : IDisposable
{
    private AutoencoderConfig _config;
    public AutoencoderConfig Config { get => _config; internal set => _config = value.Validated(); }
    public AutoencoderKL Net { get; }
    public Device Device { get; }

    public Autoencoder(AutoencoderConfig config, Device? device = null)
    {
        _config = config.Validated();
        Device = device ?? CPU;
        Net = new AutoencoderKL(config);
        Net.to(Device);
        Net.eval();
    }

    /// <summary>Scaled latents of images: the posterior mean, or a sample from it with <paramref name="generator"/>.</summary>
    public Tensor Encode(Tensor images, Generator? generator = null, bool sample = false)
    {
        using var scope = NewDisposeScope();
        var parts = is_grad_enabled()
            ? Pair(Net.Encode(images))
            : Chunked(images, images.shape[2] * images.shape[3], x => Pair(Net.Encode(x)));
        Tensor mean = parts[0], logVar = parts[1];
        var z = sample ? mean + (0.5 * logVar).exp() * randn(mean.shape, generator: generator, device: mean.device) : mean;
        return (z * Config.ScalingFactor).MoveToOuterDisposeScope();
    }

    /// <summary>Images in [-1, 1] (clamped, unless <paramref name="clamp"/> is false) from scaled latents.</summary>
    public Tensor Decode(Tensor latents, bool clamp = true)
    {
        using var scope = NewDisposeScope();
        var scaled = latents / Config.ScalingFactor;
        var images = is_grad_enabled()
            ? Net.Decode(scaled)
            : Chunked(scaled, latents.shape[2] * latents.shape[3] * Config.Downsampling * Config.Downsampling, z => [Net.Decode(z)])[0];
        return (clamp ? images.clamp(-1, 1) : images).MoveToOuterDisposeScope();
    }

    private static Tensor[] Pair((Tensor Mean, Tensor LogVar) p) => [p.Mean, p.LogVar];

    /// <summary>Image pixels a chunk of a batch is run over without gradients (by default 16 images at 128 px; at least one image).</summary>
    public long ChunkPixels { get; set; } = 16 * 128 * 128;

    /// <summary>
    /// <paramref name="f"/> over chunks of the batch of about <see cref="ChunkPixels"/> image pixels each (at least one image),
    /// each chunk's temporaries freed before the next: without gradients the networks' activations are not needed after a
    /// chunk, and a whole batch's (128 images at 128 px) held gigabytes. The outputs are joined along the batch.
    /// </summary>
    private Tensor[] Chunked(Tensor input, long pixelsPerImage, Func<Tensor, Tensor[]> f)
    {
        long n = input.shape[0], chunk = Math.Max(1, ChunkPixels / Math.Max(1, pixelsPerImage));
        if (n <= chunk) return f(input);
        var parts = new List<Tensor[]>();
        for (long i = 0; i < n; i += chunk)
        {
            using var scope = NewDisposeScope();
            parts.Add([.. f(input[TensorIndex.Slice(i, Math.Min(i + chunk, n))]).Select(t => t.MoveToOuterDisposeScope())]);
        }
        var joined = Enumerable.Range(0, parts[0].Length).Select(k => cat(parts.Select(p => p[k]).ToArray())).ToArray();
        foreach (var p in parts) foreach (var t in p) t.Dispose();
        return joined;
    }

    public void Save(string dir, AutoencoderConfig? config = null)
    {
        Directory.CreateDirectory(dir);
        if (config is not null) Config = config.Validated();
        Net.save_safetensors(Path.Combine(dir, AutoencoderConfig.WeightsFile));
        File.WriteAllText(Path.Combine(dir, ModelFolder.ConfigFile), ModelFolder.Serialize(Config));
    }

    public static AutoencoderConfig ReadConfig(string dir) => ModelFolder.ReadConfig<AutoencoderConfig>(dir, "autoencoder").Validated();

    /// <summary>Loads a folder written by <see cref="Save"/> or by diffusers (float32, float16 or bfloat16 weights; older attention names query/key/value/proj_attn too).</summary>
    public static Autoencoder Load(string dir, Device? device = null)
    {
        var ae = new Autoencoder(ReadConfig(dir), device);
        var weights = Path.Combine(dir, AutoencoderConfig.WeightsFile);
        if (!File.Exists(weights)) throw new FileNotFoundException($"No autoencoder weights at '{weights}'.", weights);
        StrictWeights.Load(ae.Net, weights, LegacyAttentionName);
        ae.Net.to(ae.Device);
        return ae;
    }

    /// <summary>Older diffusers checkpoints name the VAE's attention query/key/value/proj_attn (as 1x1 convolutions).</summary>
    private static string LegacyAttentionName(string key)
    {
        foreach (var (from, to) in new[] { (".query.", ".to_q."), (".key.", ".to_k."), (".value.", ".to_v."), (".proj_attn.", ".to_out.0.") })
            if (key.Contains(".attentions.") && key.Contains(from)) return key.Replace(from, to);
        return key;
    }

    public void Dispose() => Net.Dispose();
}

/// <summary>Strict loading of a safetensors file into a module, with messages that name what does not fit.</summary>
public static class StrictWeights
{
    /// <summary>
    /// Copies every tensor of <paramref name="path"/> into the module's parameter or buffer of the same name (after
    /// <paramref name="rename"/>), converting the dtype; a missing or unexpected name, or a shape that differs (other than
    /// a 1x1 convolution's trailing ones where a linear layer is expected), throws <see cref="InvalidDataException"/> naming it.
    /// </summary>
    public static void Load(nn.Module module, string path, Func<string, string>? rename = null)
    {
        var file = Safetensors.LoadStateDict(path);
        try
        {
            var loaded = new Dictionary<string, Tensor>();
            foreach (var (k, v) in file) loaded[rename?.Invoke(k) ?? k] = v;
            var expected = module.state_dict();
            var missing = expected.Keys.Where(k => !loaded.ContainsKey(k)).ToList();
            var unexpected = loaded.Keys.Where(k => !expected.ContainsKey(k)).ToList();
            if (missing.Count > 0 || unexpected.Count > 0)
                throw new InvalidDataException($"'{path}' does not fit the model: " +
                    (missing.Count > 0 ? $"missing {string.Join(", ", missing.Take(8))}{(missing.Count > 8 ? $" and {missing.Count - 8} more" : "")}" : "") +
                    (missing.Count > 0 && unexpected.Count > 0 ? "; " : "") +
                    (unexpected.Count > 0 ? $"unexpected {string.Join(", ", unexpected.Take(8))}{(unexpected.Count > 8 ? $" and {unexpected.Count - 8} more" : "")}" : "") + ".");
            using var _ = no_grad();
            foreach (var (name, target) in expected)
            {
                var source = loaded[name];
                if (!source.shape.SequenceEqual(target.shape))
                {
                    bool pointwise = source.dim() == target.dim() + 2 && source.shape.Skip((int)target.dim()).All(d => d == 1) && source.shape.Take((int)target.dim()).SequenceEqual(target.shape);
                    if (!pointwise)
                        throw new InvalidDataException($"'{path}': {name} has shape [{string.Join(", ", source.shape)}], the model expects [{string.Join(", ", target.shape)}].");
                    source = source.reshape(target.shape);
                }
                target.copy_(source.to(target.dtype));
            }
        }
        finally
        {
            foreach (var t in file.Values) t.Dispose();
        }
    }
}
