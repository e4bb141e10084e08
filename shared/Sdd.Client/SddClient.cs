namespace Sdd.Client;

/// <summary>
/// A typed client of the SDD v1 HTTP API (docs/api.md), one property per resource: <see cref="Jobs"/>, <see cref="Attributes"/>,
/// <see cref="Teachers"/>, <see cref="Runs"/>, <see cref="Datasets"/>, <see cref="Uploads"/>, <see cref="Grants"/>, <see cref="Keys"/>.
/// Errors are <see cref="SddApiException"/>s; passing failures are tried again (<see cref="SddClientOptions"/>), creations
/// under one <c>Idempotency-Key</c> per call.
/// </summary>
public sealed class SddClient : IDisposable
{
    private readonly HttpClient _http;
    private readonly bool _ownsHttp;

    /// <summary>Over <paramref name="http"/>, whose <see cref="HttpClient.BaseAddress"/> is the API's address.</summary>
    public SddClient(HttpClient http, string apiKey) : this(http, new SddClientOptions { ApiKey = apiKey }) { }

    /// <summary>With an HttpClient of its own, disposed with this client.</summary>
    public SddClient(Uri api, string apiKey) : this(new SddClientOptions { BaseAddress = api, ApiKey = apiKey }) { }

    /// <summary>With an HttpClient of its own (<see cref="SddClientOptions.Timeout"/>), disposed with this client.</summary>
    public SddClient(SddClientOptions options) : this(new HttpClient { Timeout = options.Timeout }, options, ownsHttp: true) { }

    public SddClient(HttpClient http, SddClientOptions options) : this(http, options, ownsHttp: false) { }

    private SddClient(HttpClient http, SddClientOptions options, bool ownsHttp)
    {
        ArgumentNullException.ThrowIfNull(http);
        ArgumentException.ThrowIfNullOrEmpty(options.ApiKey);
        var address = options.BaseAddress ?? http.BaseAddress
            ?? throw new ArgumentException("Give the API's address: SddClientOptions.BaseAddress or the HttpClient's BaseAddress.", nameof(options));
        if (!address.IsAbsoluteUri) throw new ArgumentException($"The API's address '{address}' is not absolute.", nameof(options));
        if (!address.AbsoluteUri.EndsWith('/')) address = new Uri(address.AbsoluteUri + "/");
        (_http, _ownsHttp) = (http, ownsHttp);
        BaseAddress = address;
        var transport = new ApiTransport(http, address, options);
        Keys = new KeysClient(transport);
        Uploads = new UploadsClient(transport);
        Grants = new GrantsClient(transport);
        Datasets = new DatasetsClient(transport, Uploads);
        Teachers = new TeachersClient(transport);
        Runs = new RunsClient(transport);
        Attributes = new AttributesClient(transport);
        Jobs = new JobsClient(transport, Uploads);
    }

    public Uri BaseAddress { get; }
    public KeysClient Keys { get; }
    public UploadsClient Uploads { get; }
    public GrantsClient Grants { get; }
    public DatasetsClient Datasets { get; }
    public TeachersClient Teachers { get; }
    public RunsClient Runs { get; }
    public AttributesClient Attributes { get; }
    public JobsClient Jobs { get; }

    public void Dispose()
    {
        if (_ownsHttp) _http.Dispose();
    }
}
