namespace Sdd.EndToEnd.Tests;

/// <summary>Polling the API until a job or a run reaches what a test waits for.</summary>
public static class ApiWaits
{
    public static Task<JobStatus> WaitForJobAsync(this SddClient api, Guid id, Func<JobStatus, bool> done, TimeSpan timeout, Func<string>? diagnostics = null) =>
        WaitForAsync($"job {id}", ct => api.Jobs.GetAsync(id, ct), done, timeout, diagnostics);

    /// <summary>Until the job is completed (every item done or failed).</summary>
    public static Task<JobStatus> WaitForCompletedAsync(this SddClient api, Guid id, TimeSpan timeout, Func<string>? diagnostics = null) =>
        api.WaitForJobAsync(id, j => j.State == JobState.Completed, timeout, diagnostics);

    public static Task<Run> WaitForRunAsync(this SddClient api, Guid id, Func<Run, bool> done, TimeSpan timeout, Func<string>? diagnostics = null) =>
        WaitForAsync($"run {id}", ct => api.Runs.GetAsync(id, ct), done, timeout, diagnostics);

    /// <summary>Until the run succeeded or failed.</summary>
    public static Task<Run> WaitForFinishedAsync(this SddClient api, Guid id, TimeSpan timeout, Func<string>? diagnostics = null) =>
        api.WaitForRunAsync(id, r => r.IsFinished, timeout, diagnostics);

    /// <summary>Polls until <paramref name="done"/> holds for what <paramref name="get"/> answers; returns its last answer.</summary>
    public static async Task<T> WaitForAsync<T>(string what, Func<CancellationToken, Task<T>> get, Func<T, bool> done, TimeSpan timeout, Func<string>? diagnostics = null)
    {
        var deadline = DateTime.UtcNow + timeout;
        T? last = default;
        while (DateTime.UtcNow < deadline)
        {
            last = await get(CancellationToken.None);
            if (done(last)) return last;
            await Task.Delay(250);
        }
        throw new TimeoutException($"{what} did not reach the expected state in {timeout.TotalSeconds:0} s; last: {JsonSerializer.Serialize(last, SddJson.Options)}\n{diagnostics?.Invoke()}");
    }

    /// <summary>Named bytes as files to send.</summary>
    public static List<UploadFile> ToUploads(this IEnumerable<(string Name, byte[] Bytes)> files) =>
        files.Select(f => UploadFile.FromBytes(f.Name, f.Bytes)).ToList();
}

public static class JsonExtensions
{
    public static string Str(this JsonElement e, string name) => e.GetProperty(name).GetString()!;
    public static int Int(this JsonElement e, string name) => e.GetProperty(name).GetInt32();
    public static Guid Id(this JsonElement e, string name) => e.GetProperty(name).GetGuid();
}
