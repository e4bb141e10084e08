using System.Buffers.Binary;
using System.IO.Compression;

namespace Sdd.Ml.Data;

/// <summary>
/// The colour profile in PNG (iCCP) and WebP (ICCP) files, where ImageSharp 2.1 leaves it out: its PNG decoder does not
/// read iCCP and neither its PNG nor its WebP encoder writes one (its JPEG decoder and encoder, and its WebP decoder, do).
/// </summary>
internal static class IccChunks
{
    /// <summary>No real profile comes near this (a few KB, a few hundred for LUT-based ones); more is refused unread.</summary>
    private const int MaxProfileBytes = 4 << 20;

    private static ReadOnlySpan<byte> PngSignature => [0x89, (byte)'P', (byte)'N', (byte)'G', 0x0D, 0x0A, 0x1A, 0x0A];

    /// <summary>The profile of a PNG's iCCP chunk (before the first IDAT), or null when there is none or it is unreadable.</summary>
    public static byte[]? ReadPng(ReadOnlySpan<byte> png)
    {
        if (!png.StartsWith(PngSignature)) return null;
        for (int at = PngSignature.Length; at + 12 <= png.Length;)
        {
            int length = BinaryPrimitives.ReadInt32BigEndian(png[at..]);
            if (length < 0 || at + 12L + length > png.Length) return null;
            var type = png.Slice(at + 4, 4);
            if (type.SequenceEqual("IDAT"u8)) return null;
            if (type.SequenceEqual("iCCP"u8)) return Inflate(png.Slice(at + 8, length));
            at += 12 + length;
        }
        return null;
    }

    /// <summary>The profile's name, a 0, the compression method (0: zlib), then the zlib stream.</summary>
    private static byte[]? Inflate(ReadOnlySpan<byte> data)
    {
        int nul = data.IndexOf((byte)0);
        if (nul < 1 || nul + 2 > data.Length || data[nul + 1] != 0) return null;
        try
        {
            using var z = new ZLibStream(new MemoryStream(data[(nul + 2)..].ToArray()), CompressionMode.Decompress);
            using var profile = new MemoryStream();
            var buffer = new byte[16 << 10];
            for (int n; (n = z.Read(buffer)) > 0;)
            {
                profile.Write(buffer, 0, n);
                if (profile.Length > MaxProfileBytes) return null;
            }
            return profile.ToArray();
        }
        catch (InvalidDataException) { return null; }
    }

    /// <summary>The PNG with an iCCP chunk right after its IHDR (where the specification wants it: before PLTE and IDAT).</summary>
    public static byte[] WritePng(byte[] png, byte[] profile)
    {
        const int afterIhdr = 8 + 12 + 13;
        if (!png.AsSpan().StartsWith(PngSignature) || !png.AsSpan(12, 4).SequenceEqual("IHDR"u8)) throw new ArgumentException("Not a PNG starting with IHDR.", nameof(png));
        if (ReadPng(png) is not null) return png;
        using var compressed = new MemoryStream();
        using (var z = new ZLibStream(compressed, CompressionLevel.Optimal, leaveOpen: true)) z.Write(profile);
        byte[] data = [.. "ICC Profile"u8, 0, 0, .. compressed.ToArray()];
        var chunk = new byte[12 + data.Length];
        BinaryPrimitives.WriteInt32BigEndian(chunk, data.Length);
        "iCCP"u8.CopyTo(chunk.AsSpan(4));
        data.CopyTo(chunk, 8);
        BinaryPrimitives.WriteUInt32BigEndian(chunk.AsSpan(8 + data.Length), Crc32(chunk.AsSpan(4, 4 + data.Length)));
        return [.. png.AsSpan(0, afterIhdr), .. chunk, .. png.AsSpan(afterIhdr)];
    }

    /// <summary>
    /// The WebP with an ICCP chunk right after its VP8X header, which says so (flag 0x20); a simple-format file (VP8 or
    /// VP8L alone) gets the VP8X header the profile needs.
    /// </summary>
    public static byte[] WriteWebp(byte[] webp, byte[] profile, int width, int height)
    {
        if (webp.Length < 20 || !webp.AsSpan(0, 4).SequenceEqual("RIFF"u8) || !webp.AsSpan(8, 4).SequenceEqual("WEBP"u8))
            throw new ArgumentException("Not a WebP file.", nameof(webp));
        var iccp = new byte[8 + profile.Length + (profile.Length & 1)];
        "ICCP"u8.CopyTo(iccp);
        BinaryPrimitives.WriteInt32LittleEndian(iccp.AsSpan(4), profile.Length);
        profile.CopyTo(iccp, 8);
        const int flagIcc = 0x20, flagAlpha = 0x10;
        byte[] result;
        if (webp.AsSpan(12, 4).SequenceEqual("VP8X"u8))
        {
            if ((webp[20] & flagIcc) != 0) return webp;
            result = [.. webp.AsSpan(0, 30), .. iccp, .. webp.AsSpan(30)];
            result[20] |= flagIcc;
        }
        else
        {
            var vp8x = new byte[18];
            "VP8X"u8.CopyTo(vp8x);
            vp8x[4] = 10;
            // A lossless bitstream says in its header whether it uses alpha (bit 28 after the 0x2f signature byte).
            bool alpha = webp.AsSpan(12, 4).SequenceEqual("VP8L"u8) && webp.Length >= 25 && (BinaryPrimitives.ReadUInt32LittleEndian(webp.AsSpan(21)) & (1u << 28)) != 0;
            vp8x[8] = (byte)(flagIcc | (alpha ? flagAlpha : 0));
            WriteUInt24(vp8x.AsSpan(12), width - 1);
            WriteUInt24(vp8x.AsSpan(15), height - 1);
            result = [.. webp.AsSpan(0, 12), .. vp8x, .. iccp, .. webp.AsSpan(12)];
        }
        BinaryPrimitives.WriteInt32LittleEndian(result.AsSpan(4), result.Length - 8);
        return result;
    }

    private static void WriteUInt24(Span<byte> to, int value) => (to[0], to[1], to[2]) = ((byte)value, (byte)(value >> 8), (byte)(value >> 16));

    private static readonly uint[] CrcTable = Enumerable.Range(0, 256).Select(n =>
    {
        uint c = (uint)n;
        for (int k = 0; k < 8; k++) c = (c & 1) != 0 ? 0xEDB88320u ^ (c >> 1) : c >> 1;
        return c;
    }).ToArray();

    /// <summary>The CRC-32 of a PNG chunk (ISO 3309, over its type and data).</summary>
    private static uint Crc32(ReadOnlySpan<byte> bytes)
    {
        uint c = 0xFFFFFFFFu;
        foreach (var b in bytes) c = CrcTable[(c ^ b) & 0xFF] ^ (c >> 8);
        return c ^ 0xFFFFFFFFu;
    }
}
