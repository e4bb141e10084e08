namespace Sdd.Configuration;

/// <summary>
/// The defaults of the limits more than one service applies, in one place (each service reads the same SDD_* name):
/// what Ingest accepts is what the workers will process.
/// </summary>
public static class Limits
{
    /// <summary>SDD_MAX_IMAGE_PIXELS: width × height, read from the header before anything is decoded.</summary>
    public const long MaxImagePixels = 40_000_000;
    /// <summary>SDD_MAX_INPUT_BYTES: one input object or file (a job's image, a zip entry).</summary>
    public const long MaxInputBytes = 256L << 20;
    /// <summary>SDD_ITEM_ATTEMPTS: attempts an item gets (edits that failed for a passing reason, batches lost) before it fails for good.</summary>
    public const int ItemAttempts = 3;
    /// <summary>
    /// The longest side over the shortest that can be edited: residual editing scales the short side to the editor's
    /// size, so an 8 x 5,000,000 strip would become 32 x 20,000,000 before the first convolution.
    /// </summary>
    public const double MaxAspectRatio = 16;

    /// <summary>
    /// Whether a file's first 21 bytes say it is an animated WebP (RIFF....WEBPVP8X with the animation flag): the decoder
    /// would decode every frame, so animations are refused (GIF and TIFF are decoded at their first frame only).
    /// </summary>
    public static bool IsAnimatedWebp(ReadOnlySpan<byte> head) =>
        head.Length >= 21 && head[..4].SequenceEqual("RIFF"u8) && head[8..12].SequenceEqual("WEBP"u8) && head[12..16].SequenceEqual("VP8X"u8)
        && (head[20] & 0x02) != 0;

    /// <summary>Why an image of this size cannot be edited (its aspect ratio), or null when it can.</summary>
    public static string? AspectRefusal(long width, long height)
    {
        if (width <= 0 || height <= 0) return $"The image is {width}x{height} pixels.";
        double ratio = (double)Math.Max(width, height) / Math.Min(width, height);
        return ratio <= MaxAspectRatio ? null
            : $"The image is {width}x{height} pixels, an aspect ratio of {ratio.ToString("0.#", System.Globalization.CultureInfo.InvariantCulture)}:1; at most {MaxAspectRatio}:1 can be edited (crop it first).";
    }
}
