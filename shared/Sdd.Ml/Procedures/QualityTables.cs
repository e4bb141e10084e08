using System.Globalization;
using System.Text;

namespace Sdd.Ml.Procedures;

/// <summary>The quality benchmark's tables as Markdown, generated from its report only (docs/results.md quotes them).</summary>
public static class QualityTables
{
    public static string Markdown(QualityBenchReport r)
    {
        var sb = new StringBuilder();
        var s = r.Settings;
        var attributes = s.Attributes.Where(a => r.Summary.Any(x => x.Attribute == a)).ToList();
        sb.AppendLine(CultureInfo.InvariantCulture, $"Teacher {r.Teacher} (step {r.TeacherStep}), {r.Judge}; {s.TestImages} test images lacking the attribute, {s.DoubleEditImages} having it " +
                                                    $"(double edit), KID/FD reference {s.ReferenceImages} other test faces with it; seeds {string.Join(", ", s.Seeds)}; " +
                                                    $"editors {s.Distill.Steps} steps, target editability {s.Distill.TargetEditability:P0}; {r.ElapsedMinutes:0} min of runs.");
        sb.AppendLine();
        sb.AppendLine(r.Protocol);
        sb.AppendLine();

        if (r.Findings.Count > 0)
        {
            sb.AppendLine("**SDD-HQS against the targets** (mean over seeds):");
            sb.AppendLine();
            sb.AppendLine("| attribute | edit % (>= 90) | in-region dB (>= no edit + 3) | outside dB (>= 40) | double edit dB (>= 35) | HQS timesteps | rank corr. HQS~norm |");
            sb.AppendLine("| --- | ---: | ---: | ---: | ---: | --- | ---: |");
            foreach (var f in r.Findings)
            {
                var hqs = Row(r, f.Attribute, "sdd-hqs")!; var none = Row(r, f.Attribute, "no edit")!;
                string Mark(string key) => f.TargetsMet.TryGetValue(key, out var ok) && ok ? "yes" : "**no**";
                sb.AppendLine(CultureInfo.InvariantCulture,
                    $"| {f.Attribute} | {Pct(hqs, "editability")} {Mark("editability >= 90 %")} | {Num(hqs, "psnrInRegion")} vs {Num(none, "psnrInRegion")} {Mark("in-region >= no edit + 3 dB")} " +
                    $"| {Num(hqs, "psnrOutsideRegion")} {Mark("outside >= 40 dB")} | {Num(hqs, "doublePsnrSource")} {Mark("double edit >= 35 dB")} " +
                    $"| {string.Join(",", f.HqsSelected)} | {f.HqsNormRankCorrelation?.ToString("0.00", CultureInfo.InvariantCulture) ?? "-"} |");
            }
            sb.AppendLine();
        }

        var policies = s.Policies.Select(p => "sdd-" + p.Replace(':', '-')).ToList();
        if (attributes.Any(a => policies.Count(p => Row(r, a, p) is not null) > 1))
        {
            sb.AppendLine("**Timestep policies at matched editability** (each calibrated to the same target on validation; test figures, mean ± std over seeds):");
            sb.AppendLine();
            sb.AppendLine("| attribute | policy | scale | edit % | in-region dB | outside dB | double edit dB | KID x1e3 |");
            sb.AppendLine("| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |");
            foreach (var a in attributes)
            foreach (var p in policies)
                if (Row(r, a, p) is { } x)
                    sb.AppendLine(CultureInfo.InvariantCulture, $"| {a} | {p[4..]} | {Num(x, "scale", "0.#")} | {Pct(x, "editability")} | {Num(x, "psnrInRegion")} | {Num(x, "psnrOutsideRegion")} | {Num(x, "doublePsnrSource")} | {Num(x, "kid", "0.00", 1000)} |");
            sb.AppendLine();
        }

        foreach (var a in attributes)
        {
            var f = r.Findings.FirstOrDefault(x => x.Attribute == a);
            var matched = f?.QualityMatchedSdedit is { } m ? $" (quality-matched SDEdit: {m})" : "";
            sb.AppendLine(CultureInfo.InvariantCulture, $"**{a}**{matched}:");
            sb.AppendLine();
            bool sharp = r.Summary.Any(x => x.Attribute == a && x.Figures.ContainsKey("sharpness"));
            // The mask gate each SDD editor was evaluated with (chosen on validation); reports made before it was recorded have no column.
            bool gated = r.Summary.Any(x => x.Attribute == a && x.Figures.ContainsKey("maskGate"));
            sb.AppendLine("| method | scale | edit % | in-region dB | outside dB | whole to cf dB | double edit dB | double kept % | KID x1e3 | FD | others kept % | NFE | ms/img |" +
                          (sharp ? " sharpness |" : "") + (gated ? " mask gate |" : ""));
            sb.AppendLine("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |" + (sharp ? " ---: |" : "") + (gated ? " ---: |" : ""));
            foreach (var x in r.Summary.Where(x => x.Attribute == a))
                sb.AppendLine(CultureInfo.InvariantCulture,
                    $"| {x.Method} | {Num(x, "scale", "0.#")} | {Pct(x, "editability")} | {Num(x, "psnrInRegion")} | {Num(x, "psnrOutsideRegion")} | {Num(x, "psnrCounterfactual")} " +
                    $"| {Num(x, "doublePsnrSource")} | {Pct(x, "doubleKept")} | {Num(x, "kid", "0.00", 1000)} | {Num(x, "fd")} | {Pct(x, "othersKept")} | {Num(x, "nfe", "0")} | {Num(x, "msPerImage", "0.0")} |" +
                    $"{(sharp ? $" {Num(x, "sharpness", "0.00")} |" : "")}{(gated ? $" {Num(x, "maskGate", "0.##")} |" : "")}");
            sb.AppendLine();
        }
        return sb.ToString();
    }

    public const string BeginMarker = "<!-- bench-quality:begin (generated from docs/results/bench-quality.json by ./sdd bench quality --tables-only --readme docs/results.md) -->";
    public const string EndMarker = "<!-- bench-quality:end -->";

    /// <summary>The text with the block between <see cref="BeginMarker"/> and <see cref="EndMarker"/> replaced by <paramref name="tables"/>.</summary>
    public static string ReplaceBlock(string text, string tables)
    {
        int begin = text.IndexOf("<!-- bench-quality:begin", StringComparison.Ordinal), end = text.IndexOf(EndMarker, StringComparison.Ordinal);
        if (begin < 0 || end < begin) throw new InvalidDataException($"The file has no block between '{BeginMarker}' and '{EndMarker}' to replace.");
        return text[..begin] + BeginMarker + "\n\n" + tables.TrimEnd() + "\n\n" + text[end..];
    }

    private static QualitySummary? Row(QualityBenchReport r, string attribute, string method) =>
        r.Summary.FirstOrDefault(x => x.Attribute == attribute && x.Method == method);

    private static string Num(QualitySummary x, string key, string format = "0.00", double factor = 1) =>
        x.Figures.TryGetValue(key, out var v)
            ? (v.N > 1 && v.Std > 0 ? $"{(v.Mean * factor).ToString(format, CultureInfo.InvariantCulture)} ± {(v.Std * factor).ToString(format, CultureInfo.InvariantCulture)}"
                                    : (v.Mean * factor).ToString(format, CultureInfo.InvariantCulture))
            : "-";

    private static string Pct(QualitySummary x, string key) => Num(x, key, "0.0", 100);
}
