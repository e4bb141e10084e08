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
