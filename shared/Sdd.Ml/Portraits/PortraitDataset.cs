using System.Globalization;
using System.Text;
using Sdd.Ml.Data;

namespace Sdd.Ml.Portraits;

/// <summary>
/// Writes a labeled portrait set in the CelebA layout: <c>images/NNNNNN.png</c>, <c>labels.csv</c>
/// (header <c>image,attr,...</c>, values 1/-1) and <c>counterfactuals/&lt;attr&gt;/NNNNNN.png</c>.
/// Portrait <c>i</c> depends only on (seed, i), so any count is a prefix of a larger one.
/// </summary>
public static class PortraitDataset
{
    public static Portrait Portrait(int seed, int index) => Portraits.Portrait.Random(new Random(Mix(seed, index)));

    /// <summary>A fixed integer hash of (seed, index); HashCode.Combine is randomised per process and must not be used here.</summary>
    private static int Mix(int seed, int index)
    {
        ulong z = unchecked((ulong)(uint)seed * 0x9E3779B97F4A7C15UL + (ulong)(uint)index + 0x5DDUL);
        z = unchecked((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9UL);
        z = unchecked((z ^ (z >> 27)) * 0x94D049BB133111EBUL);
        return (int)((z ^ (z >> 31)) & 0x7FFFFFFF);
    }

    public static string FileName(int index) => $"{index:D6}.png";

    public static void Write(string outDir, int count, int size, int seed, bool counterfactuals = true, IProgress<int>? progress = null)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(count, 1);
        Directory.CreateDirectory(Path.Combine(outDir, "images"));
        if (counterfactuals)
            foreach (var a in PortraitAttributes.All) Directory.CreateDirectory(Path.Combine(outDir, "counterfactuals", a));

        var rows = new string[count];
        int done = 0;
        Parallel.For(0, count, new ParallelOptions { MaxDegreeOfParallelism = Environment.ProcessorCount }, i =>
        {
            var p = Portrait(seed, i);
            var name = FileName(i);
            ImageCodec.SavePng(PortraitRenderer.RenderRgb24(p, size), size, size, Path.Combine(outDir, "images", name));
            if (counterfactuals)
                foreach (var a in PortraitAttributes.All)
                    ImageCodec.SavePng(PortraitRenderer.RenderRgb24(p.Flip(a), size), size, size, Path.Combine(outDir, "counterfactuals", a, name));
            rows[i] = name + "," + string.Join(",", PortraitAttributes.All.Select(a => p.Get(a) ? "1" : "-1"));
            var n = Interlocked.Increment(ref done);
            if (n % 256 == 0) progress?.Report(n);
        });

        var csv = new StringBuilder();
        csv.Append("image,").AppendJoin(',', PortraitAttributes.All).Append('\n');
        foreach (var r in rows) csv.Append(r).Append('\n');
        File.WriteAllText(Path.Combine(outDir, "labels.csv"), csv.ToString());
        progress?.Report(count);
        File.WriteAllText(Path.Combine(outDir, "dataset.json"),
            string.Create(CultureInfo.InvariantCulture, $$"""{"kind":"synthetic-portraits","count":{{count}},"size":{{size}},"seed":{{seed}},"counterfactuals":{{(counterfactuals ? "true" : "false")}}}""") + "\n");
    }
}
