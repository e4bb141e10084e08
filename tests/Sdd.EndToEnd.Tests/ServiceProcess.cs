using System.Collections.Concurrent;
using System.Diagnostics;
using System.Text.RegularExpressions;

namespace Sdd.EndToEnd.Tests;

/// <summary>One service as a real process (dotnet &lt;dll&gt;), its output kept in memory and in a log file; killable and restartable.</summary>
public sealed class ServiceProcess(string name, string dll, IReadOnlyDictionary<string, string> environment, string logDir) : IDisposable
{
    private Process? _process;
    private readonly ConcurrentQueue<string> _lines = new();
    private int _generation;

    public string Name { get; } = name;
    public string LogFile => Path.Combine(logDir, $"{Name}.log");
    public int? Pid => _process is { HasExited: false } p ? p.Id : null;

    /// <summary>Output lines of the current process only (since the last start).</summary>
    public IReadOnlyList<string> Lines => _lines.ToArray();

    public void Start()
    {
        if (!File.Exists(dll)) throw new FileNotFoundException($"{Name} is not built: {dll}", dll);
        var info = new ProcessStartInfo("dotnet", [dll])
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
            WorkingDirectory = Path.GetDirectoryName(dll)!,
        };
        foreach (var (k, v) in environment) info.Environment[k] = v;
        _lines.Clear();
        int generation = Interlocked.Increment(ref _generation);
        var process = new Process { StartInfo = info, EnableRaisingEvents = true };
        void OnLine(object _, DataReceivedEventArgs e)
        {
            if (e.Data is null) return;
            if (generation == _generation) _lines.Enqueue(e.Data);
            lock (_lines) File.AppendAllText(LogFile, $"[{generation}] {e.Data}\n");
        }
        process.OutputDataReceived += OnLine;
        process.ErrorDataReceived += OnLine;
        process.Start();
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        _process = process;
    }

    /// <summary>kill -9: no shutdown, no acknowledgements, nothing flushed.</summary>
    public void Kill()
    {
        if (_process is not { HasExited: false } p) return;
        p.Kill(entireProcessTree: true);
        p.WaitForExit(10_000);
    }

    public async Task WaitForLineAsync(Regex pattern, TimeSpan timeout)
    {
        var deadline = DateTime.UtcNow + timeout;
        while (DateTime.UtcNow < deadline)
        {
            if (_lines.Any(pattern.IsMatch)) return;
            if (_process is { HasExited: true }) throw new InvalidOperationException($"{Name} exited ({_process.ExitCode}) before logging /{pattern}/:\n{Tail()}");
            await Task.Delay(100);
        }
        throw new TimeoutException($"{Name} did not log /{pattern}/ within {timeout.TotalSeconds:0} s:\n{Tail()}");
    }

    public string Tail(int lines = 40) => string.Join('\n', Lines.TakeLast(lines));

    public void Dispose()
    {
        Kill();
        _process?.Dispose();
        _process = null; // disposing twice (a test and the fixture) is harmless
    }
}
