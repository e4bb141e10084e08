using System.Text;

namespace Sdd.Ingest.Datasets;

/// <summary>A CelebA-style attribute table: header <c>image,&lt;attr&gt;…</c>, then one row per image with +1/-1 per attribute.</summary>
public sealed record LabelsCsv(IReadOnlyList<string> Attributes, IReadOnlyList<string> Images)
{
    public const string FileName = KeyLayout.LabelsFile;
    public const long MaxBytes = 64L << 20;

    /// <summary>Parses and validates; throws <see cref="InvalidDataException"/> saying which line is wrong.</summary>
    public static LabelsCsv Parse(byte[] content)
    {
        var text = Encoding.UTF8.GetString(content).TrimStart('\uFEFF');
        var lines = text.Split('\n').Select(l => l.TrimEnd('\r')).ToList();
        while (lines.Count > 0 && lines[^1].Trim().Length == 0) lines.RemoveAt(lines.Count - 1);
        if (lines.Count == 0) throw new InvalidDataException("labels.csv is empty.");

        var header = lines[0].Split(',').Select(h => h.Trim()).ToArray();
        if (header.Length < 2 || !header[0].Equals("image", StringComparison.OrdinalIgnoreCase))
            throw new InvalidDataException($"labels.csv header must be 'image,<attribute>,...'; it is '{Shorten(lines[0])}'.");
        var attributes = header[1..];
        if (attributes.FirstOrDefault(a => a.Length == 0) is not null)
            throw new InvalidDataException("labels.csv header has an empty attribute name.");
        if (attributes.GroupBy(a => a).FirstOrDefault(g => g.Count() > 1) is { } dup)
            throw new InvalidDataException($"labels.csv header names the attribute '{dup.Key}' twice.");

        var images = new List<string>(lines.Count - 1);
        var seen = new HashSet<string>(StringComparer.Ordinal);
        for (int n = 1; n < lines.Count; n++)
        {
            if (lines[n].Trim().Length == 0) continue;
            var cells = lines[n].Split(',').Select(c => c.Trim()).ToArray();
            if (cells.Length != header.Length)
                throw new InvalidDataException($"labels.csv line {n + 1} has {cells.Length} columns, the header {header.Length}.");
            var image = cells[0];
            try { ObjectKey.Validate(image); }
            catch (ArgumentException e) { throw new InvalidDataException($"labels.csv line {n + 1}: image name '{Shorten(image)}' is not usable ({e.Message})."); }
            if (!seen.Add(image)) throw new InvalidDataException($"labels.csv line {n + 1}: image '{image}' is listed twice.");
            for (int c = 1; c < cells.Length; c++)
                if (cells[c] is not ("1" or "+1" or "-1"))
                    throw new InvalidDataException($"labels.csv line {n + 1}: value '{Shorten(cells[c])}' for '{attributes[c - 1]}' must be 1 or -1.");
            images.Add(image);
        }
        if (images.Count == 0) throw new InvalidDataException("labels.csv lists no images.");
        return new LabelsCsv(attributes, images);
    }

    /// <summary>The listed images that are not in <paramref name="present"/>, as a sentence (null when none is missing).</summary>
    public string? Missing(IReadOnlySet<string> present)
    {
        var missing = Images.Where(i => !present.Contains(i)).ToList();
        return missing.Count == 0 ? null
            : $"{missing.Count} image(s) listed in labels.csv are not under images/: {string.Join(", ", missing.Take(5))}{(missing.Count > 5 ? ", ..." : "")}.";
    }

    private static string Shorten(string s) => s.Length > 80 ? s[..80] + "..." : s;
}
