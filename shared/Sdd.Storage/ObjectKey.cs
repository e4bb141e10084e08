using System.Text;

namespace Sdd.Storage;

/// <summary>Object keys the project accepts: relative, '/'-separated, no empty, "." or ".." segment, no control characters, at most 1024 UTF-8 bytes.</summary>
public static class ObjectKey
{
    public const int MaxBytes = 1024;

    /// <summary>Throws <see cref="ArgumentException"/> naming the rule a key breaks; returns the key.</summary>
    public static string Validate(string key, string paramName = "key")
    {
        if (Problem(key, allowTrailingSlash: false) is { } problem)
            throw new ArgumentException($"Invalid object key \"{Printable(key)}\": {problem}.", paramName);
        return key;
    }

    /// <summary>A listing prefix: empty, or a key that may end with '/'.</summary>
    public static string ValidatePrefix(string prefix, string paramName = "prefix")
    {
        if (prefix.Length > 0 && Problem(prefix, allowTrailingSlash: true) is { } problem)
            throw new ArgumentException($"Invalid key prefix \"{Printable(prefix)}\": {problem}.", paramName);
        return prefix;
    }

    private static string? Problem(string? key, bool allowTrailingSlash)
    {
        if (string.IsNullOrEmpty(key)) return "it is empty";
        if (Encoding.UTF8.GetByteCount(key) > MaxBytes) return $"it is longer than {MaxBytes} bytes";
        if (key.Any(char.IsControl)) return "it contains a control character";
        if (key[0] == '/') return "it starts with '/'";
        var segments = key.Split('/');
        if (allowTrailingSlash && key[^1] == '/') segments = segments[..^1];
        foreach (var segment in segments)
        {
            if (segment.Length == 0) return "it has an empty segment ('//' or a trailing '/')";
            if (segment is "." or "..") return $"it has a '{segment}' segment";
        }
        return null;
    }

    private static string Printable(string? key) =>
        key is null ? "(null)" : new string(key.Take(80).Select(c => char.IsControl(c) ? '?' : c).ToArray()) + (key.Length > 80 ? "..." : "");
}
