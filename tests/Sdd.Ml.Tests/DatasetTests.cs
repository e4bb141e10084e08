using Sdd.Ml.Data;
using Sdd.Ml.Portraits;
using SixLabors.ImageSharp;
using SixLabors.ImageSharp.PixelFormats;

namespace Sdd.Ml.Tests;

[Collection(TorchCollection.Name)]
public sealed class PortraitDatasetTests
{
    private const int Count = 12, Size = 16, Seed = 21;

    [Fact]
    public void Written_dataset_reads_back_with_the_same_labels_and_exact_pixels()
    {
        using var scope = NewDisposeScope();
        using var dir = new TempDir();
        PortraitDataset.Write(dir.Path, Count, Size, Seed);

        var lines = File.ReadAllLines(dir["labels.csv"]);
        Assert.Equal("image,smiling,white_hair,eyeglasses,hat,beard", lines[0]);
        Assert.Equal(Count + 1, lines.Length);
        for (int i = 0; i < Count; i++)
        {
            var p = PortraitDataset.Portrait(Seed, i);
            var cells = lines[i + 1].Split(',');
            Assert.Equal(PortraitDataset.FileName(i), cells[0]);
            for (int a = 0; a < PortraitAttributes.All.Count; a++)
                Assert.Equal(p.Get(PortraitAttributes.All[a]) ? "1" : "-1", cells[a + 1]);
            foreach (var attr in PortraitAttributes.All)
                Assert.True(File.Exists(Path.Combine(dir.Path, "counterfactuals", attr, PortraitDataset.FileName(i))), $"counterfactual {attr}/{i} missing");
        }

        var set = LabeledImageSet.OpenFolder(dir.Path);
        Assert.Equal(PortraitAttributes.All, set.Attributes);
        Assert.Equal(Count, set.Rows.Count);
        for (int i = 0; i < Count; i++)
        {
            var p = PortraitDataset.Portrait(Seed, i);
            Assert.Equal(PortraitDataset.FileName(i), set.Rows[i].Name);
            Assert.Equal(PortraitAttributes.All.Select(a => (sbyte)(p.Get(a) ? 1 : -1)), set.Rows[i].Labels);
        }

        var (images, labels) = set.Load(Size);
        Assert.Equal(new long[] { Count, 3, Size, Size }, images.shape);
        Assert.Equal(new long[] { Count, PortraitAttributes.All.Count }, labels.shape);
        Assert.True(images.min().item<float>() >= -1f && images.max().item<float>() <= 1f);
        for (int i = 0; i < Count; i++)
        {
            var expected = PortraitRenderer.RenderRgb24(PortraitDataset.Portrait(Seed, i), Size);
            Assert.Equal(expected, ImageCodec.ToRgb24(images[i]));
            var p = PortraitDataset.Portrait(Seed, i);
            Assert.Equal(PortraitAttributes.All.Select(a => p.Get(a) ? 1f : -1f), labels[i].data<float>().ToArray());
        }
        Assert.True(Tiny.BitEqual(images[3], set.LoadImage(3, Size)));
    }

    [Fact]
    public void Counterfactual_file_is_the_flipped_portrait()
    {
        using var dir = new TempDir();
        PortraitDataset.Write(dir.Path, 2, Size, Seed);
        foreach (var attr in PortraitAttributes.All)
        {
            using var img = ImageCodec.Decode(File.ReadAllBytes(Path.Combine(dir.Path, "counterfactuals", attr, PortraitDataset.FileName(1))));
            Assert.Equal(PortraitRenderer.RenderRgb24(PortraitDataset.Portrait(Seed, 1).Flip(attr), Size), ImageCodec.ToRgb24(img));
        }
    }

    [Fact]
    public void Split_holds_out_every_tenth_row()
    {
        var csv = "image,a\n" + string.Join("\n", Enumerable.Range(0, 25).Select(i => $"{i}.png,1"));
        var set = LabeledImageSet.Parse(csv, "mem", _ => []);
        var (train, held) = set.Split(10);
        Assert.Equal(new[] { 9, 19 }, held);
        Assert.Equal(23, train.Length);
        Assert.Empty(train.Intersect(held));
    }

    [Fact]
    public void Zero_label_is_read_as_unknown_and_crlf_is_accepted()
    {
        var set = LabeledImageSet.Parse("image,a,b\r\nx.png,0,+1\r\n", "mem", _ => []);
        Assert.Equal(new sbyte[] { 0, 1 }, set.Rows[0].Labels);
        Assert.Equal(1, set.AttributeIndex("b"));
        Assert.Throws<DatasetException>(() => set.AttributeIndex("c"));
    }
}

[Collection(TorchCollection.Name)]
public sealed class LabeledImageSetErrorTests
{
    private const string Header = "image,smiling,white_hair,eyeglasses,hat,beard";

    private static byte[] Png(int w, int h)
    {
        using var img = new Image<Rgb24>(w, h, new Rgb24(10, 200, 30));
        using var ms = new MemoryStream();
        img.SaveAsPng(ms);
        return ms.ToArray();
    }

    /// <summary>A folder with labels.csv and a 16 px image for each of the given names.</summary>
    private static TempDir Folder(string labels, params string[] images)
    {
        var dir = new TempDir();
        Directory.CreateDirectory(dir["images"]);
        File.WriteAllText(dir["labels.csv"], labels);
        foreach (var name in images) File.WriteAllBytes(Path.Combine(dir.Path, "images", name), Png(16, 16));
        return dir;
    }

    [Fact]
    public void Missing_labels_csv_is_named()
    {
        using var dir = new TempDir();
        Directory.CreateDirectory(dir["images"]);
        var e = Assert.Throws<DatasetException>(() => LabeledImageSet.OpenFolder(dir.Path));
        Assert.Contains("labels.csv", e.Message);
    }

    [Fact]
    public void Missing_folder_is_named()
    {
        var missing = Path.Combine(Path.GetTempPath(), "sdd-no-such-" + Guid.NewGuid().ToString("N"));
        var e = Assert.Throws<DatasetException>(() => LabeledImageSet.OpenFolder(missing));
        Assert.Contains(missing, e.Message);
    }

    [Theory]
    [InlineData(Header + "\na.png,1,1,1,1,1\nb.png,1,1,1,1\n", ":3:", "columns")]
    [InlineData(Header + "\na.png,1,2,1,1,1\n", ":2:", "'2'")]
    [InlineData(Header + "\na.png,1,1,1,1,1\nb.png,-1,1,1,1,1\na.png,1,1,1,1,-1\n", ":4:", "twice")]
    [InlineData(Header + "\n../a.png,1,1,1,1,1\n", ":2:", "bad image name")]
    [InlineData("name,smiling\na.png,1\n", ":1:", "header")]
    [InlineData("image,smiling,smiling\na.png,1,1\n", ":1:", "twice")]
    [InlineData(Header + "\n", "labels.csv", "no rows")]
    public void Bad_labels_csv_names_the_line(string csv, string where, string what)
    {
        using var dir = Folder(csv, "a.png", "b.png");
        var e = Assert.Throws<DatasetException>(() => LabeledImageSet.OpenFolder(dir.Path));
        Assert.Contains("labels.csv" + (where.StartsWith(':') ? where : ""), e.Message);
        Assert.Contains(what, e.Message);
    }

    [Fact]
    public void Missing_image_file_is_named_by_LoadImage()
    {
        using var scope = NewDisposeScope();
        using var dir = Folder(Header + "\na.png,1,1,1,1,1\nghost.png,1,1,1,1,1\n", "a.png");
        var set = LabeledImageSet.OpenFolder(dir.Path);
        var e = Assert.Throws<DatasetException>(() => set.LoadImage(1, 16));
        Assert.Contains("ghost.png", e.Message);
    }

    /// <summary>Load reads in parallel; its errors must still arrive as a DatasetException naming the file, not an AggregateException.</summary>
    [Fact]
    public void Missing_image_file_is_named_by_Load()
    {
        using var scope = NewDisposeScope();
        using var dir = Folder(Header + "\na.png,1,1,1,1,1\nghost.png,1,1,1,1,1\n", "a.png");
        var set = LabeledImageSet.OpenFolder(dir.Path);
        var e = Assert.Throws<DatasetException>(() => set.Load(16));
        Assert.Contains("ghost.png", e.Message);
    }

    [Fact]
    public void Corrupt_image_is_named_by_LoadImage()
    {
        using var scope = NewDisposeScope();
        using var dir = Folder(Header + "\na.png,1,1,1,1,1\nbroken.png,1,1,1,1,1\n", "a.png");
        File.WriteAllBytes(dir["images/broken.png"], "this is not a png at all"u8.ToArray());
        var set = LabeledImageSet.OpenFolder(dir.Path);
        var e = Assert.Throws<DatasetException>(() => set.LoadImage(1, 16));
        Assert.Contains("broken.png", e.Message);
        Assert.IsType<ImageDecodeException>(e.InnerException);
    }

    [Fact]
    public void Corrupt_image_is_named_by_Load()
    {
        using var scope = NewDisposeScope();
        using var dir = Folder(Header + "\na.png,1,1,1,1,1\nbroken.png,1,1,1,1,1\n", "a.png");
        File.WriteAllBytes(dir["images/broken.png"], "this is not a png at all"u8.ToArray());
        var set = LabeledImageSet.OpenFolder(dir.Path);
        var e = Assert.Throws<DatasetException>(() => set.Load(16));
        Assert.Contains("broken.png", e.Message);
    }
}

[Collection(TorchCollection.Name)]
public sealed class ImageCodecTests
{
    private static byte[] Png(int w, int h)
    {
        using var img = new Image<Rgb24>(w, h, new Rgb24(1, 2, 3));
        using var ms = new MemoryStream();
        img.SaveAsPng(ms);
        return ms.ToArray();
    }

    [Fact]
    public void Image_above_the_pixel_limit_is_refused()
    {
        var png = Png(100, 100);
        var e = Assert.Throws<ImageDecodeException>(() => ImageCodec.Decode(png, maxPixels: 5000));
        Assert.Contains("100x100", e.Message);
        using var ok = ImageCodec.Decode(png, maxPixels: 10_000);
        Assert.Equal(100, ok.Width);
    }

    /// <summary>Only the header is read before refusing: a PNG cut right after IHDR (no pixel data) is refused for its size, not as corrupt.</summary>
    [Fact]
    public void Pixel_limit_is_checked_from_the_header_alone()
    {
        var png = Png(100, 100);
        var headerOnly = png[..33]; // 8-byte signature + IHDR chunk (4 length + 4 type + 13 data + 4 crc)
        Assert.Equal("IHDR", System.Text.Encoding.ASCII.GetString(png, 12, 4));
        var e = Assert.Throws<ImageDecodeException>(() => ImageCodec.Decode(headerOnly, maxPixels: 5000));
        Assert.Contains("above the limit", e.Message);
    }

    [Fact]
    public void Corrupt_or_empty_bytes_are_refused()
    {
        Assert.Throws<ImageDecodeException>(() => ImageCodec.Decode([]));
        Assert.Throws<ImageDecodeException>(() => ImageCodec.Decode("definitely not an image"u8.ToArray()));
        var rng = new Random(1);
        var noise = new byte[512];
        rng.NextBytes(noise);
        Assert.Throws<ImageDecodeException>(() => ImageCodec.Decode(noise));
        var png = Png(20, 20);
        var garbled = png[..8].Concat(noise).ToArray(); // a PNG signature followed by garbage
        Assert.Throws<ImageDecodeException>(() => ImageCodec.Decode(garbled));
    }

    [Fact]
    public void Tensor_round_trip_is_pixel_exact_for_every_byte_value()
    {
        using var scope = NewDisposeScope();
        var bytes = Enumerable.Range(0, 16 * 16 * 3).Select(i => (byte)(i % 256)).ToArray();
        var t = ImageCodec.ToTensor(bytes, 16, 16);
        Assert.Equal(new long[] { 3, 16, 16 }, t.shape);
        Assert.Equal(-1f, t.min().item<float>());
        Assert.Equal(1f, t.max().item<float>());
        Assert.Equal(bytes, ImageCodec.ToRgb24(t));

        var png = ImageCodec.EncodePng(t);
        using var img = ImageCodec.Decode(png);
        Assert.Equal(bytes, ImageCodec.ToRgb24(img));
    }

    [Fact]
    public void ResizeCenterCrop_makes_a_square_of_the_requested_size()
    {
        using var img = new Image<Rgb24>(40, 20);
        ImageCodec.ResizeCenterCrop(img, 16);
        Assert.Equal((16, 16), (img.Width, img.Height));
    }
}
