namespace Sdd.Tool;

/// <summary>What <c>sdd</c> exits with (shown in every command's --help).</summary>
public static class ExitCodes
{
    /// <summary>Done: the command worked; a job waited for edited every image.</summary>
    public const int Ok = 0;
    /// <summary>The job (or run) finished with failed items, or failed, or was cancelled.</summary>
    public const int Failed = 1;
    /// <summary>A bad command line, a missing file, not logged in.</summary>
    public const int Usage = 2;
    /// <summary>The API refused the request (its problem is printed) or could not be reached.</summary>
    public const int Api = 3;
    /// <summary>Interrupted (Ctrl-C); a job or run waited for keeps running on the server.</summary>
    public const int Interrupted = 130;

    public const string Help = """
          0    done (a job waited for: every image edited)
          1    the job or run finished with failed items, failed, or was cancelled
          2    usage error: bad arguments, a missing file or folder, not logged in
          3    API or network error: the API's problem (status, title, detail) is printed on stderr
          130  interrupted (Ctrl-C): a job or run keeps running; `sdd jobs status ID --wait` resumes
        """;
}

/// <summary>A failure the tool explains in one line and exits with <see cref="ExitCode"/>.</summary>
public sealed class ToolException(string message, int exitCode = ExitCodes.Usage) : Exception(message)
{
    public int ExitCode { get; } = exitCode;
}
