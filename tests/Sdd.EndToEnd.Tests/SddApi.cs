using System.Net;
using System.Net.Http.Headers;

namespace Sdd.EndToEnd.Tests;

/// <summary>The v1 HTTP API (docs/api.md) as the tests use it.</summary>
public sealed class SddApi(Uri baseAddress, string key) : IDisposable
{
    public static readonly JsonSerializerOptions Json = new(JsonSerializerDefaults.Web);
    private readonly HttpClient _http = Client(baseAddress, key);

    public static HttpClient Client(Uri baseAddress, string key)
    {
        var http = new HttpClient { BaseAddress = baseAddress, Timeout = TimeSpan.FromSeconds(60) };
        http.DefaultRequestHeaders.Add("X-Api-Key", key);
        return http;
    }

    public async Task<JsonElement> GetAsync(string path)
    {
        using var response = await _http.GetAsync(path);
        return await Read(response, path);
    }

    public async Task<JsonElement> PostAsync(string path, object body)
    {
        using var response = await _http.PostAsJsonAsync(path, body, Json);
        return await Read(response, path);
    }

    /// <summary>Any request, the answer as it came (the caller disposes it); a body is sent as JSON.</summary>
    public Task<HttpResponseMessage> SendAsync(HttpMethod method, string path, object? body = null)
    {
        var request = new HttpRequestMessage(method, path);
        if (body is not null) request.Content = JsonContent.Create(body, options: Json);
        return _http.SendAsync(request);
    }

    public Task<HttpResponseMessage> RawPostAsync(string path, object body) => SendAsync(HttpMethod.Post, path, body);

    /// <summary>POST /v1/jobs multipart, the answer as it came (the caller disposes it).</summary>
    public Task<HttpResponseMessage> SendMultipartAsync(string attribute, IEnumerable<(string Name, byte[] Bytes)> files)
    {
        var form = new MultipartFormDataContent { { new StringContent(attribute), "attribute" } };
        foreach (var (name, bytes) in files) form.Add(new ByteArrayContent(bytes), "files", name);
        return _http.PostAsync("/v1/jobs", form);
    }

    /// <summary>POST /v1/jobs multipart: the attribute and one part per file.</summary>
    public async Task<JsonElement> SubmitFilesAsync(string attribute, IEnumerable<(string Name, byte[] Bytes)> files)
    {
        using var form = new MultipartFormDataContent { { new StringContent(attribute), "attribute" } };
        foreach (var (name, bytes) in files)
        {
            var part = new ByteArrayContent(bytes);
            part.Headers.ContentType = new MediaTypeHeaderValue("image/png");
            form.Add(part, "files", name);
        }
        using var response = await _http.PostAsync("/v1/jobs", form);
        return await Read(response, "/v1/jobs");
    }

    /// <summary>
    /// Files into a new upload area of this key: POST /v1/uploads for presigned PUT URLs, then one plain PUT (no API key)
    /// per file. The upload's id and its prefix in the datasets bucket.
    /// </summary>
    public async Task<(Guid Id, string Prefix)> UploadAsync(IReadOnlyList<(string Name, byte[] Bytes)> files)
    {
        Guid? id = null;
        string prefix = "";
        using var plain = new HttpClient { Timeout = TimeSpan.FromSeconds(60) };
        foreach (var chunk in files.Chunk(1000))
        {
            var body = new { files = chunk.Select(f => f.Name).ToArray() };
            var answer = id is null ? await PostAsync("/v1/uploads", body) : await PostAsync($"/v1/uploads/{id}/files", body);
            id ??= answer.Id("id");
            prefix = answer.Str("prefix");
            var urls = answer.GetProperty("files").EnumerateArray().ToDictionary(f => f.Str("name"), f => f.Str("url"));
            await Parallel.ForEachAsync(chunk, new ParallelOptions { MaxDegreeOfParallelism = 8 }, async (f, ct) =>
            {
                using var response = await plain.PutAsync(urls[f.Name], new ByteArrayContent(f.Bytes), ct);
                Assert.True(response.IsSuccessStatusCode, $"PUT {f.Name}: {(int)response.StatusCode} {await response.Content.ReadAsStringAsync(ct)}");
            });
        }
        return (id!.Value, prefix);
    }

    public async Task<byte[]> DownloadAsync(string url)
    {
        using var plain = new HttpClient();
        return await plain.GetByteArrayAsync(url);
    }

    private static async Task<JsonElement> Read(HttpResponseMessage response, string path)
    {
        var text = await response.Content.ReadAsStringAsync();
        if (!response.IsSuccessStatusCode)
            throw new HttpRequestException($"{response.RequestMessage?.Method} {path} answered {(int)response.StatusCode}: {text}", null, response.StatusCode);
        return text.Length == 0 ? default : JsonDocument.Parse(text).RootElement.Clone();
    }

    /// <summary>Polls until <paramref name="done"/> holds for the resource at <paramref name="path"/>; returns its last state.</summary>
    public async Task<JsonElement> WaitForAsync(string path, Func<JsonElement, bool> done, TimeSpan timeout, Func<string>? diagnostics = null)
    {
        var deadline = DateTime.UtcNow + timeout;
        JsonElement last = default;
        while (DateTime.UtcNow < deadline)
        {
            last = await GetAsync(path);
            if (done(last)) return last;
            await Task.Delay(250);
        }
        throw new TimeoutException($"{path} did not reach the expected state in {timeout.TotalSeconds:0} s; last: {last}\n{diagnostics?.Invoke()}");
    }

    public void Dispose() => _http.Dispose();
}

public static class JsonExtensions
{
    public static string Str(this JsonElement e, string name) => e.GetProperty(name).GetString()!;
    public static int Int(this JsonElement e, string name) => e.GetProperty(name).GetInt32();
    public static Guid Id(this JsonElement e, string name) => e.GetProperty(name).GetGuid();
}
