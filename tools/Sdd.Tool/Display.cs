namespace Sdd.Tool;

/// <summary>How the tool shows things to people: tables, numbers, and progress (live bars on a terminal, a line now and then elsewhere).</summary>
internal static class Display
{
    public static string Esc(object? value) => Markup.Escape(Convert.ToString(value, CultureInfo.InvariantCulture) ?? "");

    public static string When(DateTimeOffset? at) => at is { } t ? t.ToLocalTime().ToString("yyyy-MM-dd HH:mm", CultureInfo.InvariantCulture) : "-";

    public static string Duration(double? seconds)
    {
        if (seconds is not { } s || double.IsNaN(s) || double.IsInfinity(s) || s < 0) return "-";
        var t = TimeSpan.FromSeconds(Math.Round(s));
        return t.TotalHours >= 1 ? $"{(int)t.TotalHours}:{t.Minutes:00}:{t.Seconds:00}" : $"{t.Minutes}:{t.Seconds:00}";
    }

    public static string Number(double? value, string format = "0.##") => value is { } v ? v.ToString(format, CultureInfo.InvariantCulture) : "-";

    public static string Bytes(long bytes) => bytes switch
    {
        >= 1L << 30 => $"{bytes / (double)(1L << 30):0.0} GiB",
        >= 1L << 20 => $"{bytes / (double)(1L << 20):0.0} MiB",
        >= 1L << 10 => $"{bytes / 1024.0:0.0} KiB",
        _ => $"{bytes} B",
    };

    public static Table Table(params string[] columns)
    {
        var table = new Table().Border(TableBorder.Simple);
        foreach (var c in columns) table.AddColumn(new TableColumn(c));
        return table;
    }

    /// <summary>
    /// Runs <paramref name="work"/> with a progress bar on stderr; <paramref name="work"/> reports (value, of, detail).
    /// A terminal gets a live Spectre bar; a pipe or file a line at most every <see cref="ToolContext.ReportInterval"/> and at the end.
    /// </summary>
    public static async Task<T> WithProgressAsync<T>(Invocation inv, string title, Func<Action<double, double, string>, Task<T>> work)
    {
        if (inv.Tool.Interactive)
        {
            return await new Progress(inv.Err)
                .AutoClear(false)
                .HideCompleted(false)
                .Columns(new TaskDescriptionColumn { Alignment = Justify.Left }, new ProgressBarColumn(), new PercentageColumn(), new ElapsedTimeColumn())
                .StartAsync(async ctx =>
                {
                    var task = ctx.AddTask(Esc(title), maxValue: 1);
                    var gate = new object();
                    return await work((value, max, detail) =>
                    {
                        lock (gate)
                        {
                            task.MaxValue = Math.Max(max, 1);
                            task.Value = Math.Min(value, task.MaxValue);
                            task.Description = $"{Esc(title)} [grey]{Esc(detail)}[/]";
                        }
                    });
                });
        }
        var last = DateTime.MinValue;
        var lastLine = "";
        var lineGate = new object();
        return await work((value, max, detail) =>
        {
            lock (lineGate)
            {
                var line = $"{title}: {detail}";
                var now = DateTime.UtcNow;
                bool end = max > 0 && value >= max;
                if (line == lastLine || (!end && now - last < inv.Tool.ReportInterval)) return;
                (last, lastLine) = (now, line);
                inv.Tool.Error.WriteLine(line);
            }
        });
    }
}
