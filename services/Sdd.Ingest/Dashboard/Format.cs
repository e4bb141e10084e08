using System.Globalization;

namespace Sdd.Ingest.Dashboard;

/// <summary>How the dashboard writes times, rates and numbers (invariant culture: the service runs with invariant globalization).</summary>
public static class Format
{
    public static string Time(DateTimeOffset? at) => at is { } t ? t.UtcDateTime.ToString("yyyy-MM-dd HH:mm:ss 'UTC'", CultureInfo.InvariantCulture) : "—";

    public static string Iso(DateTimeOffset at) => at.UtcDateTime.ToString("o", CultureInfo.InvariantCulture);

    public static string Duration(double? seconds)
    {
        if (seconds is not { } s || !double.IsFinite(s)) return "—";
        var span = TimeSpan.FromSeconds(Math.Max(0, Math.Round(s)));
        return span.TotalHours >= 1 ? $"{(int)span.TotalHours} h {span.Minutes:D2} min"
            : span.TotalMinutes >= 1 ? $"{span.Minutes} min {span.Seconds:D2} s"
            : $"{span.Seconds} s";
    }

    public static string Age(DateTimeOffset? at, DateTimeOffset now) => at is { } t ? Duration((now - t).TotalSeconds) + " ago" : "never";

    public static string Rate(double? imagesPerSecond) =>
        imagesPerSecond is { } r ? r.ToString(r >= 100 ? "0" : r >= 10 ? "0.0" : "0.00", CultureInfo.InvariantCulture) + " img/s" : "—";

    public static string Number(double value) =>
        Math.Abs(value) >= 1000 || value == Math.Round(value) ? value.ToString("0.##", CultureInfo.InvariantCulture) : value.ToString("0.####", CultureInfo.InvariantCulture);

    /// <summary>A curve's range with as many digits as it takes to tell its ends apart (at most 6 significant).</summary>
    public static string Range(double min, double max)
    {
        for (var digits = 3; ; digits++)
        {
            string F(double v) => v.ToString("G" + digits, CultureInfo.InvariantCulture);
            if (F(min) != F(max) || digits >= 6) return $"{F(min)} – {F(max)}";
        }
    }

    /// <summary>Whole percent, rounded down: 100 % only when all is done.</summary>
    public static int Percent(int part, int total) => total <= 0 ? 0 : (int)Math.Floor(100.0 * part / total);

    public static string Short(Guid id) => id.ToString("N")[..8];
}
