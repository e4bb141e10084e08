using System.Net;
using System.Net.Http.Headers;

namespace Sdd.Demo;

/// <summary>The v1 API (docs/api.md) as the demo drives it.</summary>
public sealed class DemoClient(Uri api, string key) : IDisposable
{
    private static readonly JsonSerializerOptions Json = new(JsonSerializerDefaults.Web);
    private readonly HttpClient _http = Create(api, key);

    public static HttpClient Create(Uri api, string key)
    {
        var http = new HttpClient { BaseAddress = api, Timeout = TimeSpan.FromMinutes(5) };
        http.DefaultRequestHeaders.Add("X-Api-Key", key);
        return http;
    }

    public static async Task<string> CreateKeyAsync(Uri api, string adminKey, string name)
    {
        using var http = Create(api, adminKey);
        var created = await Send(http, HttpMethod.Post, "/v1/keys", JsonContent.Create(new { name }, options: Json));
        return created.GetProperty("key").GetString()!;
    }

    /// <summary>
    /// The key in <paramref name="file"/> when it still authenticates; else a new key (named <paramref name="name"/>)
    /// written there with owner-only permissions. Returns the key and whether it was reused.
    /// </summary>
    public static async Task<(string Key, bool Reused)> KeepKeyAsync(Uri api, string adminKey, string file, string name)
    {
        if (File.Exists(file) && (await File.ReadAllTextAsync(file)).Trim() is { Length: > 0 } kept)
        {
            using var probe = Create(api, kept);
            using var response = await probe.GetAsync("/v1/keys/me");
            if (response.IsSuccessStatusCode) return (kept, true);
            if (response.StatusCode != HttpStatusCode.Unauthorized) response.EnsureSuccessStatusCode();
        }
        var key = await CreateKeyAsync(api, adminKey, name);
        Directory.CreateDirectory(Path.GetDirectoryName(Path.GetFullPath(file))!);
        var options = new FileStreamOptions { Mode = FileMode.Create, Access = FileAccess.Write };
        if (!OperatingSystem.IsWindows()) options.UnixCreateMode = UnixFileMode.UserRead | UnixFileMode.UserWrite;
        await using (var stream = new FileStream(file, options)) await stream.WriteAsync(System.Text.Encoding.UTF8.GetBytes(key + "\n"));
        if (!OperatingSystem.IsWindows()) File.SetUnixFileMode(file, UnixFileMode.UserRead | UnixFileMode.UserWrite); // also when it existed
        return (key, false);
    }

    /// <summary>
    /// Local files into a new upload area of this key (POST /v1/uploads, then a presigned PUT per file, 16 at a time):
    /// the upload's id and prefix.
    /// </summary>
    public async Task<(Guid Id, string Prefix)> UploadAsync(IReadOnlyList<(string Path, string Name)> files, Action<int, int> progress)
    {
        Guid? id = null;
        string prefix = "";
        var urls = new List<(string Path, string Url)>(files.Count);
        foreach (var chunk in files.Chunk(1000))
        {
            var body = new { files = chunk.Select(f => f.Name).ToArray() };
            var answer = id is null ? await PostAsync("/v1/uploads", body) : await PostAsync($"/v1/uploads/{id}/files", body);
            id ??= answer.GetProperty("id").GetGuid();
            prefix = answer.GetProperty("prefix").GetString()!;
            var byName = answer.GetProperty("files").EnumerateArray().ToDictionary(u => u.GetProperty("name").GetString()!, u => u.GetProperty("url").GetString()!);
            urls.AddRange(chunk.Select(f => (f.Path, byName[f.Name])));
        }
        using var plain = new HttpClient { Timeout = TimeSpan.FromMinutes(5) }; // S3 gets no API key
        int done = 0;
        await Parallel.ForEachAsync(urls, new ParallelOptions { MaxDegreeOfParallelism = 16 }, async (u, ct) =>
        {
            using var content = new StreamContent(File.OpenRead(u.Path));
            content.Headers.ContentType = new MediaTypeHeaderValue(u.Path.EndsWith(".png", StringComparison.Ordinal) ? "image/png" : "text/plain");
            using var response = await plain.PutAsync(u.Url, content, ct);
            if (!response.IsSuccessStatusCode)
                throw new HttpRequestException($"PUT {u.Path} to its upload URL: {(int)response.StatusCode} {await response.Content.ReadAsStringAsync(ct)}", null, response.StatusCode);
            progress(Interlocked.Increment(ref done), urls.Count);
        });
        return (id!.Value, prefix);
    }

    public Task<JsonElement> GetAsync(string path) => Send(_http, HttpMethod.Get, path, null);
    public Task<JsonElement> PostAsync(string path, object body) => Send(_http, HttpMethod.Post, path, JsonContent.Create(body, options: Json));

    /// <summary>POST that may answer 409 (the resource exists): returns null then.</summary>
    public async Task<JsonElement?> TryPostAsync(string path, object body)
    {
        try { return await PostAsync(path, body); }
        catch (HttpRequestException e) when (e.StatusCode == HttpStatusCode.Conflict) { return null; }
    }

    public async Task<JsonElement> SubmitFilesAsync(string attribute, IEnumerable<(string Name, byte[] Bytes)> files)
    {
        var form = new MultipartFormDataContent { { new StringContent(attribute), "attribute" } };
        foreach (var (name, bytes) in files)
        {
            var part = new ByteArrayContent(bytes);
            part.Headers.ContentType = new MediaTypeHeaderValue("image/png");
            form.Add(part, "files", name);
        }
        return await Send(_http, HttpMethod.Post, "/v1/jobs", form);
    }

    public async Task<byte[]> DownloadAsync(string url)
    {
        using var response = await _http.GetAsync(url);
        response.EnsureSuccessStatusCode();
        return await response.Content.ReadAsByteArrayAsync();
    }

    private static async Task<JsonElement> Send(HttpClient http, HttpMethod method, string path, HttpContent? content)
    {
        using var request = new HttpRequestMessage(method, path) { Content = content };
        using var response = await http.SendAsync(request);
        var text = await response.Content.ReadAsStringAsync();
        if (!response.IsSuccessStatusCode)
        {
            string detail = text;
            try { using var doc = JsonDocument.Parse(text); detail = doc.RootElement.TryGetProperty("detail", out var d) ? d.GetString() ?? text : text; } catch (JsonException) { }
            throw new HttpRequestException($"{method} {path}: {(int)response.StatusCode} {detail}", null, response.StatusCode);
        }
        return text.Length == 0 ? default : JsonDocument.Parse(text).RootElement.Clone();
    }

    public void Dispose() => _http.Dispose();
}
