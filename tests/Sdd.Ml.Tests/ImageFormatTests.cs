using System.Buffers.Binary;
using Sdd.Configuration;
using Sdd.Ml.Data;
using SixLabors.ImageSharp;
using SixLabors.ImageSharp.Formats;
using SixLabors.ImageSharp.Formats.Bmp;
using SixLabors.ImageSharp.Formats.Gif;
using SixLabors.ImageSharp.Formats.Jpeg;
using SixLabors.ImageSharp.Formats.Png;
using SixLabors.ImageSharp.Formats.Tiff;
using SixLabors.ImageSharp.Formats.Webp;
using SixLabors.ImageSharp.Metadata.Profiles.Exif;
using SixLabors.ImageSharp.Metadata.Profiles.Icc;
using SixLabors.ImageSharp.Metadata.Profiles.Xmp;
using SixLabors.ImageSharp.PixelFormats;

namespace Sdd.Ml.Tests;

/// <summary>
/// Results as users sent them: decoding turns photos upright by their EXIF orientation, and encoding writes the chosen
/// format (by default the input's) with the input's colour profile and metadata. Every file is written here with
/// ImageSharp, small.
/// </summary>
[Collection(TorchCollection.Name)]
public sealed class ImageFormatTests
{
    private static readonly Rgb24 Grey = new(128, 128, 128), Red = new(255, 0, 0);

    /// <summary>48x32 grey with an 8x8 red block at the stored top-left corner.</summary>
    private static Image<Rgb24> Marked()
    {
        var img = new Image<Rgb24>(48, 32, Grey);
        for (int y = 0; y < 8; y++)
            for (int x = 0; x < 8; x++) img[x, y] = Red;
        return img;
    }

    private static byte[] Save(Image img, IImageEncoder encoder)
    {
        using var ms = new MemoryStream();
        img.Save(ms, encoder);
        return ms.ToArray();
    }

    private static ExifProfile Exif(ushort orientation)
    {
        var exif = new ExifProfile();
        exif.SetValue(ExifTag.Orientation, orientation);
        exif.SetValue(ExifTag.Artist, "sdd test");
        return exif;
    }

    private static bool IsRed(Rgb24 p) => p.R > 200 && p.G < 60 && p.B < 60;

    private static bool IsGrey(Rgb24 p) => Math.Abs(p.R - 128) < 30 && Math.Abs(p.G - 128) < 30 && Math.Abs(p.B - 128) < 30;

    /// <summary>A minimal valid ICC profile (v4 display RGB, one copyright tag): ImageSharp 2.1 cannot build one.</summary>
    private static byte[] IccBytes()
    {
        byte[] tag = [.. "text"u8, 0, 0, 0, 0, .. "sdd test profile\0"u8];
        Array.Resize(ref tag, (tag.Length + 3) / 4 * 4);
        var b = new byte[144 + tag.Length];
        void U32(int at, uint v) => BinaryPrimitives.WriteUInt32BigEndian(b.AsSpan(at), v);
        void Sig(int at, string s) => System.Text.Encoding.ASCII.GetBytes(s).CopyTo(b, at);
        U32(0, (uint)b.Length); Sig(4, "none"); U32(8, 0x04300000); Sig(12, "mntr"); Sig(16, "RGB "); Sig(20, "XYZ ");
        b[24] = 0x07; b[25] = 0xE8; b[27] = 1; b[29] = 2; // 2024-01-02
        Sig(36, "acsp"); Sig(40, "APPL");
        U32(68, 0x0000F6D6); U32(72, 0x00010000); U32(76, 0x0000D32D); Sig(80, "sdd "); // D50 illuminant
        U32(128, 1); Sig(132, "cprt"); U32(136, 144); U32(140, (uint)tag.Length);
        tag.CopyTo(b, 144);
        Assert.True(new IccProfile(b).CheckIsValid());
        return b;
    }

    private static byte[] EncodeDecoded(byte[] input, OutputFormat? format, out KeptMetadata kept)
    {
        using var scope = NewDisposeScope();
        using var img = ImageCodec.Decode(input, out kept);
        return ImageCodec.Encode(ImageCodec.ToTensor(img), format ?? kept.Format, kept);
    }

    [Theory]
    [InlineData(6)] // stored rotated 90 degrees anticlockwise: the stored top-left is shown at the top right
    [InlineData(8)] // stored rotated 90 degrees clockwise: the stored top-left is shown at the bottom left
    public void A_jpeg_stored_sideways_decodes_upright(ushort orientation)
    {
        using var stored = Marked();
        stored.Metadata.ExifProfile = Exif(orientation);
        var jpeg = Save(stored, new JpegEncoder { Quality = 95 });

        Assert.Equal((32, 48), ImageCodec.ReadSize(jpeg)); // the header's size, upright, for grouping and limits
        using var img = ImageCodec.Decode(jpeg);
        Assert.Equal((32, 48), (img.Width, img.Height));
        var (markX, markY) = orientation == 6 ? (28, 3) : (3, 44);
        Assert.True(IsRed(img[markX, markY]), $"marker expected at ({markX},{markY}), found {img[markX, markY]}");
        Assert.True(IsGrey(img[3, 3]), $"(3,3) should be grey, is {img[3, 3]}");
        Assert.True(IsGrey(img[28, 44]), $"(28,44) should be grey, is {img[28, 44]}");
    }

    [Theory]
    [InlineData("jpeg")]
    [InlineData("png")]
    [InlineData("webp")]
    public void The_output_is_upright_with_orientation_1_and_keeps_the_rest_of_the_exif(string to)
    {
        using var stored = Marked();
        stored.Metadata.ExifProfile = Exif(6);
        var output = EncodeDecoded(Save(stored, new JpegEncoder { Quality = 95 }), OutputFormat.Parse(to), out _);

        using var back = Image.Load<Rgb24>(output);
        Assert.Equal((32, 48), (back.Width, back.Height));
        Assert.True(IsRed(back[28, 3]));
        Assert.Equal((ushort)1, back.Metadata.ExifProfile?.GetValue(ExifTag.Orientation)?.Value);
        Assert.Equal("sdd test", back.Metadata.ExifProfile?.GetValue(ExifTag.Artist)?.Value);
    }

    /// <summary>
    /// A camera JPEG's EXIF: IFD0 (orientation 6, artist) and IFD1 pointing at an 8x8 thumbnail JPEG. ImageSharp's
    /// encoder never writes IFD1, so the APP1 segment is spliced in by hand.
    /// </summary>
    private static byte[] JpegWithExifThumbnail()
    {
        byte[] thumb;
        using (var t = new Image<Rgb24>(8, 8, new Rgb24(0, 255, 0))) thumb = Save(t, new JpegEncoder());
        var tiff = new List<byte>();
        void U16(int v) { tiff.Add((byte)v); tiff.Add((byte)(v >> 8)); }
        void U32(int v) { U16(v & 0xFFFF); U16(v >>> 16); }
        var artist = "sdd test\0"u8.ToArray(); // 9 bytes at 38, padded to 48
        tiff.AddRange("II"u8.ToArray()); U16(42); U32(8);
        U16(2); // IFD0 at 8
        U16(0x0112); U16(3); U32(1); U16(6); U16(0); // Orientation = 6
        U16(0x013B); U16(2); U32(artist.Length); U32(38); // Artist
        U32(48); // IFD1
        tiff.AddRange(artist); tiff.Add(0);
        U16(2); // IFD1 at 48
        U16(0x0201); U16(4); U32(1); U32(78); // JPEGInterchangeFormat
        U16(0x0202); U16(4); U32(1); U32(thumb.Length);
        U32(0);
        tiff.AddRange(thumb); // at 78
        using var img = Marked();
        var jpeg = Save(img, new JpegEncoder { Quality = 95 });
        int length = 2 + 6 + tiff.Count;
        return [0xFF, 0xD8, 0xFF, 0xE1, (byte)(length >> 8), (byte)length, .. "Exif\0\0"u8, .. tiff, .. jpeg.AsSpan(2)];
    }

    [Fact]
    public void The_embedded_thumbnail_is_dropped()
    {
        var input = JpegWithExifThumbnail();
        using (var raw = Image.Load<Rgb24>(input)) // the input really carries one
        {
            Assert.Equal((ushort)6, raw.Metadata.ExifProfile!.GetValue(ExifTag.Orientation)?.Value);
            using var thumb = raw.Metadata.ExifProfile.CreateThumbnail<Rgb24>();
            Assert.NotNull(thumb);
        }

        var output = EncodeDecoded(input, null, out var kept);

        Assert.Equal(OutputFormat.Jpeg, kept.Format);
        using var back = Image.Load<Rgb24>(output);
        Assert.Equal((32, 48), (back.Width, back.Height));
        var exif = back.Metadata.ExifProfile!;
        Assert.Null(exif.CreateThumbnail<Rgb24>());
        Assert.Null(exif.GetValue(ExifTag.JPEGInterchangeFormat));
        Assert.Equal((ushort)1, exif.GetValue(ExifTag.Orientation)?.Value);
        Assert.Equal("sdd test", exif.GetValue(ExifTag.Artist)?.Value);
    }

    [Theory]
    [InlineData("jpeg")]
    [InlineData("png")]
    [InlineData("webp")]
    public void The_colour_profile_of_a_jpeg_survives_decode_and_encode(string to)
    {
        var icc = IccBytes();
        using var stored = Marked();
        stored.Metadata.IccProfile = new IccProfile(icc);
        var format = OutputFormat.Parse(to);

        var output = EncodeDecoded(Save(stored, new JpegEncoder()), format, out var kept);

        Assert.Equal(icc, kept.Icc?.ToByteArray());
        using (var again = ImageCodec.Decode(output, out var keptAgain))
        {
            Assert.Equal(icc, keptAgain.Icc?.ToByteArray());
            Assert.Equal(format, keptAgain.Format);
            Assert.Equal((48, 32), (again.Width, again.Height));
        }
        // ImageSharp's own decoders read the profile from JPEG and WebP (not from PNG: the codec reads iCCP itself).
        using var plain = Image.Load<Rgb24>(output);
        if (format != OutputFormat.Png) Assert.Equal(icc, plain.Metadata.IccProfile?.ToByteArray());
        else Assert.Contains("iCCP", System.Text.Encoding.Latin1.GetString(output));
    }

    [Fact]
    public void The_colour_profile_of_a_png_survives_into_a_png()
    {
        var icc = IccBytes();
        byte[] png;
        using (var scope = NewDisposeScope())
        using (var img = Marked())
            png = ImageCodec.Encode(ImageCodec.ToTensor(img), OutputFormat.Png, KeptMetadata.None with { Icc = new IccProfile(icc) });

        var output = EncodeDecoded(png, null, out var kept);

        Assert.Equal(icc, kept.Icc?.ToByteArray());
        using (ImageCodec.Decode(output, out var again)) Assert.Equal(icc, again.Icc?.ToByteArray());
    }

    [Fact]
    public void A_stale_xmp_orientation_is_reset_to_1()
    {
        using var stored = Marked();
        stored.Metadata.ExifProfile = Exif(6);
        stored.Metadata.XmpProfile = new XmpProfile(System.Text.Encoding.UTF8.GetBytes(
            "<?xpacket begin=\"\" id=\"W5M0MpCehiHzreSzNTczkc9d\"?><x:xmpmeta xmlns:x=\"adobe:ns:meta/\"><rdf:RDF xmlns:rdf=\"http://www.w3.org/1999/02/22-rdf-syntax-ns#\">" +
            "<rdf:Description rdf:about=\"\" xmlns:tiff=\"http://ns.adobe.com/tiff/1.0/\" xmlns:dc=\"http://purl.org/dc/elements/1.1/\" tiff:Orientation=\"6\" dc:format=\"image/jpeg\"/>" +
            "</rdf:RDF></x:xmpmeta><?xpacket end=\"w\"?>"));

        var output = EncodeDecoded(Save(stored, new JpegEncoder()), OutputFormat.Jpeg, out _);

        using var back = Image.Load<Rgb24>(output);
        var xmp = System.Text.Encoding.UTF8.GetString(back.Metadata.XmpProfile!.ToByteArray());
        Assert.Contains("tiff:Orientation=\"1\"", xmp);
        Assert.DoesNotContain("tiff:Orientation=\"6\"", xmp);
        Assert.Contains("dc:format=\"image/jpeg\"", xmp);
        Assert.StartsWith("<?xpacket begin", xmp);
    }

    [Fact]
    public void Unreadable_metadata_is_dropped_and_the_image_still_decodes()
    {
        using var stored = Marked();
        stored.Metadata.XmpProfile = new XmpProfile("<x:xmpmeta not xml <<"u8.ToArray());

        var output = EncodeDecoded(Save(stored, new JpegEncoder()), null, out var kept);

        Assert.Null(kept.Xmp);
        using var back = Image.Load<Rgb24>(output);
        Assert.Equal((48, 32), (back.Width, back.Height));
    }

    public static TheoryData<string, string> Inputs => new()
    {
        { "jpeg", "jpeg" }, { "png", "png" }, { "webp", "webp" }, { "bmp", "png" }, { "gif", "png" }, { "tiff", "png" },
    };

    [Theory]
    [MemberData(nameof(Inputs))]
    public void The_output_keeps_the_input_format_and_anything_else_becomes_png(string input, string expected)
    {
        IImageEncoder encoder = input switch
        {
            "jpeg" => new JpegEncoder(), "png" => new PngEncoder(), "webp" => new WebpEncoder(),
            "bmp" => new BmpEncoder(), "gif" => new GifEncoder(), _ => new TiffEncoder(),
        };
        using var img = Marked();
        var bytes = Save(img, encoder);
        using var dir = new TempDir();
        File.WriteAllBytes(dir["input"], bytes); // no extension: the header decides

        var output = EncodeDecoded(bytes, null, out var kept);

        Assert.Equal(expected, kept.Format.Name);
        Assert.Equal(kept.Format, ImageCodec.KeptFormat(dir["input"]));
        byte[] magic = expected switch
        {
            "jpeg" => [0xFF, 0xD8, 0xFF],
            "png" => [0x89, (byte)'P', (byte)'N', (byte)'G'],
            _ => [.. "RIFF"u8],
        };
        Assert.Equal(magic, output[..magic.Length]);
        if (expected == "webp") Assert.Equal("WEBP"u8.ToArray(), output[8..12]);
        Assert.Equal(kept.Format, OutputFormat.Keeping(Image.DetectFormat(output)!.Name));
    }

    [Fact]
    public void The_jpeg_and_webp_of_a_photo_like_image_are_smaller_than_its_png()
    {
        using var scope = NewDisposeScope();
        // Smooth shading with sensor-like noise, as in a photo.
        var gen = new Generator(7);
        var yy = linspace(-1, 1, 64).view(1, 64, 1).expand(1, 64, 64);
        var xx = linspace(-1, 1, 64).view(1, 1, 64).expand(1, 64, 64);
        var photo = (cat([xx * 0.6, yy * 0.5, (xx + yy) * 0.3]) + randn([3, 64, 64], generator: gen) * 0.05).clamp(-1, 1);

        var png = ImageCodec.Encode(photo, OutputFormat.Png);
        var jpeg = ImageCodec.Encode(photo, OutputFormat.Jpeg);
        var webp = ImageCodec.Encode(photo, OutputFormat.Webp);

        Assert.True(jpeg.Length < png.Length, $"jpeg {jpeg.Length} B, png {png.Length} B");
        Assert.True(webp.Length < png.Length, $"webp {webp.Length} B, png {png.Length} B");
        // Lossy but close: the mean error stays small.
        using var back = ImageCodec.Decode(jpeg);
        Assert.True((ImageCodec.ToTensor(back) - photo).abs().mean().item<float>() < 0.05f);
    }

    [Theory]
    [InlineData("jpeg", "jpeg")]
    [InlineData("JPG", "jpeg")]
    [InlineData(".png", "png")]
    [InlineData(" webp ", "webp")]
    public void Output_formats_parse_from_names_and_extensions(string value, string name)
    {
        Assert.True(OutputFormat.TryParse(value, out var format));
        Assert.Equal(name, format.Name);
        Assert.Same(format, OutputFormat.Parse(value));
    }

    [Fact]
    public void Output_formats_name_their_extension_and_content_type_and_refuse_others()
    {
        Assert.Equal(("jpg", "image/jpeg"), (OutputFormat.Jpeg.Extension, OutputFormat.Jpeg.ContentType));
        Assert.Equal(("png", "image/png"), (OutputFormat.Png.Extension, OutputFormat.Png.ContentType));
        Assert.Equal(("webp", "image/webp"), (OutputFormat.Webp.Extension, OutputFormat.Webp.ContentType));
        Assert.False(OutputFormat.TryParse("gif", out _));
        Assert.False(OutputFormat.TryParse(null, out _));
        Assert.Contains("jpeg, png or webp", Assert.Throws<FormatException>(() => OutputFormat.Parse("tiff")).Message);
        Assert.Equal(OutputFormat.Jpeg, OutputFormat.Keeping("JPEG"));
        Assert.Equal(OutputFormat.Webp, OutputFormat.Keeping("Webp"));
        Assert.Equal(OutputFormat.Png, OutputFormat.Keeping(".bmp"));
        Assert.Equal(OutputFormat.Png, OutputFormat.Keeping(null));
    }
}
