using System.Xml.Linq;
using Sdd.Configuration;
using SixLabors.ImageSharp;
using SixLabors.ImageSharp.Formats;
using SixLabors.ImageSharp.Formats.Jpeg;
using SixLabors.ImageSharp.Formats.Png;
using SixLabors.ImageSharp.Formats.Webp;
using SixLabors.ImageSharp.Metadata;
using SixLabors.ImageSharp.Metadata.Profiles.Exif;
using SixLabors.ImageSharp.Metadata.Profiles.Icc;
using SixLabors.ImageSharp.Metadata.Profiles.Iptc;
using SixLabors.ImageSharp.Metadata.Profiles.Xmp;
using SixLabors.ImageSharp.PixelFormats;
using SixLabors.ImageSharp.Processing;
using TorchSharp;
using static TorchSharp.torch;

namespace Sdd.Ml.Data;

/// <summary>An image that cannot be read, with the reason a person can act on.</summary>
public sealed class ImageDecodeException(string message, Exception? inner = null) : Exception(message, inner);

/// <summary>
/// What an edited image keeps of its input: the input's format by <see cref="OutputFormat.Keeping"/>, its colour profile,
/// and its EXIF (orientation 1, since the pixels are upright now, and no thumbnail, which would show the unedited
/// photo), XMP (orientation 1) and IPTC (JPEG output only: ImageSharp writes IPTC to JPEG alone).
/// </summary>
public sealed record KeptMetadata(OutputFormat Format, IccProfile? Icc, ExifProfile? Exif, XmpProfile? Xmp, IptcProfile? Iptc)
{
    /// <summary>Nothing kept; PNG.</summary>
    public static KeptMetadata None { get; } = new(OutputFormat.Png, null, null, null, null);
}

/// <summary>
/// Images to and from tensors in [-1, 1], (3, H, W), and to and from files. Untrusted input is identified before
/// decoding and refused above <see cref="MaxPixels"/> (decompression bombs). Decoding turns a photo upright by its EXIF
/// orientation before anything else, so the editor and every size seen after it are the photo as people see it.
/// </summary>
public static class ImageCodec
{
    /// <summary>The file endings read as images when a folder is listed (edit inputs, plain photo sets).</summary>
    public static readonly string[] ReadableExtensions = [".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tga", ".tif", ".tiff"];

    public static bool IsImageFile(string path) => ReadableExtensions.Contains(Path.GetExtension(path).ToLowerInvariant());

    public const long MaxPixels = Sdd.Configuration.Limits.MaxImagePixels;

    private static readonly SixLabors.ImageSharp.Configuration Limited = CreateLimitedConfiguration();

    private static SixLabors.ImageSharp.Configuration CreateLimitedConfiguration()
    {
        var c = SixLabors.ImageSharp.Configuration.Default.Clone();
        c.PreferContiguousImageBuffers = true;
        // A multi-frame GIF or TIFF is edited at its first frame: the others would only cost memory (a frame bomb).
        c.ImageFormatsManager.SetDecoder(SixLabors.ImageSharp.Formats.Gif.GifFormat.Instance,
            new SixLabors.ImageSharp.Formats.Gif.GifDecoder { DecodingMode = SixLabors.ImageSharp.Metadata.FrameDecodingMode.First });
        c.ImageFormatsManager.SetDecoder(SixLabors.ImageSharp.Formats.Tiff.TiffFormat.Instance,
            new SixLabors.ImageSharp.Formats.Tiff.TiffDecoder { DecodingMode = SixLabors.ImageSharp.Metadata.FrameDecodingMode.First });
        return c;
    }

    public static void SavePng(byte[] rgb24, int width, int height, string path)
    {
        using var img = Image.LoadPixelData<Rgb24>(rgb24, width, height);
        img.SaveAsPng(path);
    }

    /// <summary>Width and height from the header alone (nothing is decoded); throws <see cref="ImageDecodeException"/>.</summary>
    public static (int Width, int Height) ReadSize(byte[] data)
    {
        if (data.Length == 0) throw new ImageDecodeException("The file is empty.");
        if (Sdd.Configuration.Limits.IsAnimatedWebp(data)) throw new ImageDecodeException("Animated WebP is not accepted; send a still image.");
        IImageInfo? info;
        try { info = Image.Identify(Limited, data, out _); }
        catch (Exception e) { throw new ImageDecodeException($"Not a readable image: {e.Message}", e); }
        return info is null ? throw new ImageDecodeException("Not a supported image format (PNG, JPEG, BMP, GIF, TGA, WebP, TIFF).") : Upright(info);
    }

    /// <summary>
    /// The output format that keeps a file's format, from its header (<see cref="OutputFormat.Keeping"/>; PNG for a file
    /// that is unreadable or no known image: it will fail to decode anyway).
    /// </summary>
    public static OutputFormat KeptFormat(string path)
    {
        try
        {
            using var file = File.OpenRead(path);
            var head = new byte[64]; // more than any format's signature
            int n = file.ReadAtLeast(head, head.Length, throwOnEndOfStream: false);
            return OutputFormat.Keeping(Image.DetectFormat(Limited, head.AsSpan(0, n))?.Name);
        }
        catch (IOException) { return OutputFormat.Png; }
        catch (UnauthorizedAccessException) { return OutputFormat.Png; }
    }

    /// <summary>The size once turned upright: EXIF orientations 5 to 8 swap width and height.</summary>
    private static (int Width, int Height) Upright(IImageInfo info) =>
        info.Metadata.ExifProfile?.GetValue(ExifTag.Orientation)?.Value is >= 5 and <= 8 ? (info.Height, info.Width) : (info.Width, info.Height);

    /// <summary>Decodes bytes to upright RGB after checking the header's size; throws <see cref="ImageDecodeException"/>.</summary>
    public static Image<Rgb24> Decode(byte[] data, long maxPixels = MaxPixels) => Decode(data, out _, maxPixels);

    /// <summary>
    /// Decodes bytes to upright RGB after checking the header's size, with what the edited image keeps of them;
    /// throws <see cref="ImageDecodeException"/>.
    /// </summary>
    public static Image<Rgb24> Decode(byte[] data, out KeptMetadata kept, long maxPixels = MaxPixels)
    {
        if (data.Length == 0) throw new ImageDecodeException("The file is empty.");
        if (Sdd.Configuration.Limits.IsAnimatedWebp(data)) throw new ImageDecodeException("Animated WebP is not accepted; send a still image.");
        IImageInfo? info;
        try { info = Image.Identify(Limited, data, out _); }
        catch (Exception e) { throw new ImageDecodeException($"Not a readable image: {e.Message}", e); }
        if (info is null) throw new ImageDecodeException("Not a supported image format (PNG, JPEG, BMP, GIF, TGA, WebP, TIFF).");
        if ((long)info.Width * info.Height > maxPixels)
            throw new ImageDecodeException($"The image is {info.Width}x{info.Height} = {(long)info.Width * info.Height} pixels, above the limit of {maxPixels}.");
        Image<Rgb24> img;
        IImageFormat format;
        try { img = Image.Load<Rgb24>(Limited, data, out format); }
        catch (Exception e) { throw new ImageDecodeException($"The image is corrupt: {e.Message}", e); }
        try
        {
            if (img.Metadata.ExifProfile?.GetValue(ExifTag.Orientation)?.Value is > 1 and <= 8) img.Mutate(x => x.AutoOrient());
            kept = Keep(img.Metadata, OutputFormat.Keeping(format.Name), format == PngFormat.Instance ? data : null);
            return img;
        }
        catch
        {
            img.Dispose();
            throw;
        }
    }

    /// <summary>JPEG holds EXIF, XMP and IPTC in one 64 KB segment each; anything larger is dropped rather than split.</summary>
    private const int MaxSegmentBytes = 65_000;

    /// <summary>What an output keeps; a profile that cannot be read or rewritten is dropped, never the edit.</summary>
    private static KeptMetadata Keep(ImageMetadata m, OutputFormat format, byte[]? png) => new(format,
        OrNull(() =>
        {
            var icc = m.IccProfile ?? (png is not null && IccChunks.ReadPng(png) is { } bytes ? new IccProfile(bytes) : null);
            return icc is not null && icc.CheckIsValid() ? icc : null;
        }),
        OrNull(() =>
        {
            if (m.ExifProfile is null) return null;
            var exif = m.ExifProfile.DeepClone();
            exif.SetValue(ExifTag.Orientation, (ushort)1);
            // Rewriting the profile from its values (IFD0, Exif, GPS) drops IFD1, the thumbnail; these point into it.
            exif.RemoveValue(ExifTag.JPEGInterchangeFormat);
            exif.RemoveValue(ExifTag.JPEGInterchangeFormatLength);
            var bytes = exif.ToByteArray();
            return bytes is null || bytes.Length > MaxSegmentBytes ? null : new ExifProfile(bytes);
        }),
        OrNull(() => m.XmpProfile is { } xmp ? UprightXmp(xmp) : null),
        OrNull(() => m.IptcProfile is { Data.Length: <= MaxSegmentBytes } iptc ? iptc.DeepClone() : null));

    private static T? OrNull<T>(Func<T?> read) where T : class
    {
        try { return read(); }
        catch (Exception e) when (e is not OutOfMemoryException) { return null; }
    }

    /// <summary>The XMP packet with any tiff:Orientation set to 1; null when it does not parse or is too large.</summary>
    private static XmpProfile? UprightXmp(XmpProfile xmp)
    {
        var bytes = xmp.ToByteArray();
        if (bytes is null || bytes.Length > MaxSegmentBytes || xmp.GetDocument() is not { } doc) return null;
        var name = XNamespace.Get("http://ns.adobe.com/tiff/1.0/") + "Orientation";
        var attributes = doc.Descendants().SelectMany(e => e.Attributes(name)).Where(a => a.Value != "1").ToList();
        var elements = doc.Descendants(name).Where(e => e.Value != "1").ToList();
        if (attributes.Count == 0 && elements.Count == 0) return new XmpProfile(bytes);
        foreach (var a in attributes) a.Value = "1";
        foreach (var e in elements) e.Value = "1";
        using var ms = new MemoryStream();
        using (var w = System.Xml.XmlWriter.Create(ms, new System.Xml.XmlWriterSettings { OmitXmlDeclaration = true, Encoding = new System.Text.UTF8Encoding(false) }))
            doc.Save(w);
        return ms.Length > MaxSegmentBytes ? null : new XmpProfile(ms.ToArray());
    }

    /// <summary>Resizes the shorter side to <paramref name="size"/> and centre-crops to a square.</summary>
    public static void ResizeCenterCrop(Image<Rgb24> img, int size)
    {
        if (img.Width == size && img.Height == size) return;
        img.Mutate(x => x.Resize(new ResizeOptions { Size = new SixLabors.ImageSharp.Size(size, size), Mode = ResizeMode.Crop, Position = AnchorPositionMode.Center, Sampler = KnownResamplers.Triangle }));
    }

    public static byte[] ToRgb24(Image<Rgb24> img)
    {
        var bytes = new byte[img.Width * img.Height * 3];
        img.CopyPixelDataTo(bytes);
        return bytes;
    }

    /// <summary>(H, W, 3) bytes to a float tensor (3, H, W) in [-1, 1].</summary>
    /// <remarks>
    /// Scalars are made explicitly and held to the end: an implicit conversion's Scalar can be finalized while the native
    /// call still reads it when several threads decode at once (seen at 256 px: "Expected false to be true" from
    /// c10::Scalar::toDouble in sub).
    /// </remarks>
    public static Tensor ToTensor(byte[] rgb24, int width, int height)
    {
        using var scope = NewDisposeScope();
        using var half = 127.5.ToScalar();
        using var one = 1.0.ToScalar();
        var t = tensor(rgb24, [height, width, 3], ScalarType.Byte).permute(2, 0, 1).to_type(ScalarType.Float32).div(half).sub(one);
        return t.MoveToOuterDisposeScope();
    }

    public static Tensor ToTensor(Image<Rgb24> img) => ToTensor(ToRgb24(img), img.Width, img.Height);

    /// <summary>A float tensor (3, H, W) in [-1, 1] to (H, W, 3) bytes.</summary>
    public static byte[] ToRgb24(Tensor chw)
    {
        using var scope = NewDisposeScope();
        using var low = (-1.0).ToScalar();
        using var one = 1.0.ToScalar();
        using var half = 127.5.ToScalar();
        // add(one, one), not add(one): TorchSharp's one-argument add makes its alpha = 1 an implicit Scalar it does not keep
        // alive, which the finalizer can free while the native add still reads it (seen at 256 px under parallel encode:
        // "Expected false to be true" from c10::Scalar::toFloat in add).
        var b = chw.detach().cpu().clamp(low, one).add(one, one).mul(half).round().to_type(ScalarType.Byte).permute(1, 2, 0).contiguous();
        return b.data<byte>().ToArray();
    }

    public static Image<Rgb24> ToImage(Tensor chw)
    {
        int h = (int)chw.shape[1], w = (int)chw.shape[2];
        return Image.LoadPixelData<Rgb24>(ToRgb24(chw), w, h);
    }

    public static void SavePng(Tensor chw, string path)
    {
        using var img = ToImage(chw);
        img.SaveAsPng(path);
    }

    public static byte[] EncodePng(Tensor chw) => Encode(chw, OutputFormat.Png);

    /// <summary>
    /// Images (B, 3, H, W) in [-1, 1] through a JPEG encode and decode (4:2:0), image i at
    /// <paramref name="qualities"/>[i % length]: what a camera or a web page does to a picture before anyone sends it.
    /// </summary>
    public static Tensor JpegRoundTrip(Tensor images, params int[] qualities)
    {
        if (qualities.Length == 0) qualities = [92];
        var list = new Tensor[images.shape[0]];
        try
        {
            Parallel.For(0, list.Length, i =>
            {
                using var img = ToImage(images[i]);
                using var ms = new MemoryStream();
                img.Save(ms, new JpegEncoder { Quality = qualities[i % qualities.Length], ColorType = JpegColorType.YCbCrRatio420 });
                using var decoded = Decode(ms.ToArray());
                list[i] = ToTensor(decoded);
            });
            return stack(list).to(images.device);
        }
        finally { foreach (var t in list) t?.Dispose(); }
    }

    /// <summary>
    /// A float tensor (3, H, W) in [-1, 1] as a file in <paramref name="format"/>, carrying <paramref name="kept"/>'s
    /// profiles (its format is not consulted: the caller chose <paramref name="format"/>).
    /// JPEG: quality 92, 4:2:0. WebP: lossy, quality 90 (the outputs are photos; lossless would be PNG-sized).
    /// PNG: fastest deflate (encoding dominates the output's cost).
    /// </summary>
    public static byte[] Encode(Tensor chw, OutputFormat format, KeptMetadata? kept = null)
    {
        using var img = ToImage(chw);
        if (kept is not null)
        {
            img.Metadata.IccProfile = kept.Icc;
            img.Metadata.ExifProfile = kept.Exif?.DeepClone();
            img.Metadata.XmpProfile = kept.Xmp?.DeepClone();
            img.Metadata.IptcProfile = kept.Iptc?.DeepClone();
        }
        using var ms = new MemoryStream();
        if (format == OutputFormat.Jpeg) img.Save(ms, new JpegEncoder { Quality = 92, ColorType = JpegColorType.YCbCrRatio420 });
        else if (format == OutputFormat.Webp) img.Save(ms, new WebpEncoder { FileFormat = WebpFileFormatType.Lossy, Quality = 90 });
        else img.Save(ms, new PngEncoder { CompressionLevel = PngCompressionLevel.BestSpeed });
        var bytes = ms.ToArray();
        // ImageSharp 2.1 writes the colour profile to JPEG only.
        if (kept?.Icc is { } icc && format != OutputFormat.Jpeg)
            bytes = format == OutputFormat.Png ? IccChunks.WritePng(bytes, icc.ToByteArray()) : IccChunks.WriteWebp(bytes, icc.ToByteArray(), img.Width, img.Height);
        return bytes;
    }

    public static Tensor LoadTensor(string path, int size)
    {
        using var img = Decode(File.ReadAllBytes(path));
        ResizeCenterCrop(img, size);
        return ToTensor(img);
    }

    /// <summary>Tiles a batch (B, 3, H, W) into a grid image with <paramref name="columns"/> columns.</summary>
    public static Tensor Grid(Tensor batch, int columns, int pad = 1)
    {
        using var scope = NewDisposeScope();
        long b = batch.shape[0], h = batch.shape[2], w = batch.shape[3];
        long rows = (b + columns - 1) / columns;
        var grid = ones(3, rows * (h + pad) + pad, columns * (w + pad) + pad);
        for (long i = 0; i < b; i++)
        {
            long r = i / columns, c = i % columns;
            grid[.., TensorIndex.Slice(pad + r * (h + pad), pad + r * (h + pad) + h), TensorIndex.Slice(pad + c * (w + pad), pad + c * (w + pad) + w)] = batch[i].detach().cpu();
        }
        return grid.MoveToOuterDisposeScope();
    }
}
