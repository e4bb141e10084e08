using Sdd.Ml.Data;
using Sdd.Ml.Portraits;
using Sdd.Ml.Torch;

namespace Sdd.Ml.Tests;

/// <summary>Loads LibTorch once and pins the thread count, so timings and bits are steady.</summary>
public sealed class TorchFixture
{
    public const int Threads = 1;

    public TorchFixture() => TorchRuntime.ConfigureThreads(Threads);
}

[CollectionDefinition(Name)]
public sealed class TorchCollection : ICollectionFixture<TorchFixture>
{
    public const string Name = "torch";
}

/// <summary>A fresh folder under the temp directory, deleted on dispose.</summary>
public sealed class TempDir : IDisposable
{
    public string Path { get; } = System.IO.Path.Combine(System.IO.Path.GetTempPath(), "sdd-ml-tests-" + Guid.NewGuid().ToString("N"));

    public TempDir() => Directory.CreateDirectory(Path);

    public string this[string relative] => System.IO.Path.Combine(Path, relative);

    public void Dispose()
    {
        try { Directory.Delete(Path, recursive: true); } catch (IOException) { } catch (UnauthorizedAccessException) { }
    }
}

public static class Tiny
{
    /// <summary>Portraits <paramref name="start"/>.. rendered in memory: images (N, 3, S, S) in [-1, 1] and labels (N, 5) of +1/-1.</summary>
    public static (Tensor Images, Tensor Labels) Portraits(int seed, int start, int count, int size)
    {
        using var scope = NewDisposeScope();
        var images = new List<Tensor>();
        var labels = new float[count * PortraitAttributes.All.Count];
        for (int i = 0; i < count; i++)
        {
            var p = PortraitDataset.Portrait(seed, start + i);
            images.Add(ImageCodec.ToTensor(PortraitRenderer.RenderRgb24(p, size), size, size));
            for (int a = 0; a < PortraitAttributes.All.Count; a++) labels[i * PortraitAttributes.All.Count + a] = p.Get(PortraitAttributes.All[a]) ? 1 : -1;
        }
        var x = stack(images);
        var y = tensor(labels, [count, PortraitAttributes.All.Count]);
        return (x.MoveToOuterDisposeScope(), y.MoveToOuterDisposeScope());
    }

    public static bool Finite(Tensor t) => t.isfinite().all().item<bool>();

    public static bool BitEqual(Tensor a, Tensor b) => a.shape.SequenceEqual(b.shape) && a.eq(b).all().item<bool>();

    /// <summary>Moves every parameter off its initial value, so that a zero-initialised output layer no longer hides the network.</summary>
    public static void Perturb(nn.Module module, long seed, double scale = 0.05)
    {
        using var _ = no_grad();
        using var scope = NewDisposeScope();
        var g = new Generator((ulong)seed);
        foreach (var p in module.parameters()) p.add_(randn(p.shape, generator: g) * scale);
    }
}
