using Spectre.Console;

namespace Sdd.Demo;

/// <summary>The demo's progress bars on stderr: live (Spectre.Console) on a terminal, a line every few seconds in a log.</summary>
public static class Bars
{
    private static readonly bool Live = !Console.IsErrorRedirected;
    private static readonly IAnsiConsole Err = AnsiConsole.Create(new AnsiConsoleSettings
    {
        Out = new AnsiConsoleOutput(Console.Error),
        Ansi = Live ? AnsiSupport.Detect : AnsiSupport.No,
        Interactive = Live ? InteractionSupport.Yes : InteractionSupport.No,
    });

    /// <summary>Runs <paramref name="work"/>, which reports (value, of, detail), under a bar named <paramref name="label"/>.</summary>
    public static async Task<T> RunAsync<T>(string label, Func<Action<double, double, string>, Task<T>> work)
    {
        var gate = new object();
        if (!Live)
        {
            var clock = Stopwatch.StartNew();
            TimeSpan? last = null; // no line yet
            var lastLine = "";
            return await work((value, max, detail) =>
            {
                lock (gate)
                {
                    var line = string.Create(CultureInfo.InvariantCulture, $"{label,-8} {value}/{max} {detail}");
                    if (line == lastLine || (value < max && last is { } at && clock.Elapsed - at < TimeSpan.FromSeconds(5))) return;
                    (last, lastLine) = (clock.Elapsed, line);
                    Console.Error.WriteLine(string.Create(CultureInfo.InvariantCulture, $"{line} {clock.Elapsed:mm\\:ss}"));
                }
            });
        }
        return await new Progress(Err)
            .AutoClear(false)
            .Columns(new TaskDescriptionColumn { Alignment = Justify.Left }, new ProgressBarColumn(), new PercentageColumn(), new ElapsedTimeColumn(), new RemainingTimeColumn())
            .StartAsync(async ctx =>
            {
                var task = ctx.AddTask(label, maxValue: 1);
                return await work((value, max, detail) =>
                {
                    lock (gate)
                    {
                        task.MaxValue = Math.Max(1, max);
                        task.Value = Math.Min(value, task.MaxValue);
                        task.Description = $"{label,-8} [grey]{Markup.Escape(detail)}[/]";
                    }
                });
            });
    }
}
