using System.Buffers.Binary;
using System.Runtime.InteropServices;
using System.Text;
using System.Text.Json;

namespace Sdd.Ml.StableDiffusion;

/// <summary>A weight file or folder that cannot be loaded; the message names the file and every key at fault.</summary>
public sealed class WeightsException(string message) : Exception(message);

/// <summary>One tensor's entry in a safetensors header.</summary>
public sealed record SafetensorsEntry(string Name, string Dtype, long[] Shape, long Begin, long End)
{
    public long Elements => Shape.Aggregate(1L, (a, b) => a * b);
}

/// <summary>
/// A reader for the safetensors format (an 8-byte little-endian header length, a JSON header of
/// <c>name → {dtype, shape, data_offsets}</c>, then raw little-endian data). Written here rather than taken from
/// TorchSharp.PyBridge because the file is untrusted input: the header is bounded, every offset is checked against the
/// file and against the entry's shape and dtype before a byte is read, entries may not overlap, and tensors are read
/// one at a time (a 4 GB UNet is never held twice). F32, F16 and BF16 are converted to float32 on read.
/// Pickle formats are never read: <see cref="RefusePickle"/>.
/// </summary>
public sealed class SafetensorsFile
{
    public const long MaxHeaderBytes = 100L << 20;
    private static readonly Dictionary<string, int> ElementBytes = new()
    {
        ["F64"] = 8, ["F32"] = 4, ["F16"] = 2, ["BF16"] = 2, ["I64"] = 8, ["I32"] = 4, ["I16"] = 2, ["I8"] = 1, ["U8"] = 1, ["BOOL"] = 1,
    };

    public string Path { get; }
    public IReadOnlyDictionary<string, SafetensorsEntry> Entries { get; }
    public IReadOnlyDictionary<string, string> Metadata { get; }
    private readonly long dataStart;

    private SafetensorsFile(string path, Dictionary<string, SafetensorsEntry> entries, Dictionary<string, string> metadata, long dataStart)
    {
        Path = path;
        Entries = entries;
        Metadata = metadata;
        this.dataStart = dataStart;
    }

    /// <summary>Refuses pickle-based checkpoints by extension or by content: they can run code when loaded.</summary>
    public static void RefusePickle(string path)
    {
        if (StableDiffusionLayout.IsPickle(path)) throw new WeightsException(PickleMessage(path));
        if (!File.Exists(path)) return;
        Span<byte> head = stackalloc byte[4];
        using var f = File.OpenRead(path);
        int n = f.Read(head);
        // A PyTorch zip archive (PK\x03\x04) or a raw pickle stream (protocol opcode 0x80) under a .safetensors name.
        if (n >= 4 && head[0] == 'P' && head[1] == 'K' && head[2] == 3 && head[3] == 4 || n >= 1 && head[0] == 0x80)
            throw new WeightsException(PickleMessage(path));
    }

    private static string PickleMessage(string path) => StableDiffusionLayout.PickleMessage(path);

    public static SafetensorsFile Open(string path)
    {
        RefusePickle(path);
        if (!File.Exists(path)) throw new WeightsException($"{path}: no such file");
        using var f = File.OpenRead(path);
        long size = f.Length;
        if (size < 8) throw new WeightsException($"{path}: not a safetensors file ({size} bytes)");
        Span<byte> lenBytes = stackalloc byte[8];
        f.ReadExactly(lenBytes);
        ulong headerLen = BinaryPrimitives.ReadUInt64LittleEndian(lenBytes);
        if (headerLen < 2 || headerLen > (ulong)Math.Min(MaxHeaderBytes, size - 8))
            throw new WeightsException($"{path}: not a safetensors file (header length {headerLen} in a file of {size} bytes)");
        var header = new byte[(int)headerLen];
        f.ReadExactly(header);
        long dataLen = size - 8 - (long)headerLen;
        var entries = new Dictionary<string, SafetensorsEntry>(StringComparer.Ordinal);
        var metadata = new Dictionary<string, string>(StringComparer.Ordinal);
        try
        {
            using var doc = JsonDocument.Parse(header);
            if (doc.RootElement.ValueKind != JsonValueKind.Object) throw new WeightsException($"{path}: the header is not a JSON object");
            foreach (var p in doc.RootElement.EnumerateObject())
            {
                if (p.Name == "__metadata__")
                {
                    foreach (var m in p.Value.EnumerateObject()) metadata[m.Name] = m.Value.ValueKind == JsonValueKind.String ? m.Value.GetString()! : m.Value.GetRawText();
                    continue;
                }
                var dtype = p.Value.GetProperty("dtype").GetString() ?? "";
                if (!ElementBytes.TryGetValue(dtype, out int eb)) throw new WeightsException($"{path}: tensor '{p.Name}' has an unknown dtype '{dtype}'");
                var shape = p.Value.GetProperty("shape").EnumerateArray().Select(e => e.GetInt64()).ToArray();
                var offs = p.Value.GetProperty("data_offsets").EnumerateArray().Select(e => e.GetInt64()).ToArray();
                if (shape.Any(d => d < 0) || offs.Length != 2 || offs[0] < 0 || offs[1] < offs[0] || offs[1] > dataLen)
                    throw new WeightsException($"{path}: tensor '{p.Name}' has offsets [{string.Join(", ", offs)}] outside the data ({dataLen} bytes) or a negative shape");
                var entry = new SafetensorsEntry(p.Name, dtype, shape, offs[0], offs[1]);
                if (entry.Elements * eb != offs[1] - offs[0])
                    throw new WeightsException($"{path}: tensor '{p.Name}' ({dtype} [{string.Join(", ", shape)}]) needs {entry.Elements * eb} bytes but its offsets span {offs[1] - offs[0]}");
                if (!entries.TryAdd(p.Name, entry)) throw new WeightsException($"{path}: tensor '{p.Name}' appears twice");
            }
        }
        catch (Exception e) when (e is JsonException or KeyNotFoundException or InvalidOperationException or FormatException)
        {
            throw new WeightsException($"{path}: the safetensors header cannot be read ({e.Message})");
        }
        long end = -1;
        foreach (var e in entries.Values.Where(e => e.End > e.Begin).OrderBy(e => e.Begin))
        {
            if (e.Begin < end) throw new WeightsException($"{path}: tensor '{e.Name}' overlaps another tensor's data");
            end = e.End;
        }
        return new SafetensorsFile(path, entries, metadata, 8 + (long)headerLen);
    }

    /// <summary>The tensor as float32 (floating dtypes only), shaped as stored.</summary>
    public Tensor ReadFloat32(string name)
    {
        var e = Entries[name];
        var bytes = new byte[e.End - e.Begin];
        using (var f = File.OpenRead(Path))
        {
            f.Seek(dataStart + e.Begin, SeekOrigin.Begin);
            f.ReadExactly(bytes);
        }
        var values = new float[e.Elements];
        switch (e.Dtype)
        {
            case "F32":
                MemoryMarshal.Cast<byte, float>(bytes).CopyTo(values);
                break;
            case "F16":
                var halves = MemoryMarshal.Cast<byte, Half>(bytes.AsSpan());
                for (int i = 0; i < values.Length; i++) values[i] = (float)halves[i];
                break;
            case "BF16":
                var raw = MemoryMarshal.Cast<byte, ushort>(bytes);
                for (int i = 0; i < values.Length; i++) values[i] = BitConverter.Int32BitsToSingle(raw[i] << 16);
                break;
            case "F64":
                var doubles = MemoryMarshal.Cast<byte, double>(bytes);
                for (int i = 0; i < values.Length; i++) values[i] = (float)doubles[i];
                break;
            default:
                throw new WeightsException($"{Path}: tensor '{name}' is {e.Dtype}, not a floating-point weight");
        }
        return tensor(values, e.Shape);
    }

    /// <summary>Writes tensors as one safetensors file in F32, F16 or BF16 (tests and conversions).</summary>
    public static void Write(string path, IEnumerable<KeyValuePair<string, Tensor>> tensors, string dtype = "F32", IReadOnlyDictionary<string, string>? metadata = null)
    {
        int eb = dtype switch { "F32" => 4, "F16" or "BF16" => 2, _ => throw new ArgumentException($"dtype {dtype}: F32, F16 or BF16") };
        var items = tensors.OrderBy(kv => kv.Key, StringComparer.Ordinal).ToList();
        var header = new Dictionary<string, object>();
        if (metadata is { Count: > 0 }) header["__metadata__"] = metadata;
        long offset = 0;
        foreach (var (name, t) in items)
        {
            long n = t.numel() * eb;
            header[name] = new { dtype, shape = t.shape, data_offsets = new[] { offset, offset + n } };
            offset += n;
        }
        var json = Encoding.UTF8.GetBytes(JsonSerializer.Serialize(header));
        int pad = (8 - json.Length % 8) % 8;
        using var f = File.Create(path);
        Span<byte> len = stackalloc byte[8];
        BinaryPrimitives.WriteUInt64LittleEndian(len, (ulong)(json.Length + pad));
        f.Write(len);
        f.Write(json);
        for (int i = 0; i < pad; i++) f.WriteByte((byte)' ');
        foreach (var (_, t) in items)
        {
            var values = t.detach().cpu().to_type(ScalarType.Float32).contiguous().data<float>().ToArray();
            byte[] bytes = new byte[values.Length * eb];
            switch (dtype)
            {
                case "F32": MemoryMarshal.Cast<float, byte>(values).CopyTo(bytes); break;
                case "F16":
                    var h = MemoryMarshal.Cast<byte, Half>(bytes.AsSpan());
                    for (int i = 0; i < values.Length; i++) h[i] = (Half)values[i];
                    break;
                default:
                    var u = MemoryMarshal.Cast<byte, ushort>(bytes.AsSpan());
                    for (int i = 0; i < values.Length; i++)
                    {
                        uint bits = (uint)BitConverter.SingleToInt32Bits(values[i]);
                        u[i] = (ushort)((bits + 0x7FFF + ((bits >> 16) & 1)) >> 16); // round to nearest even, as torch does
                    }
                    break;
            }
            f.Write(bytes);
        }
    }
}
