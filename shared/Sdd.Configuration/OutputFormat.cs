using System.Diagnostics.CodeAnalysis;

namespace Sdd.Configuration;

/// <summary>
/// The file format of an edited image: jpeg, png or webp. A job names one (<c>EditJob.OutputFormat</c>) or none, and
/// then each output keeps its input's format by <see cref="Keeping"/>. Torch- and ImageSharp-free, so the API, the
/// storage layout and the codec share it.
/// </summary>
public sealed class OutputFormat
{
    public static readonly OutputFormat Jpeg = new("jpeg", "jpg", "image/jpeg");
    public static readonly OutputFormat Png = new("png", "png", "image/png");
    public static readonly OutputFormat Webp = new("webp", "webp", "image/webp");

    public static IReadOnlyList<OutputFormat> All { get; } = [Jpeg, Png, Webp];

    private OutputFormat(string name, string extension, string contentType) => (Name, Extension, ContentType) = (name, extension, contentType);

    /// <summary>jpeg, png or webp: the value a job or a request carries.</summary>
    public string Name { get; }

    /// <summary>The file extension, without the dot (jpg, png, webp).</summary>
    public string Extension { get; }

    public string ContentType { get; }

    public override string ToString() => Name;

    /// <summary>A name (jpeg, jpg, png, webp; any case, a leading dot allowed), or false.</summary>
    public static bool TryParse(string? value, [NotNullWhen(true)] out OutputFormat? format)
    {
        format = value?.Trim().TrimStart('.').ToLowerInvariant() switch
        {
            "jpeg" or "jpg" => Jpeg,
            "png" => Png,
            "webp" => Webp,
            _ => null,
        };
        return format is not null;
    }

    /// <summary>A name as <see cref="TryParse"/> reads it; throws <see cref="FormatException"/> naming the choices.</summary>
    public static OutputFormat Parse(string value) =>
        TryParse(value, out var format) ? format : throw new FormatException($"'{value}' is not an output format; use jpeg, png or webp.");

    /// <summary>
    /// The format an output keeps of its input: JPEG stays JPEG, PNG PNG, WebP WebP, anything else (BMP, GIF, TIFF,
    /// TGA…) becomes PNG. <paramref name="inputFormat"/> is a format name (ImageSharp's "JPEG", "Webp") or a file
    /// extension (".jpg").
    /// </summary>
    public static OutputFormat Keeping(string? inputFormat) => TryParse(inputFormat, out var format) ? format : Png;
}
