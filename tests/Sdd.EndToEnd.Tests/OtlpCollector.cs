using System.Collections.Concurrent;
using System.Net;
using System.Net.Sockets;
using System.Text;

namespace Sdd.EndToEnd.Tests;

/// <summary>A span as a service exported it: ids in hex, the service (resource service.name), the instrumentation scope.</summary>
public sealed record ExportedSpan(string Service, string Scope, string TraceId, string SpanId, string ParentSpanId, string Name, int Kind,
    IReadOnlyDictionary<string, object> Attributes, DateTimeOffset Start)
{
    public const int Server = 2, Client = 3, Producer = 4, Consumer = 5;
    public string? Text(string key) => Attributes.TryGetValue(key, out var v) ? v as string : null;
    public long? Number(string key) => Attributes.TryGetValue(key, out var v) && v is long n ? n : null;
    public override string ToString() => $"{Service} {Scope} kind={Kind} '{Name}' {SpanId} <- {ParentSpanId}";
}

/// <summary>
/// An OTLP/HTTP trace receiver on loopback: the services run with OTEL_EXPORTER_OTLP_ENDPOINT pointing here and export
/// their spans as they would to a collector (protobuf ExportTraceServiceRequest on POST /v1/traces); the spans are decoded
/// with a small protobuf reader (the OTLP trace schema: resource_spans → resource, scope_spans → scope, spans).
/// </summary>
public sealed class OtlpCollector : IDisposable
{
    private readonly HttpListener _listener = new();
    private readonly ConcurrentQueue<ExportedSpan> _spans = new();
    private readonly Task _loop;

    public OtlpCollector()
    {
        int port;
        using (var probe = new TcpListener(IPAddress.Loopback, 0)) { probe.Start(); port = ((IPEndPoint)probe.LocalEndpoint).Port; }
        Endpoint = $"http://127.0.0.1:{port}";
        _listener.Prefixes.Add(Endpoint + "/");
        _listener.Start();
        _loop = Task.Run(LoopAsync);
    }

    public string Endpoint { get; }
    public IReadOnlyList<ExportedSpan> Spans => [.. _spans];
    public int Requests { get; private set; }

    /// <summary>The services' settings: export every span here, in batches sent every 200 ms.</summary>
    public IEnumerable<KeyValuePair<string, string>> Environment() =>
    [
        new("OTEL_EXPORTER_OTLP_ENDPOINT", Endpoint),
        new("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf"),
        new("OTEL_BSP_SCHEDULE_DELAY", "200"),
    ];

    private async Task LoopAsync()
    {
        while (_listener.IsListening)
        {
            HttpListenerContext context;
            try { context = await _listener.GetContextAsync(); }
            catch (Exception) { return; }
            try
            {
                using var body = new MemoryStream();
                await context.Request.InputStream.CopyToAsync(body);
                if (context.Request.Url?.AbsolutePath == "/v1/traces")
                {
                    foreach (var span in Decode(body.ToArray())) _spans.Enqueue(span);
                    Requests++;
                }
                context.Response.StatusCode = 200;
                context.Response.ContentType = "application/x-protobuf";
            }
            catch (Exception)
            {
                context.Response.StatusCode = 400;
            }
            context.Response.Close();
        }
    }

    public static List<ExportedSpan> Decode(byte[] request)
    {
        var spans = new List<ExportedSpan>();
        foreach (var (field, resourceSpans) in Fields(request))
        {
            if (field != 1) continue; // ExportTraceServiceRequest.resource_spans
            string service = "";
            var scopes = new List<byte[]>();
            foreach (var (f, v) in Fields(resourceSpans))
            {
                if (f == 1) // Resource.attributes
                    foreach (var (rf, kv) in Fields(v)) if (rf == 1 && KeyValue(kv) is ("service.name", string name)) service = name;
                if (f == 2) scopes.Add(v);
            }
            foreach (var scopeSpans in scopes)
            {
                string scope = "";
                foreach (var (f, v) in Fields(scopeSpans))
                {
                    if (f == 1) foreach (var (sf, sv) in Fields(v)) if (sf == 1) scope = Encoding.UTF8.GetString(sv);
                    if (f == 2) spans.Add(Span(service, scope, v));
                }
            }
        }
        return spans;
    }

    private static ExportedSpan Span(string service, string scope, byte[] span)
    {
        string trace = "", id = "", parent = "", name = "";
        int kind = 0;
        long start = 0;
        var attributes = new Dictionary<string, object>();
        foreach (var (f, v, n) in FieldsWithNumbers(span))
        {
            switch (f)
            {
                case 1: trace = Convert.ToHexStringLower(v!); break;
                case 2: id = Convert.ToHexStringLower(v!); break;
                case 4: parent = Convert.ToHexStringLower(v!); break;
                case 5: name = Encoding.UTF8.GetString(v!); break;
                case 6: kind = (int)n; break;
                case 7: start = n; break; // start_time_unix_nano (fixed64)
                case 9: if (KeyValue(v!) is ({ } key, { } value)) attributes[key] = value; break;
            }
        }
        return new ExportedSpan(service, scope, trace, id, parent, name, kind, attributes, DateTimeOffset.FromUnixTimeMilliseconds(start / 1_000_000));
    }

    /// <summary>KeyValue { key = 1; AnyValue value = 2 { string = 1; bool = 2; int = 3; double = 4 } }.</summary>
    private static (string?, object?) KeyValue(byte[] kv)
    {
        string? key = null;
        object? value = null;
        foreach (var (f, v) in Fields(kv))
        {
            if (f == 1) key = Encoding.UTF8.GetString(v);
            if (f == 2)
                foreach (var (af, av, an) in FieldsWithNumbers(v))
                    value = af switch { 1 => Encoding.UTF8.GetString(av!), 2 => an != 0, 3 => an, 4 => BitConverter.Int64BitsToDouble(an), _ => value };
        }
        return (key, value);
    }

    private static IEnumerable<(int Field, byte[] Value)> Fields(byte[] message) =>
        FieldsWithNumbers(message).Where(x => x.Bytes is not null).Select(x => (x.Field, x.Bytes!));

    /// <summary>Protobuf fields: length-delimited ones as bytes, varint and fixed ones as numbers.</summary>
    private static IEnumerable<(int Field, byte[]? Bytes, long Number)> FieldsWithNumbers(byte[] message)
    {
        int at = 0;
        while (at < message.Length)
        {
            ulong tag = Varint(message, ref at);
            int field = (int)(tag >> 3);
            switch ((int)(tag & 7))
            {
                case 0: yield return (field, null, (long)Varint(message, ref at)); break;
                case 1: yield return (field, null, BitConverter.ToInt64(message, at)); at += 8; break;
                case 2:
                    int length = (int)Varint(message, ref at);
                    yield return (field, message[at..(at + length)], 0);
                    at += length;
                    break;
                case 5: yield return (field, null, BitConverter.ToInt32(message, at)); at += 4; break;
                default: throw new InvalidDataException($"protobuf wire type {tag & 7} at {at}");
            }
        }
    }

    private static ulong Varint(byte[] data, ref int at)
    {
        ulong value = 0;
        for (int shift = 0; ; shift += 7)
        {
            byte b = data[at++];
            value |= (ulong)(b & 0x7F) << shift;
            if ((b & 0x80) == 0) return value;
        }
    }

    public void Dispose()
    {
        _listener.Stop();
        _listener.Close();
    }
}
