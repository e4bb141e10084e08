namespace Sdd.Demo;

/// <summary>The demo's own API key, kept in an owner-only file so a second run (and the user's own jobs after it) use the same owner.</summary>
public static class DemoKey
{
    /// <summary>
    /// The key in <paramref name="file"/> when it still authenticates; else a new key (named <paramref name="name"/>)
    /// written there with owner-only permissions. Returns the key and whether it was reused.
    /// </summary>
    public static async Task<(string Key, bool Reused)> KeepAsync(Uri api, string adminKey, string file, string name)
    {
        if (File.Exists(file) && (await File.ReadAllTextAsync(file)).Trim() is { Length: > 0 } kept)
        {
            using var probe = new SddClient(api, kept);
            try
            {
                await probe.Keys.GetMeAsync();
                return (kept, true);
            }
            catch (SddApiException e) when (e.Status == 401) { } // revoked, or another stack's: make a new one
        }
        using var admin = new SddClient(api, adminKey);
        var key = (await admin.Keys.CreateAsync(name)).Key;
        Directory.CreateDirectory(Path.GetDirectoryName(Path.GetFullPath(file))!);
        var options = new FileStreamOptions { Mode = FileMode.Create, Access = FileAccess.Write };
        if (!OperatingSystem.IsWindows()) options.UnixCreateMode = UnixFileMode.UserRead | UnixFileMode.UserWrite;
        await using (var stream = new FileStream(file, options)) await stream.WriteAsync(System.Text.Encoding.UTF8.GetBytes(key + "\n"));
        if (!OperatingSystem.IsWindows()) File.SetUnixFileMode(file, UnixFileMode.UserRead | UnixFileMode.UserWrite); // also when it existed
        return (key, false);
    }
}
