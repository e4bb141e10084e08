namespace Sdd.Client;

/// <summary>One file to send: the name it gets (relative, '/' for folders) and how to read its bytes (opened anew for each try).</summary>
public sealed record UploadFile(string Name, Func<Stream> Open, long Length)
{
    public static UploadFile FromPath(string path, string? name = null) =>
        new(name ?? Path.GetFileName(path), () => File.OpenRead(path), new FileInfo(path).Length);

    public static UploadFile FromBytes(string name, byte[] bytes) => new(name, () => new MemoryStream(bytes, writable: false), bytes.LongLength);

    /// <summary>Every file under <paramref name="directory"/> (hidden ones skipped) named by its path relative to it, in ordinal order.</summary>
    public static IReadOnlyList<UploadFile> FromDirectory(string directory, Func<string, bool>? include = null) =>
        Directory.EnumerateFiles(directory, "*", SearchOption.AllDirectories)
            .Select(f => (Path: f, Name: Path.GetRelativePath(directory, f).Replace('\\', '/')))
            .Where(f => !f.Name.Split('/').Any(s => s.StartsWith('.')) && (include?.Invoke(f.Path) ?? true))
            .OrderBy(f => f.Name, StringComparer.Ordinal)
            .Select(f => FromPath(f.Path, f.Name))
            .ToList();

    /// <summary>The media type a file's extension names (the API reads the bytes themselves; storage keeps this).</summary>
    public string ContentType => MediaTypes.For(Name);
}

public static class MediaTypes
{
    public static readonly IReadOnlySet<string> ImageExtensions =
        new HashSet<string>([".jpg", ".jpeg", ".png", ".webp", ".bmp", ".gif", ".tif", ".tiff"], StringComparer.OrdinalIgnoreCase);

    public static bool IsImage(string name) => ImageExtensions.Contains(Path.GetExtension(name));

    public static string For(string name) => Path.GetExtension(name).ToLowerInvariant() switch
    {
        ".jpg" or ".jpeg" => "image/jpeg",
        ".png" => "image/png",
        ".webp" => "image/webp",
        ".bmp" => "image/bmp",
        ".gif" => "image/gif",
        ".tif" or ".tiff" => "image/tiff",
        ".csv" => "text/csv",
        ".zip" => "application/zip",
        _ => "application/octet-stream",
    };
}
