using System.Globalization;

namespace Sdd.Cli;

/// <summary>A bad command line: printed as one line, exit code 2.</summary>
public sealed class UsageException(string message) : Exception(message);

/// <summary>Options of the form <c>--name value</c> and <c>--flag</c>; every option must be consumed.</summary>
public sealed class Options
{
    private readonly Dictionary<string, string?> _values = new(StringComparer.Ordinal);
    private readonly HashSet<string> _used = [];
    public List<string> Positional { get; } = [];

    public Options(IEnumerable<string> args, IReadOnlySet<string> flags)
    {
        var list = args.ToList();
        for (int i = 0; i < list.Count; i++)
        {
            var a = list[i];
            if (a.StartsWith("--", StringComparison.Ordinal))
            {
                var name = a[2..];
                string? value = null;
                int eq = name.IndexOf('=');
                if (eq >= 0) { value = name[(eq + 1)..]; name = name[..eq]; }
                else if (!flags.Contains(name))
                {
                    if (i + 1 >= list.Count || list[i + 1].StartsWith("--", StringComparison.Ordinal))
                        throw new UsageException($"option --{name} needs a value");
                    value = list[++i];
                }
                if (!_values.TryAdd(name, value)) throw new UsageException($"option --{name} is given twice");
            }
            else Positional.Add(a);
        }
    }

    public bool Has(string name) { _used.Add(name); return _values.ContainsKey(name); }

    public string? String(string name) { _used.Add(name); return _values.TryGetValue(name, out var v) ? v : null; }

    public string Required(string name) => String(name) ?? throw new UsageException($"missing required option --{name}");

    public int Int(string name, int fallback, int min = int.MinValue, int max = int.MaxValue)
    {
        var s = String(name);
        if (s is null) return fallback;
        if (!int.TryParse(s, NumberStyles.Integer, CultureInfo.InvariantCulture, out var v)) throw new UsageException($"--{name} must be a whole number, got '{s}'");
        if (v < min || v > max) throw new UsageException($"--{name} must be between {min} and {max}, got {v}");
        return v;
    }

    public double Double(string name, double fallback, double min = double.MinValue, double max = double.MaxValue)
    {
        var s = String(name);
        if (s is null) return fallback;
        if (!double.TryParse(s, NumberStyles.Float, CultureInfo.InvariantCulture, out var v)) throw new UsageException($"--{name} must be a number, got '{s}'");
        if (v < min || v > max) throw new UsageException($"--{name} must be between {min} and {max}, got {v}");
        return v;
    }

    /// <summary>Fails on any option that no command read (a typo must not be ignored silently).</summary>
    public void EnsureAllUsed()
    {
        var unknown = _values.Keys.Where(k => !_used.Contains(k)).ToList();
        if (unknown.Count > 0) throw new UsageException($"unknown option --{unknown[0]}");
    }
}

/// <summary>A one-line progress bar on stderr (a line every few seconds when not a terminal).</summary>
public sealed class ProgressBar(string label)
{
    private DateTime _last = DateTime.MinValue;
    private readonly bool _tty = !Console.IsErrorRedirected;

    public void Report(int step, int total, string detail, double perSecond)
    {
        var now = DateTime.UtcNow;
        bool end = step >= total;
        if (!end && (now - _last).TotalSeconds < (_tty ? 0.2 : 10)) return;
        _last = now;
        double frac = total > 0 ? Math.Clamp((double)step / total, 0, 1) : 1;
        int width = 24, filled = (int)Math.Round(frac * width);
        var eta = perSecond > 0 ? TimeSpan.FromSeconds((total - step) / perSecond) : TimeSpan.Zero;
        var line = string.Create(CultureInfo.InvariantCulture,
            $"{label} [{new string('#', filled)}{new string('.', width - filled)}] {step}/{total} {detail} {perSecond:0.00} it/s ETA {eta:hh\\:mm\\:ss}");
        if (_tty) Console.Error.Write("\r" + line + (end ? "\n" : ""));
        else Console.Error.WriteLine(line);
    }
}
