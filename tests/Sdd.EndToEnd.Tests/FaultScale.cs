using System.Diagnostics;

namespace Sdd.EndToEnd.Tests;

/// <summary>
/// The size the fault and hostile suites run at: small inside ./sdd test (CI), full under ./sdd check faults|hostile
/// (SDD_FAULTS_SIZE=full). Each case adds a row to the report file SDD_CHECK_REPORT when it is set.
/// </summary>
public static class FaultScale
{
    public static bool Full { get; } = Environment.GetEnvironmentVariable("SDD_FAULTS_SIZE") == "full";

    public static int Pick(int ci, int full) => Full ? full : ci;

    private static readonly object Gate = new();

    public static void Report(ITestOutputHelper output, string row)
    {
        output.WriteLine(row);
        if (Environment.GetEnvironmentVariable("SDD_CHECK_REPORT") is { Length: > 0 } file)
            lock (Gate) File.AppendAllText(file, row + "\n");
    }

    /// <summary>Starts a new peak-memory measurement of the process (Linux: "5" to /proc/PID/clear_refs resets VmHWM).</summary>
    public static void ResetPeak(int? pid)
    {
        if (pid is null) return;
        try { File.WriteAllText($"/proc/{pid}/clear_refs", "5"); }
        catch (IOException) { }
        catch (UnauthorizedAccessException) { }
    }

    /// <summary>Peak resident memory (VmHWM) of a live process, in MiB, or -1.</summary>
    public static long PeakRssMiB(int? pid)
    {
        if (pid is null) return -1;
        try
        {
            var line = File.ReadLines($"/proc/{pid}/status").FirstOrDefault(l => l.StartsWith("VmHWM:", StringComparison.Ordinal));
            return line is null ? -1 : long.Parse(line.Split(' ', StringSplitOptions.RemoveEmptyEntries)[1]) / 1024;
        }
        catch (IOException) { return -1; }
    }
}

/// <summary>The local stack's servers as a crash would treat them: deploy/local/stack.sh kill NAME, then up.</summary>
public static class LocalStack
{
    public static Task KillAsync(string root, string server) => RunAsync(root, "kill", server);

    /// <summary>Brings killed servers back; this test process's pooled database connections died with a killed PostgreSQL.</summary>
    public static async Task UpAsync(string root)
    {
        await RunAsync(root, "up");
        Npgsql.NpgsqlConnection.ClearAllPools();
    }

    private static async Task RunAsync(string root, params string[] args)
    {
        var info = new ProcessStartInfo("bash", [Path.Combine(root, "deploy", "local", "stack.sh"), .. args])
        {
            RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false, WorkingDirectory = root,
        };
        using var process = Process.Start(info)!;
        var output = process.StandardOutput.ReadToEndAsync();
        var errors = process.StandardError.ReadToEndAsync();
        await process.WaitForExitAsync().WaitAsync(TimeSpan.FromMinutes(3));
        if (process.ExitCode != 0) throw new InvalidOperationException($"stack.sh {string.Join(' ', args)} failed: {await output}{await errors}");
    }
}
