using System.Diagnostics;
using System.Security.Cryptography;
using Sdd.Ml.Portraits;

namespace Sdd.Ml.Tests;

public sealed class PortraitTests
{
    private const int Size = 32;

    [Fact]
    public void Same_seed_and_index_render_identical_bytes_and_another_seed_differs()
    {
        for (int i = 0; i < 5; i++)
        {
            var a = PortraitDataset.Portrait(7, i);
            var b = PortraitDataset.Portrait(7, i);
            Assert.Equal(a, b);
            Assert.Equal(PortraitRenderer.RenderRgb24(a, Size), PortraitRenderer.RenderRgb24(b, Size));

            var other = PortraitRenderer.RenderRgb24(PortraitDataset.Portrait(8, i), Size);
            Assert.NotEqual(PortraitRenderer.RenderRgb24(a, Size), other);
        }
        Assert.NotEqual(PortraitRenderer.RenderRgb24(PortraitDataset.Portrait(7, 0), Size), PortraitRenderer.RenderRgb24(PortraitDataset.Portrait(7, 1), Size));
    }

    /// <summary>A digest of the first portraits of a seed: labels and rendered pixels.</summary>
    public static string Fingerprint(int seed, int count)
    {
        using var sha = SHA256.Create();
        for (int i = 0; i < count; i++)
        {
            var p = PortraitDataset.Portrait(seed, i);
            var px = PortraitRenderer.RenderRgb24(p, 16, supersample: 1);
            sha.TransformBlock(px, 0, px.Length, null, 0);
        }
        sha.TransformFinalBlock([], 0, 0);
        return Convert.ToHexString(sha.Hash!);
    }

    /// <summary>
    /// The dataset's promise is that portrait i depends only on (seed, i): a data set regenerated with the same
    /// seed, on another day or machine, must be the same. A fresh process must therefore produce the same portraits.
    /// </summary>
    [Fact]
    public void Same_seed_gives_the_same_portraits_in_a_fresh_process()
    {
        var here = Fingerprint(1, 8);
        var assembly = typeof(PortraitTests).Assembly.Location;
        var psi = new ProcessStartInfo(Environment.GetEnvironmentVariable("DOTNET_HOST_PATH") ?? "dotnet") { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        foreach (var a in new[] { "exec", assembly, "portrait-fingerprint", "1", "8" }) psi.ArgumentList.Add(a);
        using var child = Process.Start(psi)!;
        var stdout = child.StandardOutput.ReadToEnd();
        var stderr = child.StandardError.ReadToEnd();
        Assert.True(child.WaitForExit(60_000), "child process did not finish");
        Assert.True(child.ExitCode == 0, $"child failed ({child.ExitCode}): {stderr}");
        Assert.Equal(here, stdout.Trim());
    }

    /// <summary>
    /// The splits are disjoint: no portrait of the validation, test or confirmation seeds is one of the training data's
    /// (seed 1, as the shipped data set) or of another split, over more portraits than any benchmark reads.
    /// </summary>
    [Fact]
    public void The_training_validation_test_and_confirmation_portraits_are_disjoint()
    {
        var splits = new (string Name, int Seed, int Count)[]
        {
            ("training", 1, 8000), ("validation", Ml.Evaluation.HeldOutPortraits.ValidationSeed, 3000),
            ("test", Ml.Evaluation.HeldOutPortraits.HeldOutSeed, 3000), ("confirmation", Ml.Evaluation.HeldOutPortraits.ConfirmationSeed, 3000),
        };
        Assert.Equal(splits.Length, splits.Select(s => s.Seed).Distinct().Count());
        var seen = new Dictionary<Portrait, string>();
        foreach (var (name, seed, count) in splits)
            for (int i = 0; i < count; i++)
            {
                var p = PortraitDataset.Portrait(seed, i);
                if (seen.TryGetValue(p, out var other) && other != name) Assert.Fail($"{name} portrait {i} is also in {other}");
                seen.TryAdd(p, name);
            }
        Assert.True(seen.Count > 16_900, $"only {seen.Count} distinct portraits of 17,000");
    }

    public static TheoryData<string> Attributes() => new(PortraitAttributes.All);

    [Theory]
    [MemberData(nameof(Attributes))]
    public void Counterfactual_differs_only_inside_the_attribute_region(string attribute)
    {
        for (int i = 0; i < 20; i++)
        {
            var p = PortraitDataset.Portrait(3, i);
            var flipped = p.Flip(attribute);
            Assert.NotEqual(p.Get(attribute), flipped.Get(attribute));
            Assert.Equal(p, flipped.Flip(attribute));

            var a = PortraitRenderer.RenderRgb24(p, Size);
            var b = PortraitRenderer.RenderRgb24(flipped, Size);
            var (x0, y0, x1, y1) = PortraitRenderer.Region(p, attribute);
            // Pixel px covers [px, px + 1) / Size; allow one pixel beyond the box for anti-aliasing.
            int minX = (int)MathF.Floor(x0 * Size) - 1, maxX = (int)MathF.Floor(x1 * Size) + 1;
            int minY = (int)MathF.Floor(y0 * Size) - 1, maxY = (int)MathF.Floor(y1 * Size) + 1;
            int changed = 0;
            for (int py = 0; py < Size; py++)
            for (int px = 0; px < Size; px++)
            {
                int o = (py * Size + px) * 3;
                if (a[o] == b[o] && a[o + 1] == b[o + 1] && a[o + 2] == b[o + 2]) continue;
                changed++;
                Assert.True(px >= minX && px <= maxX && py >= minY && py <= maxY,
                    $"portrait {i}, {attribute}: pixel ({px},{py}) changed outside the region x {minX}..{maxX}, y {minY}..{maxY}");
            }
            Assert.True(changed > 0, $"portrait {i}: flipping {attribute} changed no pixel");
        }
    }

    [Fact]
    public void With_sets_one_attribute_and_keeps_the_identity()
    {
        var p = PortraitDataset.Portrait(5, 0);
        foreach (var a in PortraitAttributes.All)
        {
            var on = p.With(a, true);
            Assert.True(on.Get(a));
            foreach (var other in PortraitAttributes.All.Where(o => o != a)) Assert.Equal(p.Get(other), on.Get(other));
            Assert.Equal(p.Skin, on.Skin);
            Assert.Equal(p.HeadX, on.HeadX);
        }
        Assert.Throws<ArgumentException>(() => p.Get("freckles"));
        Assert.Throws<ArgumentException>(() => PortraitRenderer.Region(p, "freckles"));
    }

    [Fact]
    public void Attributes_are_roughly_fair_coins()
    {
        const int n = 400;
        foreach (var a in PortraitAttributes.All)
        {
            int on = Enumerable.Range(0, n).Count(i => PortraitDataset.Portrait(11, i).Get(a));
            Assert.InRange(on, n * 0.4, n * 0.6);
        }
    }
}
