using System.Globalization;
using Sdd.Ingest.Apis;

namespace Sdd.Ingest.Dashboard;

/// <summary>
/// The geometry of an editor version's indicator plot, drawn as inline SVG by <c>Registry/_IndicatorCurve.cshtml</c>: HQS,
/// entropy and norm against the timestep t, each scaled to its own range (their units differ), with the selected timesteps
/// marked and labelled in real text.
/// </summary>
public sealed class IndicatorChart
{
    public const int Width = 680, Height = 300;
    public const int Left = 48, Right = 16, Top = 48, Bottom = 64;
    public const int PlotWidth = Width - Left - Right, PlotHeight = Height - Top - Bottom;

    /// <summary>One curve: its polyline points, its range, and how it is told apart (colour and dash, not colour alone).</summary>
    public sealed record Series(string Name, string CssClass, string Points, double Min, double Max);
    public sealed record Tick(double X, int T);
    /// <summary>A selected timestep: its line, its dot on the HQS curve (when measured there) and its label's row.</summary>
    public sealed record Marker(int T, double X, double? HqsY, double LabelY);

    public required IReadOnlyList<Series> Curves { get; init; }
    public required IReadOnlyList<Tick> Ticks { get; init; }
    public required IReadOnlyList<Marker> Selected { get; init; }
    public int MaxT { get; init; }

    public static IndicatorChart From(IReadOnlyList<IndicatorPointDto> points, IReadOnlyList<int> selected)
    {
        var ordered = points.OrderBy(p => p.T).ToList();
        var maxT = (int)Math.Ceiling(Math.Max(1000, ordered.Count > 0 ? ordered[^1].T + 1 : 0) / 100.0) * 100;
        double X(int t) => Left + PlotWidth * t / (double)maxT;

        Series Curve(string name, string css, Func<IndicatorPointDto, double> value)
        {
            var values = ordered.Select(value).Where(double.IsFinite).ToList();
            var (min, max) = values.Count == 0 ? (0, 1) : (values.Min(), values.Max());
            var points = string.Join(' ', ordered.Where(p => double.IsFinite(value(p)))
                .Select(p => $"{Num(X(p.T))},{Num(Y(value(p), min, max))}"));
            return new Series(name, css, points, min, max);
        }

        var hqs = ordered.ToDictionary(p => p.T, p => p.Hqs);
        var (hqsMin, hqsMax) = hqs.Count == 0 ? (0.0, 1.0) : (hqs.Values.Min(), hqs.Values.Max());
        var markers = new List<Marker>();
        double? lastX = null;
        var row = 0;
        foreach (var t in selected.Distinct().Order())
        {
            var x = X(t);
            row = lastX is { } previous && x - previous < 30 ? 1 - row : 0; // neighbours close together alternate rows
            markers.Add(new Marker(t, x, hqs.TryGetValue(t, out var h) && double.IsFinite(h) ? Y(h, hqsMin, hqsMax) : null, Top - 26 + row * 14));
            lastX = x;
        }
        return new IndicatorChart
        {
            Curves = [Curve("HQS", "curve-hqs", p => p.Hqs), Curve("entropy", "curve-entropy", p => p.Entropy), Curve("norm", "curve-norm", p => p.Norm)],
            Ticks = Enumerable.Range(0, maxT / 100 + 1).Select(i => new Tick(X(i * 100), i * 100)).ToList(),
            Selected = markers,
            MaxT = maxT,
        };
    }

    /// <summary>Plot y of a value scaled to its curve's range (the top is the maximum).</summary>
    private static double Y(double value, double min, double max) =>
        Top + PlotHeight * (max > min ? 1 - (value - min) / (max - min) : 0.5);

    public static string Num(double value) => value.ToString("0.#", CultureInfo.InvariantCulture);
}
