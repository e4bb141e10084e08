using SixLabors.ImageSharp;
using SixLabors.ImageSharp.Formats;
using SixLabors.ImageSharp.Formats.Png;
using SixLabors.ImageSharp.PixelFormats;
using SixLabors.ImageSharp.Processing;
using TorchSharp;
using static TorchSharp.torch;

namespace Sdd.Ml.Data;

/// <summary>An image that cannot be read, with the reason a person can act on.</summary>
public sealed class ImageDecodeException(string message, Exception? inner = null) : Exception(message, inner);

/// <summary>
/// Images to and from tensors in [-1, 1], (3, H, W). Untrusted input is identified before decoding and
/// refused above <see cref="MaxPixels"/> (decompression bombs).
/// </summary>
public static class ImageCodec
{
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
        return info is null ? throw new ImageDecodeException("Not a supported image format (PNG, JPEG, BMP, GIF, TGA, WebP, TIFF).") : (info.Width, info.Height);
    }

    /// <summary>Decodes bytes to RGB after checking the header's size; throws <see cref="ImageDecodeException"/>.</summary>
    public static Image<Rgb24> Decode(byte[] data, long maxPixels = MaxPixels)
    {
        if (data.Length == 0) throw new ImageDecodeException("The file is empty.");
        if (Sdd.Configuration.Limits.IsAnimatedWebp(data)) throw new ImageDecodeException("Animated WebP is not accepted; send a still image.");
        IImageInfo? info;
        try { info = Image.Identify(Limited, data, out _); }
        catch (Exception e) { throw new ImageDecodeException($"Not a readable image: {e.Message}", e); }
        if (info is null) throw new ImageDecodeException("Not a supported image format (PNG, JPEG, BMP, GIF, TGA, WebP, TIFF).");
        if ((long)info.Width * info.Height > maxPixels)
            throw new ImageDecodeException($"The image is {info.Width}x{info.Height} = {(long)info.Width * info.Height} pixels, above the limit of {maxPixels}.");
        try { return Image.Load<Rgb24>(Limited, data); }
        catch (Exception e) { throw new ImageDecodeException($"The image is corrupt: {e.Message}", e); }
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
    public static Tensor ToTensor(byte[] rgb24, int width, int height)
    {
        using var scope = NewDisposeScope();
        var t = tensor(rgb24, [height, width, 3], ScalarType.Byte).permute(2, 0, 1).to_type(ScalarType.Float32).div(127.5).sub(1.0);
        return t.MoveToOuterDisposeScope();
    }

    public static Tensor ToTensor(Image<Rgb24> img) => ToTensor(ToRgb24(img), img.Width, img.Height);

    /// <summary>A float tensor (3, H, W) in [-1, 1] to (H, W, 3) bytes.</summary>
    public static byte[] ToRgb24(Tensor chw)
    {
        using var scope = NewDisposeScope();
        var b = chw.detach().cpu().clamp(-1, 1).add(1).mul(127.5).round().to_type(ScalarType.Byte).permute(1, 2, 0).contiguous();
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

    public static byte[] EncodePng(Tensor chw)
    {
        using var img = ToImage(chw);
        using var ms = new MemoryStream();
        img.Save(ms, new PngEncoder { CompressionLevel = PngCompressionLevel.BestSpeed });
        return ms.ToArray();
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
