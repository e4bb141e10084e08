using System.IO.Compression;
using System.Text;
using SixLabors.ImageSharp;
using SixLabors.ImageSharp.PixelFormats;

namespace Sdd.Ingest.Tests;

public static class TestData
{
    public static byte[] Png(int width = 8, int height = 8, byte shade = 128)
    {
        using var image = new Image<Rgba32>(width, height, new Rgba32(shade, 64, 32, 255));
        using var buffer = new MemoryStream();
        image.SaveAsPng(buffer);
        return buffer.ToArray();
    }

    /// <summary>A PNG whose header claims 100000 x 100000 pixels (a decompression bomb): only the header is valid.</summary>
    public static byte[] BombPng()
    {
        using var png = new MemoryStream();
        png.Write([0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A]);
        var ihdr = new byte[13];
        WriteBigEndian(ihdr, 0, 100_000);
        WriteBigEndian(ihdr, 4, 100_000);
        ihdr[8] = 8; ihdr[9] = 6; // 8-bit RGBA
        Chunk(png, "IHDR", ihdr);
        Chunk(png, "IDAT", [0x78, 0x9C, 0x63, 0x00, 0x00, 0x00, 0x01, 0x00, 0x01]);
        Chunk(png, "IEND", []);
        return png.ToArray();
    }

    public static string LabelsCsv(params string[] images) =>
        "image,smiling,white_hair\n" + string.Concat(images.Select((name, i) => $"{name},{(i % 2 == 0 ? "1" : "-1")},-1\n"));

    /// <summary>A dataset zip: labels.csv and images/ inside one top folder, plus any extra entries.</summary>
    public static byte[] DatasetZip(string[] images, string? labels = null, params (string Name, byte[] Content)[] extra)
    {
        using var buffer = new MemoryStream();
        using (var zip = new ZipArchive(buffer, ZipArchiveMode.Create, leaveOpen: true))
        {
            void Add(string name, byte[] content)
            {
                using var s = zip.CreateEntry(name).Open();
                s.Write(content);
            }
            Add("portraits/labels.csv", Encoding.UTF8.GetBytes(labels ?? LabelsCsv(images)));
            foreach (var image in images) Add($"portraits/images/{image}", Png());
            foreach (var (name, content) in extra) Add(name, content);
        }
        return buffer.ToArray();
    }

    private static void Chunk(Stream png, string type, byte[] data)
    {
        var header = new byte[4];
        WriteBigEndian(header, 0, data.Length);
        png.Write(header);
        var typeAndData = Encoding.ASCII.GetBytes(type).Concat(data).ToArray();
        png.Write(typeAndData);
        var crc = new byte[4];
        WriteBigEndian(crc, 0, (int)Crc32(typeAndData));
        png.Write(crc);
    }

    private static void WriteBigEndian(byte[] buffer, int offset, int value)
    {
        buffer[offset] = (byte)(value >> 24); buffer[offset + 1] = (byte)(value >> 16);
        buffer[offset + 2] = (byte)(value >> 8); buffer[offset + 3] = (byte)value;
    }

    private static uint Crc32(byte[] data)
    {
        uint crc = 0xFFFFFFFF;
        foreach (var b in data)
        {
            crc ^= b;
            for (int k = 0; k < 8; k++) crc = (crc & 1) != 0 ? (crc >> 1) ^ 0xEDB88320u : crc >> 1;
        }
        return ~crc;
    }
}

/// <summary>Every row of a cursor-paged list: follows each page's 'next' to the end.</summary>
public static class Paged
{
    public static async Task<List<JsonElement>> AllAsync(this HttpClient client, string url)
    {
        var rows = new List<JsonElement>();
        string? cursor = null;
        do
        {
            var separator = url.Contains('?') ? '&' : '?';
            var page = await client.GetFromJsonAsync<JsonElement>(cursor is null ? url : $"{url}{separator}cursor={Uri.EscapeDataString(cursor)}");
            rows.AddRange(page.GetProperty("items").EnumerateArray());
            cursor = page.GetProperty("next").ValueKind == JsonValueKind.String ? page.GetProperty("next").GetString() : null;
        } while (cursor is not null);
        return rows;
    }
}

public static class ProblemAssert
{
    /// <summary>The response is an RFC 7807 problem with this status; returns its detail.</summary>
    public static async Task<string> IsProblem(HttpResponseMessage response, HttpStatusCode status)
    {
        var text = await response.Content.ReadAsStringAsync();
        Assert.True(status == response.StatusCode, $"expected {(int)status}, got {(int)response.StatusCode}: {text}");
        Assert.Equal("application/problem+json", response.Content.Headers.ContentType?.MediaType);
        var problem = JsonDocument.Parse(text).RootElement;
        Assert.Equal((int)status, problem.GetProperty("status").GetInt32());
        Assert.False(string.IsNullOrEmpty(problem.GetProperty("title").GetString()));
        return problem.TryGetProperty("detail", out var detail) ? detail.GetString() ?? "" : "";
    }
}

/// <summary>Files built to attack an upload: bombs, lies and oddities, each small to send.</summary>
public static class HostileFiles
{
    /// <summary>A zip of <paramref name="entries"/> entries named images/bomb-N.png, each <paramref name="entryBytes"/> zeros (compresses ~1000:1), with labels.csv listing them.</summary>
    public static byte[] ZipBomb(int entries, int entryBytes)
    {
        using var buffer = new MemoryStream();
        using (var zip = new System.IO.Compression.ZipArchive(buffer, System.IO.Compression.ZipArchiveMode.Create, leaveOpen: true))
        {
            var names = Enumerable.Range(0, entries).Select(i => $"bomb-{i}.png").ToArray();
            using (var labels = new StreamWriter(zip.CreateEntry("labels.csv").Open())) labels.Write(TestData.LabelsCsv(names));
            var zeros = new byte[1 << 20];
            foreach (var name in names)
            {
                using var s = zip.CreateEntry("images/" + name, System.IO.Compression.CompressionLevel.SmallestSize).Open();
                for (int written = 0; written < entryBytes; written += zeros.Length) s.Write(zeros, 0, Math.Min(zeros.Length, entryBytes - written));
            }
        }
        return buffer.ToArray();
    }

    /// <summary>The first bytes of an animated WebP (RIFF, WEBP, VP8X with the animation flag) and a little more.</summary>
    public static byte[] AnimatedWebpHeader()
    {
        var b = new byte[64];
        "RIFF"u8.CopyTo(b);
        BitConverter.GetBytes(56).CopyTo(b, 4);
        "WEBP"u8.CopyTo(b.AsSpan(8));
        "VP8X"u8.CopyTo(b.AsSpan(12));
        BitConverter.GetBytes(10).CopyTo(b, 16);
        b[20] = 0x02; // animation
        b[24] = 99; b[27] = 99; // canvas 100 x 100 (minus one, 24-bit little-endian)
        return b;
    }
}
