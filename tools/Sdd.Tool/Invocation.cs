namespace Sdd.Tool;

/// <summary>One command being run: its parsed line, where its output goes (a table for people, JSON with --json), the client.</summary>
public sealed class Invocation : IDisposable
{
    private static readonly JsonSerializerOptions Indented = new(SddJson.Options) { WriteIndented = true };
    private SddClient? _client;

    internal Invocation(ToolContext tool, ParseResult parse, bool json)
    {
        Tool = tool;
        Parse = parse;
        Json = json;
        Out = Console(tool.Out, colors: tool.Colors && !json, live: false);
        Err = Console(tool.Error, colors: tool.Interactive, live: tool.Interactive);
    }

    public ToolContext Tool { get; }
    public ParseResult Parse { get; }
    /// <summary>--json: stdout holds one JSON document and nothing else.</summary>
    public bool Json { get; }
    /// <summary>stdout, for people.</summary>
    public IAnsiConsole Out { get; }
    /// <summary>stderr: progress, hints, warnings.</summary>
    public IAnsiConsole Err { get; }

    public T? Value<T>(Option<T> option) => Parse.GetValue(option);
    public T? Value<T>(Argument<T> argument) => Parse.GetValue(argument);

    /// <summary>The client for the logged-in API (credentials file, or SDD_API_URL / SDD_API_KEY).</summary>
    public SddClient Client => _client ??= Connect(Credentials.Resolve(Tool));

    public SddClient Connect(Credentials credentials)
    {
        if (!Uri.TryCreate(credentials.Api, UriKind.Absolute, out var api) || api.Scheme is not ("http" or "https"))
            throw new ToolException($"'{credentials.Api}' is not an http(s) address of the API.");
        var http = Tool.Handler is null ? new HttpClient() : new HttpClient(Tool.Handler, disposeHandler: false);
        http.Timeout = TimeSpan.FromMinutes(10);
        http.DefaultRequestHeaders.UserAgent.ParseAdd($"sdd-tool/{typeof(Invocation).Assembly.GetName().Version?.ToString(3) ?? "0"}");
        _disposables.Add(http);
        return new SddClient(http, new SddClientOptions
        {
            BaseAddress = api, ApiKey = credentials.Key, PollInterval = Tool.PollInterval, RetryDelay = Tool.RetryDelay,
        });
    }

    private readonly List<IDisposable> _disposables = [];

    /// <summary>The machine-readable answer on stdout (camelCase, enums as lowercase strings).</summary>
    public void WriteJson<T>(T value) => Tool.Out.WriteLine(JsonSerializer.Serialize(value, Indented));

    /// <summary>A line for people on stderr (also under --json, where stdout is the script's).</summary>
    public void Note(string markup) => Err.MarkupLine(markup);

    public void Dispose()
    {
        foreach (var d in _disposables) d.Dispose();
    }

    private static IAnsiConsole Console(TextWriter writer, bool colors, bool live)
    {
        var console = AnsiConsole.Create(new AnsiConsoleSettings
        {
            Out = new AnsiConsoleOutput(writer),
            Ansi = colors ? AnsiSupport.Detect : AnsiSupport.No,
            ColorSystem = colors ? ColorSystemSupport.Detect : ColorSystemSupport.NoColors,
            Interactive = live ? InteractionSupport.Yes : InteractionSupport.No,
        });
        if (!colors) console.Profile.Width = 160; // tables in files and pipes are not cut at 80 columns
        return console;
    }
}
