namespace Sdd.Demo;

/// <summary>A one-line progress bar on stderr (a line every few seconds when stderr is not a terminal).</summary>
public sealed class ProgressBar(string label)
{
    private readonly bool _tty = !Console.IsErrorRedirected;
    private readonly Stopwatch _clock = Stopwatch.StartNew();
    private DateTime _last = DateTime.MinValue;
    private string _lastLine = "";

    public void Report(int done, int total, string detail)
    {
        var now = DateTime.UtcNow;
        bool end = total > 0 && done >= total;
        if (!end && (now - _last).TotalSeconds < (_tty ? 0.2 : 5)) return;
        _last = now;
        double frac = total > 0 ? Math.Clamp((double)done / total, 0, 1) : 0;
        int width = 30, filled = (int)Math.Round(frac * width);
        double rate = done / Math.Max(1e-9, _clock.Elapsed.TotalSeconds);
        var eta = rate > 0 && total > done ? TimeSpan.FromSeconds((total - done) / rate) : TimeSpan.Zero;
        var line = string.Create(CultureInfo.InvariantCulture,
            $"{label,-10} [{new string('#', filled)}{new string('.', width - filled)}] {done}/{total} {detail} {_clock.Elapsed:mm\\:ss} ETA {eta:mm\\:ss}");
        if (line == _lastLine && !end) return;
        _lastLine = line;
        if (_tty) Console.Error.Write("\r" + line.PadRight(110) + (end ? "\n" : ""));
        else Console.Error.WriteLine(line);
    }

    public void Finish() { if (_tty && !_lastLine.Contains("ETA 00:00", StringComparison.Ordinal)) Console.Error.WriteLine(); }
}
