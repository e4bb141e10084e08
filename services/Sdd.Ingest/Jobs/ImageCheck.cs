using SixLabors.ImageSharp;
using SixLabors.ImageSharp.Formats;

namespace Sdd.Ingest.Jobs;

/// <summary>What an uploaded file is, read from its header only (no pixel is decoded, so a decompression bomb costs nothing).</summary>
public sealed record ImageHeader(string Extension, string ContentType, int Width, int Height);

/// <summary>Why a file is not an image the workers will edit, with the HTTP status that says so (415 a format not accepted, 422 the rest).</summary>
public sealed record ImageRefusal(int Status, string Detail);

public static class ImageCheck
{
    /// <summary>The formats the edit workers decode (ImageSharp format names).</summary>
    public static readonly IReadOnlySet<string> Accepted = new HashSet<string>(["PNG", "JPEG", "BMP", "GIF", "WEBP", "TIFF"], StringComparer.OrdinalIgnoreCase);

    /// <summary>The header, or a problem naming the file: 415 for a known but unaccepted format, 422 for no image, too many pixels or an extreme aspect ratio.</summary>
    public static ImageHeader? Identify(Stream content, string fileName, long maxPixels, out ProblemHttpResult? problem)
    {
        var header = Check(content, fileName, maxPixels, out var refusal);
        problem = refusal is null ? null : Problems.Status(refusal.Status, refusal.Status == 415 ? "Unsupported media type" : "Unprocessable content", refusal.Detail);
        return header;
    }

    /// <summary>The header, or why the file is refused.</summary>
    public static ImageHeader? Check(Stream content, string fileName, long maxPixels, out ImageRefusal? refusal)
    {
        refusal = null;
        var head = new byte[21];
        var start = content.Position;
        int read = content.ReadAtLeast(head, head.Length, throwOnEndOfStream: false);
        content.Position = start;
        if (Limits.IsAnimatedWebp(head.AsSpan(0, read)))
        {
            refusal = new ImageRefusal(422, $"'{fileName}' is an animated WebP; send a still image.");
            return null;
        }
        IImageInfo? info;
        IImageFormat? format;
        try
        {
            info = Image.Identify(content, out format);
        }
        catch (Exception e) when (e is not OperationCanceledException) // decoders throw what they like (BMP: InvalidOperationException for a huge header)
        {
            refusal = new ImageRefusal(422, $"'{fileName}' is not a decodable image ({e.Message}).");
            return null;
        }
        if (info is null || format is null)
        {
            refusal = new ImageRefusal(422, $"'{fileName}' is not an image in a known format (PNG, JPEG, BMP, GIF, WebP, TIFF).");
            return null;
        }
        if (!Accepted.Contains(format.Name))
        {
            refusal = new ImageRefusal(415, $"'{fileName}' is {format.Name}; accepted formats are PNG, JPEG, BMP, GIF, WebP and TIFF.");
            return null;
        }
        // GIF and TIFF frames after the first are never decoded (ImageCodec), animated WebP is refused above.
        if (info.Width <= 0 || info.Height <= 0 || (long)info.Width * info.Height > maxPixels)
        {
            refusal = new ImageRefusal(422, $"'{fileName}' is {info.Width}x{info.Height} pixels; at most {maxPixels} pixels are accepted (SDD_MAX_IMAGE_PIXELS).");
            return null;
        }
        if (Limits.AspectRefusal(info.Width, info.Height) is { } aspect)
        {
            refusal = new ImageRefusal(422, $"'{fileName}': {aspect}");
            return null;
        }
        return new ImageHeader(format.FileExtensions.First(), format.DefaultMimeType, info.Width, info.Height);
    }
}
