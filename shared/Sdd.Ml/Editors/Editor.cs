using System.Text.Json;
using Sdd.Ml.Diffusion;
using Sdd.Ml.Guidance;
using Sdd.Ml.Torch;
using TorchSharp.PyBridge;

namespace Sdd.Ml.Editors;

/// <summary>An editor's JSON config.</summary>
public sealed record EditorConfig
{
    public required string Attribute { get; init; }
    public required int ImageSize { get; init; }
    public int Channels { get; init; } = 32;
    public int ResBlocks { get; init; } = 2;
    public string? Teacher { get; init; }
    /// <summary>A text-prompt attribute's prompt (a Stable Diffusion teacher), and the source prompt its delta guidance compared it with.</summary>
    public string? Prompt { get; init; }
    public string? SourcePrompt { get; init; }
    public int[] SelectedTimesteps { get; init; } = [];
    public DistillSettings Settings { get; init; } = new();
    public int Step { get; init; }
    public Dictionary<string, double> Metrics { get; init; } = [];
    /// <summary>The network; absent in the first editors' configs, which are <see cref="EditorArchitecture.Residual"/>.</summary>
    public EditorArchitecture? Architecture { get; init; }
    /// <summary>How the guidance scale was chosen when it was automatic (null: it was given).</summary>
    public CalibratedScale? Calibration { get; init; }
    /// <summary>
    /// A masked editor's gate (0: off, the editors before it): at inference mask values below half of it become 0, values
    /// above it are kept, and between the two they ramp up linearly, so the faint, wide part of a soft mask stops
    /// changing pixels while the edit itself stays continuous. Chosen after training (<c>bench editors --gates</c> on the
    /// validation split, <c>sdd editor gate</c>); training never sees it.
    /// </summary>
    public double MaskGate { get; init; }
    /// <summary>
    /// The domain gate (its statistics in <see cref="DomainGate.WeightsFile"/> beside the weights): images scoring above
    /// its threshold are outside what the editor was trained on. Null: an editor made before the gate, which checks nothing.
    /// </summary>
    public DomainGateConfig? Domain { get; init; }

    public EditorArchitecture Network => Architecture ?? EditorArchitecture.Residual;
}

/// <summary>A plain residual block (no conditioning) for the editor's bottleneck.</summary>
public sealed class PlainResBlock : nn.Module<Tensor, Tensor>
{
    private readonly GroupNorm n1, n2;
    private readonly Conv2d c1, c2;

    public PlainResBlock(int ch) : base(nameof(PlainResBlock))
    {
        n1 = Layers.GroupNorm(8, ch); c1 = Layers.Conv3x3(ch, ch);
        n2 = Layers.GroupNorm(8, ch); c2 = Layers.Conv3x3(ch, ch);
        RegisterComponents();
    }

    public override Tensor forward(Tensor x) => x + c2.forward(F.silu(n2.forward(c1.forward(F.silu(n1.forward(x))))));
}

/// <summary>
/// The manipulator: a small fully convolutional encoder-decoder predicting a change g(x) whose last layer starts at
/// zero, so an untrained editor is exactly the identity. Residual: f(x) = x + g(x). Masked: it also predicts a soft
/// mask m(x) = sigmoid(.) in [0, 1] from the same features and f(x) = x + m(x) * g(x), so an edit can be confined to
/// where the attribute lives; the mask head starts at zero weights (m = 0.5), the identity still holds because g = 0.
/// </summary>
public sealed class EditorNet : nn.Module<Tensor, Tensor>
{
    private readonly Conv2d inConv, down1, down2, up1, merge1, up2, merge2, outConv;
    // Only in masked editors; a residual editor's state dict has no maskConv keys, so the first editors' files load strictly.
    private readonly Conv2d? maskConv;
    private readonly ModuleList<PlainResBlock> body;
    private readonly GroupNorm outNorm;

    public bool Masked => maskConv is not null;

    /// <summary>The gate <see cref="Delta"/> applies to the mask (see <see cref="EditorConfig.MaskGate"/>); 0 is off.</summary>
    public double MaskGate { get; set; }

    public EditorNet(int ch, int resBlocks, bool masked = false) : base(nameof(EditorNet))
    {
        inConv = Layers.Conv3x3(3, ch);
        down1 = Layers.Conv3x3(ch, 2 * ch, stride: 2);
        down2 = Layers.Conv3x3(2 * ch, 4 * ch, stride: 2);
        body = new ModuleList<PlainResBlock>();
        for (int i = 0; i < resBlocks; i++) body.Add(new PlainResBlock(4 * ch));
        up1 = Layers.Conv3x3(4 * ch, 2 * ch);
        merge1 = Layers.Conv3x3(4 * ch, 2 * ch);
        up2 = Layers.Conv3x3(2 * ch, ch);
        merge2 = Layers.Conv3x3(2 * ch, ch);
        outNorm = Layers.GroupNorm(8, ch);
        outConv = Layers.ZeroConv(ch, 3);
        if (masked) maskConv = Layers.ZeroConv(ch, 1);
        RegisterComponents();
    }

    /// <summary>g(x), the change (B, 3, H, W), and m(x), the mask (B, 1, H, W) in [0, 1] or null for a residual editor; H and W multiples of 4.</summary>
    public (Tensor Change, Tensor? Mask) Parts(Tensor x)
    {
        var h0 = F.silu(inConv.forward(x));
        var h1 = F.silu(down1.forward(h0));
        var h = F.silu(down2.forward(h1));
        foreach (var b in body) h = b.forward(h);
        h = F.silu(up1.forward(F.interpolate(h, scale_factor: [2.0, 2.0], mode: InterpolationMode.Nearest)));
        h = F.silu(merge1.forward(cat([h, h1], 1)));
        h = F.silu(up2.forward(F.interpolate(h, scale_factor: [2.0, 2.0], mode: InterpolationMode.Nearest)));
        h = F.silu(merge2.forward(cat([h, h0], 1)));
        var features = F.silu(outNorm.forward(h));
        return (outConv.forward(features), maskConv is null ? null : sigmoid(maskConv.forward(features)));
    }

    /// <summary>The applied edit f(x) - x: m * g with the mask gated, or g for a residual editor.</summary>
    public Tensor Delta(Tensor x)
    {
        var (g, m) = Parts(x);
        return m is null ? g : Gate(m, MaskGate) * g;
    }

    /// <summary>
    /// m with values below gate / 2 set to 0, values above gate kept, and a linear ramp between (m * clamp((2m - gate) / gate,
    /// 0, 1)); m itself when gate is 0.
    /// </summary>
    public static Tensor Gate(Tensor m, double gate)
    {
        if (gate <= 0) return m;
        // Explicit scalars, kept alive through the native calls: this runs in the edit worker's hot path, where an implicit
        // Scalar freed by the finalizer mid-call has been seen (ImageCodec.ToRgb24).
        using var two = 2.0.ToScalar();
        using var minusGate = (-gate).ToScalar();
        using var one = 1.0.ToScalar();
        using var g = gate.ToScalar();
        using var zero = 0.0.ToScalar();
        using var ramp = m.mul(two).add(minusGate, one).div(g);
        return m.mul(ramp.clamp(zero, one));
    }

    public override Tensor forward(Tensor x) => x + Delta(x);
}

/// <summary>
/// Applies a fixed-resolution edit to images of any size: at the model's size directly; otherwise the shorter
/// side is scaled to the model's size (aspect kept, sides multiples of 4), edited, and only the difference is
/// upscaled and added to the full-resolution original.
/// </summary>
public static class ResidualMode
{
    /// <summary>Why an image of this size cannot be edited in residual mode (Sdd.Configuration.Limits.MaxAspectRatio), or null.</summary>
    public static string? Refusal(long width, long height) => Sdd.Configuration.Limits.AspectRefusal(width, height);

    public static Tensor Apply(Tensor x, int size, Func<Tensor, Tensor> edit)
    {
        long h = x.shape[2], w = x.shape[3];
        if (h == size && w == size) return edit(x);
        if (Refusal(w, h) is { } refusal) throw new ArgumentException(refusal, nameof(x));
        double k = (double)size / Math.Min(h, w);
        long sh = Math.Max(4, (long)Math.Round(h * k / 4) * 4), sw = Math.Max(4, (long)Math.Round(w * k / 4) * 4);
        var small = F.interpolate(x, size: [sh, sw], mode: InterpolationMode.Area);
        var delta = edit(small) - small;
        return x + F.interpolate(delta, size: [h, w], mode: InterpolationMode.Bilinear, align_corners: false);
    }
}

/// <summary>
/// A trained attribute editor: one forward pass per batch. Images at the editor's size are edited directly;
/// others in residual mode (downscale, edit, upscale the difference, add it to the original), so untouched
/// regions keep their native detail. Files: <c>config.json</c> + <c>model.safetensors</c>.
/// </summary>
public sealed class Editor : IDisposable
{
    public EditorConfig Config { get; private set; }
    public EditorNet Net { get; }
    public Device Device { get; }
    public int Size => Config.ImageSize;

    public Editor(EditorConfig config, Device? device = null)
    {
        Config = config;
        Device = device ?? CPU;
        Net = new EditorNet(config.Channels, config.ResBlocks, config.Network == EditorArchitecture.Masked) { MaskGate = GateOf(config) };
        Net.to(Device);
        Net.eval();
    }

    /// <summary>The editor's domain gate, when its config has one (see <see cref="EditorConfig.Domain"/>).</summary>
    public DomainGate? Domain { get; private set; }

    public long ParameterCount => Net.parameters().Sum(p => p.numel());

    /// <summary>Edits a batch (B, 3, H, W) in [-1, 1] of one size; returns the edited batch on the same device as the input.</summary>
    public Tensor Edit(Tensor images)
    {
        using var _ = no_grad();
        using var scope = NewDisposeScope();
        var x = images.to(Device);
        var y = ResidualMode.Apply(x, Size, Net.forward);
        return y.clamp(-1, 1).to(images.device).MoveToOuterDisposeScope();
    }

    public void Save(string dir, EditorConfig? config = null)
    {
        Directory.CreateDirectory(dir);
        if (config is not null) { Config = config; Net.MaskGate = GateOf(config); }
        AtomicFile.Write(Path.Combine(dir, Teacher.WeightsFile), p => Net.save_safetensors(p));
        Domain?.Save(dir); // before the config that names it, so a folder whose config has a gate always has its statistics
        AtomicFile.Write(Path.Combine(dir, Teacher.ConfigFile), p => File.WriteAllText(p, ModelFolder.Serialize(Config)));
    }

    /// <summary>The config's gate, checked: in [0, 1), and only on a masked editor.</summary>
    public static double GateOf(EditorConfig config)
    {
        if (config.MaskGate is < 0 or >= 1 || double.IsNaN(config.MaskGate))
            throw new InvalidDataException($"mask_gate must be in [0, 1), got {config.MaskGate}.");
        if (config.MaskGate > 0 && config.Network != EditorArchitecture.Masked)
            throw new InvalidDataException($"mask_gate {config.MaskGate} is set on a {config.Network.ToString().ToLowerInvariant()} editor; only a masked editor has a mask to gate.");
        return config.MaskGate;
    }

    /// <summary>Sets a masked editor's gate in its folder (config.json rewritten in place; the weights are not touched).</summary>
    public static EditorConfig SetGate(string dir, double gate)
    {
        var config = ReadConfig(dir) with { MaskGate = gate };
        GateOf(config);
        AtomicFile.Write(Path.Combine(dir, Teacher.ConfigFile), p => File.WriteAllText(p, ModelFolder.Serialize(config)));
        return config;
    }

    public static EditorConfig ReadConfig(string dir)
    {
        return ModelFolder.ReadConfig<EditorConfig>(dir, "editor");
    }

    public static Editor Load(string dir, Device? device = null)
    {
        var editor = new Editor(ReadConfig(dir), device);
        editor.Net.load_safetensors(Path.Combine(dir, Teacher.WeightsFile), strict: true);
        editor.Net.to(editor.Device);
        if (editor.Config.Domain is { } domain)
        {
            var path = Path.Combine(dir, DomainGate.WeightsFile);
            if (!File.Exists(path)) { editor.Dispose(); throw new FileNotFoundException($"The editor at '{dir}' has a domain gate in its config but no {DomainGate.WeightsFile}.", path); }
            editor.Domain = DomainGate.Load(domain, path);
        }
        return editor;
    }

    /// <summary>Sets (or, with null, removes) the editor's domain gate; its config records it at the next save.</summary>
    public void SetDomain(DomainGate? gate)
    {
        if (!ReferenceEquals(Domain, gate)) Domain?.Dispose();
        Domain = gate;
        Config = Config with { Domain = gate?.Config };
    }

    /// <summary>Whether an editor config (its JSON) has a domain gate, whose statistics must then be loaded with it.</summary>
    public static bool ReadsDomain(string configJson) => ModelFolder.ParseConfig<EditorConfig>(configJson, "editor config").Domain is not null;

    /// <summary>Loads from in-memory files (object storage): the JSON config and the safetensors bytes.</summary>
    public static Editor Load(string configJson, byte[] weights, Device? device = null, byte[]? domain = null)
    {
        var config = ModelFolder.ParseConfig<EditorConfig>(configJson, "editor config");
        if (config.Domain is not null && domain is null)
            throw new InvalidDataException($"The editor config has a domain gate but its {DomainGate.WeightsFile} was not given.");
        var tmp = Path.Combine(Path.GetTempPath(), $"sdd-editor-{Guid.NewGuid():N}.safetensors");
        try
        {
            File.WriteAllBytes(tmp, weights);
            var editor = new Editor(config, device);
            editor.Net.load_safetensors(tmp, strict: true);
            editor.Net.to(editor.Device);
            if (config.Domain is { } d) editor.Domain = DomainGate.Load(d, domain!);
            return editor;
        }
        finally { File.Delete(tmp); }
    }

    public void Dispose()
    {
        Net.Dispose();
        Domain?.Dispose();
    }
}
