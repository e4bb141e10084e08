using System.Diagnostics;
using Sdd.Ml.Portraits;

namespace Sdd.Cli;

public static class DatasetCommands
{
    public static int Portraits(Options o)
    {
        int count = o.Int("count", 2000, 1, 10_000_000), size = o.Int("size", 32, 8, 1024), seed = o.Int("seed", 1);
        var outDir = o.Required("out");
        bool cf = !o.Has("no-counterfactuals");
        o.EnsureAllUsed();
        var sw = Stopwatch.StartNew();
        var bar = new ProgressBar("portraits");
        PortraitDataset.Write(outDir, count, size, seed, cf, new Progress<int>(n => bar.Report(n, count, "", n / Math.Max(1e-9, sw.Elapsed.TotalSeconds))));
        Console.WriteLine($"wrote {count} portraits of {size}x{size} (seed {seed}{(cf ? ", with counterfactuals" : "")}) to {outDir} in {sw.Elapsed.TotalSeconds:0.0} s");
        return 0;
    }

    /// <summary>A contact sheet: one column per portrait; rows: the original, then each counterfactual.</summary>
    public static int Sheet(Options o)
    {
        var dir = o.Required("dataset");
        int count = o.Int("count", 8, 1, 64), scale = o.Int("scale", 4, 1, 16);
        var outPath = o.Required("out");
        o.EnsureAllUsed();
        var names = Enumerable.Range(0, count).Select(PortraitDataset.FileName).ToArray();
        var rows = new List<string> { Path.Combine(dir, "images") };
        rows.AddRange(PortraitAttributes.All.Select(a => Path.Combine(dir, "counterfactuals", a)).Where(Directory.Exists));
        using var scope = NewDisposeScope();
        int size;
        using (var first = Sdd.Ml.Data.ImageCodec.Decode(File.ReadAllBytes(Path.Combine(rows[0], names[0])))) size = first.Width;
        var tiles = rows.SelectMany(r => names.Select(n => Sdd.Ml.Data.ImageCodec.LoadTensor(Path.Combine(r, n), size))).ToArray();
        var batch = stack(tiles);
        if (scale > 1) batch = nn.functional.interpolate(batch, scale_factor: [scale, scale], mode: InterpolationMode.Nearest);
        Sdd.Ml.Data.ImageCodec.SavePng(Sdd.Ml.Data.ImageCodec.Grid(batch, count, 2), outPath);
        Console.WriteLine($"sheet of {count} portraits x {rows.Count} rows ({string.Join(", ", rows.Select(Path.GetFileName))}) -> {outPath}");
        return 0;
    }
}
