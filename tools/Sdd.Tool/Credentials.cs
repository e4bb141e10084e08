using System.Text.Json.Serialization;

namespace Sdd.Tool;

/// <summary>
/// Where the API is and the key to use: <c>~/.config/sdd/credentials.json</c> (written by <c>sdd login</c>, owner-only),
/// each field overridden by SDD_API_URL / SDD_API_KEY.
/// </summary>
public sealed record Credentials([property: JsonPropertyName("api")] string Api, [property: JsonPropertyName("key")] string Key)
{
    public const string UrlVariable = "SDD_API_URL";
    public const string KeyVariable = "SDD_API_KEY";

    private static readonly UnixFileMode OwnerOnlyFile = UnixFileMode.UserRead | UnixFileMode.UserWrite;
    private static readonly UnixFileMode OwnerOnlyFolder = UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute;

    public static Credentials? Load(string path)
    {
        if (!File.Exists(path)) return null;
        try { return JsonSerializer.Deserialize<Credentials>(File.ReadAllText(path)); }
        catch (JsonException e) { throw new ToolException($"{path} is not a credentials file ({e.Message}); run `sdd login` again."); }
    }

    /// <summary>What the commands use: the file's values, each replaced by its environment variable when set.</summary>
    public static Credentials Resolve(ToolContext tool)
    {
        var file = Load(tool.CredentialsPath);
        var api = tool.Environment(UrlVariable) is { Length: > 0 } u ? u : file?.Api;
        var key = tool.Environment(KeyVariable) is { Length: > 0 } k ? k : file?.Key;
        if (string.IsNullOrEmpty(api) || string.IsNullOrEmpty(key))
            throw new ToolException($"Not logged in: run `sdd login --api URL --key KEY`, or set {UrlVariable} and {KeyVariable}.");
        return new Credentials(api, key);
    }

    /// <summary>
    /// Written to a new file created owner-only (0600) beside the target, then renamed over it: the key is never
    /// readable by others, not even for a moment, and a crash leaves the old file whole.
    /// </summary>
    public void Save(string path)
    {
        var folder = Path.GetDirectoryName(Path.GetFullPath(path))!;
        if (OperatingSystem.IsWindows()) Directory.CreateDirectory(folder);
        else Directory.CreateDirectory(folder, OwnerOnlyFolder);
        var temp = Path.Combine(folder, $".credentials-{Guid.NewGuid():N}.tmp");
        var options = new FileStreamOptions { Mode = FileMode.CreateNew, Access = FileAccess.Write, Share = FileShare.None };
        if (!OperatingSystem.IsWindows()) options.UnixCreateMode = OwnerOnlyFile;
        try
        {
            using (var stream = new FileStream(temp, options))
                JsonSerializer.Serialize(stream, this, new JsonSerializerOptions { WriteIndented = true });
            File.Move(temp, path, overwrite: true);
        }
        finally { File.Delete(temp); }
    }
}
