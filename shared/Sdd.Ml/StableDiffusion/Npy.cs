using System.Buffers.Binary;
using System.Runtime.InteropServices;
using System.Text;
using System.Text.RegularExpressions;

namespace Sdd.Ml.StableDiffusion;

/// <summary>
/// NumPy's .npy format (1.0 written; 1.0–3.0 read): the magic <c>\x93NUMPY</c>, a version, a little-endian header
/// length, a Python-literal header <c>{'descr': '&lt;f4', 'fortran_order': False, 'shape': (1, 77), }</c> padded with
/// spaces to a multiple of 64 bytes and ended by a newline, then the data in C order.
/// </summary>
public static partial class Npy
{
    public const long MaxElements = 1L << 31;

    public static void WriteFloat32(string path, Tensor t) =>
        Write(path, "<f4", t.shape, MemoryMarshal.AsBytes(t.detach().cpu().to_type(ScalarType.Float32).contiguous().data<float>().ToArray().AsSpan()).ToArray());

    public static void WriteInt64(string path, Tensor t) =>
        Write(path, "<i8", t.shape, MemoryMarshal.AsBytes(t.detach().cpu().to_type(ScalarType.Int64).contiguous().data<long>().ToArray().AsSpan()).ToArray());

    private static void Write(string path, string descr, long[] shape, byte[] data)
    {
        var dims = shape.Length == 1 ? $"{shape[0]}," : string.Join(", ", shape);
        var header = $"{{'descr': '{descr}', 'fortran_order': False, 'shape': ({dims}), }}";
        int total = 10 + header.Length + 1;
        header += new string(' ', (64 - total % 64) % 64) + "\n";
        using var f = File.Create(path);
        f.Write([0x93, (byte)'N', (byte)'U', (byte)'M', (byte)'P', (byte)'Y', 1, 0]);
        Span<byte> len = stackalloc byte[2];
        BinaryPrimitives.WriteUInt16LittleEndian(len, (ushort)header.Length);
        f.Write(len);
        f.Write(Encoding.ASCII.GetBytes(header));
        f.Write(data);
    }

    /// <summary>Reads a little-endian float array (f2, f4 or f8) in C order as a float32 tensor.</summary>
    public static Tensor ReadFloat32(string path)
    {
        using var f = File.OpenRead(path);
        var magic = new byte[8];
        f.ReadExactly(magic);
        if (magic[0] != 0x93 || Encoding.ASCII.GetString(magic, 1, 5) != "NUMPY" || magic[6] is < 1 or > 3)
            throw new InvalidDataException($"{path}: not a .npy file");
        int headerLen;
        if (magic[6] == 1)
        {
            var b = new byte[2];
            f.ReadExactly(b);
            headerLen = BinaryPrimitives.ReadUInt16LittleEndian(b);
        }
        else
        {
            var b = new byte[4];
            f.ReadExactly(b);
            headerLen = (int)Math.Min(BinaryPrimitives.ReadUInt32LittleEndian(b), 1u << 20);
        }
        var hb = new byte[headerLen];
        f.ReadExactly(hb);
        var header = Encoding.ASCII.GetString(hb);
        var descr = DescrPattern().Match(header);
        var shapeMatch = ShapePattern().Match(header);
        if (!descr.Success || !shapeMatch.Success) throw new InvalidDataException($"{path}: unreadable .npy header {header.Trim()}");
        if (FortranPattern().IsMatch(header)) throw new InvalidDataException($"{path}: Fortran-ordered arrays are not read; save with np.ascontiguousarray");
        var shape = shapeMatch.Groups[1].Value.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries).Select(long.Parse).ToArray();
        long n = shape.Aggregate(1L, (a, d) => a * d);
        if (n > MaxElements) throw new InvalidDataException($"{path}: {n} elements, more than {MaxElements}");
        string d = descr.Groups[1].Value;
        int eb = d switch { "<f4" => 4, "<f2" => 2, "<f8" => 8, _ => throw new InvalidDataException($"{path}: dtype {d}; little-endian float (<f2, <f4, <f8) expected") };
        if (f.Length - f.Position != n * eb) throw new InvalidDataException($"{path}: {f.Length - f.Position} data bytes for {n} values of {eb} bytes");
        var bytes = new byte[n * eb];
        f.ReadExactly(bytes);
        var values = d switch
        {
            "<f4" => MemoryMarshal.Cast<byte, float>(bytes).ToArray(),
            "<f2" => MemoryMarshal.Cast<byte, Half>(bytes).ToArray().Select(h => (float)h).ToArray(),
            _ => MemoryMarshal.Cast<byte, double>(bytes).ToArray().Select(v => (float)v).ToArray(),
        };
        return tensor(values, shape);
    }

    /// <summary>Reads an int64 array (tests of what the probe wrote).</summary>
    public static (long[] Shape, long[] Values) ReadInt64(string path)
    {
        var all = File.ReadAllBytes(path);
        int headerLen = BinaryPrimitives.ReadUInt16LittleEndian(all.AsSpan(8, 2));
        var header = Encoding.ASCII.GetString(all, 10, headerLen);
        if (!header.Contains("'<i8'", StringComparison.Ordinal)) throw new InvalidDataException($"{path}: not an int64 array");
        var shape = ShapePattern().Match(header).Groups[1].Value.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries).Select(long.Parse).ToArray();
        return (shape, MemoryMarshal.Cast<byte, long>(all.AsSpan(10 + headerLen)).ToArray());
    }

    [GeneratedRegex(@"'descr'\s*:\s*'([^']*)'")]
    private static partial Regex DescrPattern();

    [GeneratedRegex(@"'shape'\s*:\s*\(([^)]*)\)")]
    private static partial Regex ShapePattern();

    [GeneratedRegex(@"'fortran_order'\s*:\s*True")]
    private static partial Regex FortranPattern();
}
