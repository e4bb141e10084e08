namespace Sdd.Tool;

/// <summary>What the tool touches outside itself, so tests can run it in-process: streams, environment, home folder, HTTP.</summary>
public sealed record ToolContext
{
    public required TextWriter Out { get; init; }
    public required TextWriter Error { get; init; }
    /// <summary>Environment variables (SDD_API_URL, SDD_API_KEY override the credentials file).</summary>
    public required Func<string, string?> Environment { get; init; }
    /// <summary>The user's home: credentials live in <c>~/.config/sdd/credentials.json</c>.</summary>
    public required string Home { get; init; }
    /// <summary>Standard error is a terminal: progress bars are drawn live, else a line now and then.</summary>
    public bool Interactive { get; init; }
    /// <summary>Standard output is a terminal: tables in colour.</summary>
    public bool Colors { get; init; }
    /// <summary>Ctrl-C (SIGINT) and SIGTERM cancel the running command (the real process; not in-process tests).</summary>
    public bool HandleSignals { get; init; }
    /// <summary>The HTTP stack under the client (tests); null = the default one.</summary>
    public HttpMessageHandler? Handler { get; init; }
    public TimeSpan PollInterval { get; init; } = TimeSpan.FromSeconds(1);
    public TimeSpan RetryDelay { get; init; } = TimeSpan.FromMilliseconds(500);
    /// <summary>How often a non-interactive progress report writes a line.</summary>
    public TimeSpan ReportInterval { get; init; } = TimeSpan.FromSeconds(5);

    public string CredentialsPath => Path.Combine(Home, ".config", "sdd", "credentials.json");

    public static ToolContext FromProcess() => new()
    {
        Out = Console.Out,
        Error = Console.Error,
        Environment = System.Environment.GetEnvironmentVariable,
        Home = System.Environment.GetEnvironmentVariable("HOME") is { Length: > 0 } home ? home : System.Environment.GetFolderPath(System.Environment.SpecialFolder.UserProfile),
        Interactive = !Console.IsErrorRedirected,
        Colors = !Console.IsOutputRedirected,
        HandleSignals = true,
    };
}
