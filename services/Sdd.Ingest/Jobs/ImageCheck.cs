using SixLabors.ImageSharp;
using SixLabors.ImageSharp.Formats;

namespace Sdd.Ingest.Jobs;

/// <summary>What an uploaded file is, read from its header only (no pixel is decoded, so a decompression bomb costs nothing).</summary>
public sealed record ImageHeader(string Extension, string ContentType, int Width, int Height);

public static class ImageCheck
{
    /// <summary>The formats the edit workers decode (ImageSharp format names).</summary>
    public static readonly IReadOnlySet<string> Accepted = new HashSet<string>(["PNG", "JPEG", "BMP", "GIF", "WEBP", "TIFF"], StringComparer.OrdinalIgnoreCase);

    /// <summary>The header, or a problem naming the file: 415 for a known but unaccepted format, 422 for no image or too many pixels.</summary>
    public static ImageHeader? Identify(Stream content, string fileName, long maxPixels, out ProblemHttpResult? problem)
    {
        problem = null;
        IImageInfo? info;
        IImageFormat? format;
        try
        {
            info = Image.Identify(content, out format);
        }
        catch (Exception e) when (e is ImageFormatException or NotSupportedException or InvalidDataException or EndOfStreamException)
        {
            problem = Problems.Unprocessable($"'{fileName}' is not a decodable image ({e.Message}).");
            return null;
        }
        if (info is null || format is null)
        {
            problem = Problems.Unprocessable($"'{fileName}' is not an image in a known format (PNG, JPEG, BMP, GIF, WebP, TIFF).");
            return null;
        }
        if (!Accepted.Contains(format.Name))
        {
            problem = Problems.Unsupported($"'{fileName}' is {format.Name}; accepted formats are PNG, JPEG, BMP, GIF, WebP and TIFF.");
            return null;
        }
        if (info.Width <= 0 || info.Height <= 0 || (long)info.Width * info.Height > maxPixels)
        {
            problem = Problems.Unprocessable($"'{fileName}' is {info.Width}x{info.Height} pixels; at most {maxPixels} pixels are accepted (SDD_MAX_IMAGE_PIXELS).");
            return null;
        }
        return new ImageHeader(format.FileExtensions.First(), format.DefaultMimeType, info.Width, info.Height);
    }
}
