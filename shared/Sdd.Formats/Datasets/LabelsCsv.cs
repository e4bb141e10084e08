using System.Text;

namespace Sdd.Formats.Datasets;

/// <summary>One row of labels.csv: an image name and one label per attribute (+1 present, -1 absent, 0 unknown).</summary>
public sealed record LabelsRow(string Image, sbyte[] Labels);

/// <summary>
/// A CelebA-style attribute table, the one parser of labels.csv for the API and the method. Header
/// <c>image,&lt;attribute&gt;,...</c>, then one row per image with a label per attribute: <c>1</c> or <c>+1</c>
/// (present), <c>-1</c> (absent), or <c>0</c> (unknown: the teacher sees that attribute as unstated, the judge skips
/// it, and the row is not an image lacking the attribute). UTF-8 with or without a byte-order mark, LF or CRLF lines,
/// cells trimmed; blank lines are skipped.
/// </summary>
public sealed record LabelsCsv(IReadOnlyList<string> Attributes, IReadOnlyList<LabelsRow> Rows)
{
    public const string FileName = "labels.csv";
    public const long MaxBytes = 64L << 20;
    /// <summary>An image name's longest UTF-8 form (an object key's limit).</summary>
    public const int MaxNameBytes = 1024;

    public IEnumerable<string> Images => Rows.Select(r => r.Image);

    public int AttributeIndex(string attribute)
    {
        for (int i = 0; i < Attributes.Count; i++) if (Attributes[i] == attribute) return i;
        return -1;
    }

    /// <summary>Parses UTF-8 bytes (a byte-order mark is skipped); <paramref name="source"/> names the file in errors.</summary>
    public static LabelsCsv Parse(byte[] content, string source = FileName) => Parse(Encoding.UTF8.GetString(content), source);

    /// <summary>Parses and validates; throws <see cref="InvalidDataException"/> naming the source and line ("labels.csv:3: ...").</summary>
    public static LabelsCsv Parse(string text, string source = FileName)
    {
        var lines = text.TrimStart('\uFEFF').Split('\n').Select(l => l.TrimEnd('\r')).ToList();
        while (lines.Count > 0 && lines[^1].Trim().Length == 0) lines.RemoveAt(lines.Count - 1);
        if (lines.Count == 0) throw new InvalidDataException($"{source}: empty file, expected a header 'image,<attribute>,...'.");

        var header = lines[0].Split(',').Select(h => h.Trim()).ToArray();
        if (header.Length < 2 || !header[0].Equals("image", StringComparison.OrdinalIgnoreCase))
            throw new InvalidDataException($"{source}:1: header must be 'image,<attribute>,...'; it is '{Shorten(lines[0])}'.");
        var attributes = header[1..];
        if (attributes.Any(a => a.Length == 0)) throw new InvalidDataException($"{source}:1: an attribute name is empty.");
        if (attributes.GroupBy(a => a).FirstOrDefault(g => g.Count() > 1) is { } dup)
            throw new InvalidDataException($"{source}:1: attribute '{dup.Key}' appears twice.");

        var rows = new List<LabelsRow>(lines.Count - 1);
        var seen = new HashSet<string>(StringComparer.Ordinal);
        for (int n = 1; n < lines.Count; n++)
        {
            if (lines[n].Trim().Length == 0) continue;
            var cells = lines[n].Split(',').Select(c => c.Trim()).ToArray();
            if (cells.Length != header.Length)
                throw new InvalidDataException($"{source}:{n + 1}: {cells.Length} columns, the header has {header.Length}.");
            var image = cells[0];
            if (NameProblem(image) is { } problem) throw new InvalidDataException($"{source}:{n + 1}: bad image name '{Shorten(image)}' ({problem}).");
            if (!seen.Add(image)) throw new InvalidDataException($"{source}:{n + 1}: image '{image}' is listed twice.");
            var labels = new sbyte[attributes.Length];
            for (int a = 0; a < attributes.Length; a++)
                labels[a] = cells[a + 1] switch
                {
                    "1" or "+1" => 1,
                    "-1" => -1,
                    "0" => 0,
                    var v => throw new InvalidDataException($"{source}:{n + 1}: value '{Shorten(v)}' for '{attributes[a]}' must be 1 or -1 (or 0 for unknown)."),
                };
            rows.Add(new LabelsRow(image, labels));
        }
        if (rows.Count == 0) throw new InvalidDataException($"{source}: no rows (it lists no images).");
        return new LabelsCsv(attributes, rows);
    }

    /// <summary>
    /// Why an image name cannot be used, or null: a relative path of non-empty segments, none '.' or '..', no backslash
    /// or control character, at most <see cref="MaxNameBytes"/> bytes (so it is a file under images/ and an object key).
    /// </summary>
    public static string? NameProblem(string name)
    {
        if (name.Length == 0) return "it is empty";
        if (Encoding.UTF8.GetByteCount(name) > MaxNameBytes) return $"it is longer than {MaxNameBytes} bytes";
        if (name.Any(char.IsControl)) return "it contains a control character";
        if (name.Contains('\\')) return "it contains a backslash";
        if (name[0] == '/') return "it starts with '/'";
        foreach (var segment in name.Split('/'))
        {
            if (segment.Length == 0) return "it has an empty segment";
            if (segment is "." or "..") return $"it has a '{segment}' segment";
        }
        return null;
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
