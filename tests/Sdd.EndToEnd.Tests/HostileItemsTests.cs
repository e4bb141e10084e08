using SixLabors.ImageSharp;
using SixLabors.ImageSharp.Formats.Png;
using SixLabors.ImageSharp.PixelFormats;

namespace Sdd.EndToEnd.Tests;

/// <summary>
/// Hostile and odd files read in place by a job over an upload area (no header check at submission: the edit worker
/// decides each): every bad one fails its own item with a reason, every good one is edited, the job finishes and the
/// services stay healthy.
/// </summary>
[Collection(EndToEndCollection.Name)]
public sealed class HostileItemsTests(SddSystem system, ITestOutputHelper output)
{
    [Fact]
    public async Task Each_hostile_file_fails_only_its_own_item_with_a_reason()
    {
        await system.SmilingEditorAsync();
        var good = SddSystem.Portraits(1, SddSystem.ImageSize, first: 700).Single().Bytes;
        var noise = new byte[900 * 900 * 3];
        new Random(3).NextBytes(noise);
        (string Name, byte[] Bytes, string? Reason)[] files =
        [
            ("good.png", good, null),
            ("one-pixel.png", Encode(new Image<Rgb24>(1, 1, new Rgb24(200, 10, 10))), null),
            ("alpha.png", Encode(new Image<Rgba32>(24, 24, new Rgba32(10, 200, 10, 128))), null),
            ("sixteen-bit.png", Encode(new Image<Rgb48>(24, 24, new Rgb48(1000, 30000, 65000)), new PngEncoder { BitDepth = PngBitDepth.Bit16 }), null),
            ("two-frames.gif", TwoFrameGif(), null),
            ("empty.png", [], "empty"),
            ("truncated.png", good[..(good.Length / 3)], "corrupt"),
            ("text.png", "not a picture at all"u8.ToArray(), "image"),
            ("strip.png", Encode(new Image<Rgb24>(8, 400)), "aspect ratio"),
            ("animated.webp", AnimatedWebpHeader(), "Animated WebP"),
            ("bomb.png", BombPng(), "pixels"),
            .. Bombs().Select(b => (b.Name, b.Bytes, (string?)b.Reason)),
            ("too-large.png", Encode(Image.LoadPixelData<Rgb24>(noise, 900, 900)), "SDD_MAX_INPUT_BYTES"),
        ];
        Assert.True(files.Single(f => f.Name == "too-large.png").Bytes.Length > 2_000_000); // the fixture's SDD_MAX_INPUT_BYTES

        var upload = await system.Api.Uploads.UploadAsync(files.Select(f => (f.Name, f.Bytes)).ToUploads());
        // Edited even outside the editor's domain: a one-pixel or flat image is no portrait, and this test is about decoding
        // (DomainGateTests is about the gate).
        var jobId = (await system.Api.Jobs.SubmitAsync(new SubmitJob("smiling", JobSource.FromUpload(upload.Id), OutOfDomain: "edit"))).JobId;
        var job = await system.Api.WaitForCompletedAsync(jobId, TimeSpan.FromMinutes(2), () => system.Edit.Tail());

        var items = (await system.Api.Jobs.ListAllItemsAsync(jobId).ToListAsync())
            .ToDictionary(i => i.Name, i => (State: SddJson.Name(i.State), i.Error));
        foreach (var f in files) FaultScale.Report(output, $"| {f.Name} ({f.Bytes.Length} bytes) in a job over an upload | {items[f.Name].State}{(items[f.Name].Error is { } e ? ": " + e : "")} | - |");
        foreach (var f in files)
        {
            var (state, error) = items[f.Name];
            if (f.Reason is null) Assert.True(state == "done", $"{f.Name}: {state} {error}");
            else
            {
                Assert.True(state == "failed", $"{f.Name} should fail: {state}");
                Assert.Contains(f.Reason, error, StringComparison.OrdinalIgnoreCase);
            }
        }
        Assert.Equal(files.Count(f => f.Reason is null), job.Counts.Done);
        using var http = new HttpClient { BaseAddress = system.ApiUrl };
        Assert.Equal(System.Net.HttpStatusCode.OK, (await http.GetAsync("/healthz")).StatusCode);
        Assert.NotNull(system.Edit.Pid); // the worker is still up
    }

    [Fact]
    public async Task A_decompression_bomb_in_every_accepted_format_is_refused_at_upload()
    {
        await system.SmilingEditorAsync();
        foreach (var (name, bytes, reason) in Bombs().Append(("bomb.png", BombPng(), "pixels")))
        {
            var refused = await Assert.ThrowsAsync<SddApiException>(() => system.Api.Jobs.SubmitFilesAsync("smiling", [UploadFile.FromBytes(name, bytes)]));
            Assert.True(refused.Status == 422 && refused.Body.Contains(reason), $"{name}: {refused.Status} {refused.Body}");
            FaultScale.Report(output, $"| {name} ({bytes.Length} bytes, header claims a huge canvas) uploaded to POST /v1/jobs | 422: {refused.Detail} | - |");
        }
    }

    /// <summary>Small files of every other accepted format whose headers claim a canvas far above the pixel limit, and what the refusal says.</summary>
    private static IEnumerable<(string Name, byte[] Bytes, string Reason)> Bombs()
    {
        using var image = new Image<Rgb24>(16, 16, new Rgb24(120, 60, 30));
        byte[] Save(Action<Stream> save) { using var ms = new MemoryStream(); save(ms); return ms.ToArray(); }

        var jpeg = Save(s => image.SaveAsJpeg(s));
        int sof = Enumerable.Range(0, jpeg.Length - 1).First(i => jpeg[i] == 0xFF && jpeg[i + 1] is 0xC0 or 0xC2);
        System.Buffers.Binary.BinaryPrimitives.WriteUInt16BigEndian(jpeg.AsSpan(sof + 5), 65_000); // height
        System.Buffers.Binary.BinaryPrimitives.WriteUInt16BigEndian(jpeg.AsSpan(sof + 7), 65_000); // width
        yield return ("bomb.jpg", jpeg, "pixels");

        var gif = Save(s => image.SaveAsGif(s)); // logical screen 65535 x 65535, one small frame
        System.Buffers.Binary.BinaryPrimitives.WriteUInt16LittleEndian(gif.AsSpan(6), 65_535);
        System.Buffers.Binary.BinaryPrimitives.WriteUInt16LittleEndian(gif.AsSpan(8), 65_535);
        yield return ("huge-canvas.gif", gif, "pixels");

        var bmp = Save(s => image.SaveAsBmp(s));
        System.Buffers.Binary.BinaryPrimitives.WriteInt32LittleEndian(bmp.AsSpan(18), 100_000);
        System.Buffers.Binary.BinaryPrimitives.WriteInt32LittleEndian(bmp.AsSpan(22), 100_000);
        yield return ("bomb.bmp", bmp, "100000x100000"); // the BMP decoder refuses it itself

        var webp = Save(s => image.SaveAsWebp(s, new SixLabors.ImageSharp.Formats.Webp.WebpEncoder { FileFormat = SixLabors.ImageSharp.Formats.Webp.WebpFileFormatType.Lossy }));
        // "VP8 " chunk: frame tag (3 bytes), start code (3), then width and height (14 bits each, little-endian) at 26..29.
        System.Buffers.Binary.BinaryPrimitives.WriteUInt16LittleEndian(webp.AsSpan(26), 16_383);
        System.Buffers.Binary.BinaryPrimitives.WriteUInt16LittleEndian(webp.AsSpan(28), 16_383);
        yield return ("bomb.webp", webp, "pixels");

        var tiff = Save(s => image.SaveAsTiff(s));
        int ifd = System.Buffers.Binary.BinaryPrimitives.ReadInt32LittleEndian(tiff.AsSpan(4));
        int entries = System.Buffers.Binary.BinaryPrimitives.ReadUInt16LittleEndian(tiff.AsSpan(ifd));
        for (int e = 0; e < entries; e++)
        {
            int at = ifd + 2 + 12 * e;
            int tag = System.Buffers.Binary.BinaryPrimitives.ReadUInt16LittleEndian(tiff.AsSpan(at));
            if (tag is not (256 or 257)) continue; // ImageWidth, ImageLength
            int type = System.Buffers.Binary.BinaryPrimitives.ReadUInt16LittleEndian(tiff.AsSpan(at + 2));
            if (type == 3) System.Buffers.Binary.BinaryPrimitives.WriteUInt16LittleEndian(tiff.AsSpan(at + 8), 65_000);
            else System.Buffers.Binary.BinaryPrimitives.WriteInt32LittleEndian(tiff.AsSpan(at + 8), 100_000);
        }
        yield return ("bomb.tiff", tiff, "pixels");
    }

    private static byte[] Encode<T>(Image<T> image, PngEncoder? encoder = null) where T : unmanaged, IPixel<T>
    {
        using (image)
        using (var ms = new MemoryStream())
        {
            image.SaveAsPng(ms, encoder ?? new PngEncoder());
            return ms.ToArray();
        }
    }

    private static byte[] TwoFrameGif()
    {
        using var image = new Image<Rgba32>(20, 20, new Rgba32(255, 0, 0, 255));
        using var second = new Image<Rgba32>(20, 20, new Rgba32(0, 0, 255, 255));
        image.Frames.AddFrame(second.Frames.RootFrame);
        using var ms = new MemoryStream();
        image.SaveAsGif(ms);
        return ms.ToArray();
    }

    private static byte[] AnimatedWebpHeader()
    {
        var b = new byte[64];
        "RIFF"u8.CopyTo(b);
        BitConverter.GetBytes(56).CopyTo(b, 4);
        "WEBP"u8.CopyTo(b.AsSpan(8));
        "VP8X"u8.CopyTo(b.AsSpan(12));
        BitConverter.GetBytes(10).CopyTo(b, 16);
        b[20] = 0x02;
        return b;
    }

    /// <summary>A PNG whose header claims 60000 x 60000 pixels; the rest is a stub.</summary>
    private static byte[] BombPng()
    {
        using var image = new Image<Rgb24>(1, 1);
        using var ms = new MemoryStream();
        image.SaveAsPng(ms);
        var png = ms.ToArray();
        // IHDR: type at 12..15, width and height (big-endian) at 16..23, its CRC over type and data at 29..32.
        System.Buffers.Binary.BinaryPrimitives.WriteInt32BigEndian(png.AsSpan(16), 60_000);
        System.Buffers.Binary.BinaryPrimitives.WriteInt32BigEndian(png.AsSpan(20), 60_000);
        System.Buffers.Binary.BinaryPrimitives.WriteUInt32BigEndian(png.AsSpan(29), Crc32(png.AsSpan(12, 17)));
        return png;
    }

    private static uint Crc32(ReadOnlySpan<byte> data)
    {
        uint crc = 0xFFFFFFFF;
        foreach (var b in data)
        {
            crc ^= b;
            for (int k = 0; k < 8; k++) crc = (crc & 1) != 0 ? (crc >> 1) ^ 0xEDB88320u : crc >> 1;
        }
        return ~crc;
    }
    [Fact]
    public async Task An_oversized_image_in_a_data_set_fails_its_distillation_with_the_reason_before_it_is_held()
    {
        // Registration checks names only; the worker reads every image under a cap (64 MiB each, 4 GiB a data set).
        var portraits = SddSystem.Portraits(3, SddSystem.ImageSize, first: 400).ToList();
        var files = portraits.Select(p => UploadFile.FromBytes("images/" + p.Name, p.Bytes)).ToList();
        files.Add(UploadFile.FromBytes("images/huge.png", new byte[(64 << 20) + 1]));
        files.Add(UploadFile.FromBytes("labels.csv", System.Text.Encoding.ASCII.GetBytes(
            "image,smiling\n" + string.Join("", portraits.Select(p => $"{p.Name},-1\n")) + "huge.png,-1\n")));
        var upload = await system.Api.Uploads.UploadAsync(files);
        var dataset = await system.Api.Datasets.RegisterAsync(new RegisterDataset($"huge-{Guid.NewGuid():N}"[..16], Upload: upload.Id));
        var accepted = await system.Api.Attributes.CreateAsync(new CreateAttribute($"huge-{Guid.NewGuid():N}"[..16], system.TeacherId, "smiling", dataset.Id,
            new DistillSettings(Steps: 2, Scale: 10, Timesteps: "fixed:500")));
        var run = await system.Api.WaitForFinishedAsync(accepted.RunId, TimeSpan.FromMinutes(2), () => system.Distill.Tail());
        Assert.Equal(RunState.Failed, run.State);
        Assert.Contains("image 'huge.png' is larger than 64 MiB", run.Error);
    }
}
