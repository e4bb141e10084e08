using Sdd.Ml.Diffusion;
using Sdd.Ml.Editors;
using Sdd.Ml.Portraits;

namespace Sdd.Ml.Tests;

/// <summary>Tiny teachers and editors for the method's tests (16 px, built in memory).</summary>
public static class MethodSupport
{
    public const int Size = 16;

    public static TeacherConfig TeacherConfig() => new()
    {
        AttributeNames = [.. PortraitAttributes.All],
        Unet = new UNetConfig { ImageSize = Size, Channels = [16, 32], AttentionBelow = 8, Heads = 2, Attributes = PortraitAttributes.All.Count },
    };

    /// <summary>A teacher with every weight moved off its initial value (the zero output conv included), so it predicts something.</summary>
    public static Teacher Teacher(long seed)
    {
        random.manual_seed(seed);
        var teacher = new Teacher(TeacherConfig());
        Tiny.Perturb(teacher.Net, seed);
        return teacher;
    }

    public static EditorConfig EditorConfig(DistillSettings? settings = null) => new()
    {
        Attribute = PortraitAttributes.Smiling,
        ImageSize = Size,
        Channels = 16,
        ResBlocks = 1,
        Settings = settings ?? new DistillSettings(),
    };

    /// <summary>Uniform images in [-1, 1] from an explicit generator.</summary>
    public static Tensor Images(long seed, params long[] shape) => rand(shape, generator: new Generator((ulong)seed)) * 2 - 1;

    /// <summary>+1/-1 labels (N, 5) with the first attribute (smiling) absent everywhere and the others alternating.</summary>
    public static Tensor LabelsLackingSmiling(int n)
    {
        var v = new float[n * PortraitAttributes.All.Count];
        for (int i = 0; i < n; i++)
            for (int a = 0; a < PortraitAttributes.All.Count; a++)
                v[i * PortraitAttributes.All.Count + a] = a == 0 ? -1 : ((i + a) % 2 == 0 ? 1 : -1);
        return tensor(v, [n, PortraitAttributes.All.Count]);
    }

    /// <summary>Deep copies of a module's parameters, by name.</summary>
    public static Dictionary<string, Tensor> Snapshot(nn.Module module)
    {
        using var _ = no_grad();
        return module.named_parameters().ToDictionary(p => p.name, p => p.parameter.detach().clone());
    }

    public static List<string> Changed(nn.Module module, Dictionary<string, Tensor> before) =>
        module.named_parameters().Where(p => !Tiny.BitEqual(p.parameter.detach(), before[p.name])).Select(p => p.name).ToList();
}

/// <summary>A tiny latent teacher: a 16 px autoencoder to 4x4x4 latents and a UNet on them, every weight moved off its initial value.</summary>
public static class LatentSupport
{
    public static AutoencoderConfig AutoencoderConfig() => new() { BlockOutChannels = [8, 16, 16], LayersPerBlock = 1, NormNumGroups = 4, SampleSize = MethodSupport.Size, ScalingFactor = 0.5 };

    public static TeacherConfig TeacherConfig() => new()
    {
        Kind = Sdd.Ml.Diffusion.Teacher.KindLatentDdpm,
        AttributeNames = [.. PortraitAttributes.All],
        Unet = new UNetConfig { ImageSize = MethodSupport.Size / 4, InChannels = 4, Channels = [16, 32], AttentionBelow = 2, Heads = 2, Attributes = PortraitAttributes.All.Count },
    };

    public static Teacher Teacher(long seed)
    {
        random.manual_seed(seed);
        var ae = new Autoencoder(AutoencoderConfig());
        Tiny.Perturb(ae.Net, seed + 1);
        var teacher = new Teacher(TeacherConfig(), autoencoder: ae);
        Tiny.Perturb(teacher.Net, seed);
        return teacher;
    }
}
