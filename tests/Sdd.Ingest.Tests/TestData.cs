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
