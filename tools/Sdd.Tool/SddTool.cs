using System.CommandLine.Help;
using System.CommandLine.Invocation;
using System.CommandLine.Parsing;

namespace Sdd.Tool;

/// <summary>The command tree of <c>sdd</c> and how it runs: parse errors exit 2, the API's problems 3, a job's failures 1.</summary>
public static class SddTool
{
    /// <summary>--json on every command: stdout holds one JSON document and nothing else.</summary>
    internal static readonly Option<bool> JsonOption = new("--json")
    {
        Description = "Print one JSON document on stdout and nothing else (progress and hints go to stderr)",
        Recursive = true,
    };

    public static async Task<int> RunAsync(string[] args, ToolContext tool, CancellationToken ct = default)
    {
        var root = Build(tool);
        var parse = root.Parse(args);
        if (parse.Errors.Count > 0 && parse.Action is not (HelpAction or HelpWithExamples))
        {
            foreach (var error in parse.Errors) tool.Error.WriteLine($"sdd: {error.Message}");
            tool.Error.WriteLine($"Run '{CommandPath(parse.CommandResult)} --help' for usage and examples.");
            return ExitCodes.Usage;
        }
        var config = new InvocationConfiguration
        {
            Output = tool.Out,
            Error = tool.Error,
            EnableDefaultExceptionHandler = false,
            ProcessTerminationTimeout = tool.HandleSignals ? TimeSpan.FromSeconds(5) : null,
        };
        try
        {
            return await parse.InvokeAsync(config, ct);
        }
        catch (ToolException e)
        {
            tool.Error.WriteLine($"sdd: {e.Message}");
            return e.ExitCode;
        }
        catch (SddApiException e)
        {
            tool.Error.WriteLine($"sdd: {e.Status} {e.Title}{(string.IsNullOrEmpty(e.Detail) ? "" : ": " + e.Detail)}");
            if (e.RetryAfter is { } after) tool.Error.WriteLine($"sdd: the API asks to try again in {Math.Ceiling(after.TotalSeconds)} s.");
            if (Fix(e) is { } fix) tool.Error.WriteLine($"sdd: {fix}");
            return ExitCodes.Api;
        }
        catch (HttpRequestException e)
        {
            tool.Error.WriteLine($"sdd: the API cannot be reached: {e.Message}");
            tool.Error.WriteLine("sdd: is it running? On this machine: ./sdd up && ./sdd services start (or ./sdd demo); elsewhere check SDD_API_URL or sdd login --api URL.");
            return ExitCodes.Api;
        }
        catch (InvalidDataException e)
        {
            tool.Error.WriteLine($"sdd: {e.Message}");
            return ExitCodes.Api;
        }
        catch (TaskCanceledException e) when (e.InnerException is TimeoutException)
        {
            tool.Error.WriteLine($"sdd: the API did not answer in time: {e.Message}");
            return ExitCodes.Api;
        }
        catch (OperationCanceledException)
        {
            tool.Error.WriteLine("sdd: interrupted.");
            return ExitCodes.Interrupted;
        }
    }

    /// <summary>The whole tree: login, datasets, teachers, attributes, jobs, runs.</summary>
    public static Command Build(ToolContext tool)
    {
        var root = new Command("sdd", "Edit photo batches by attribute with SDD's distilled editors: log in, submit photos, download the results.");
        root.Options.Add(new HelpOption { Recursive = true });
        root.Options.Add(new VersionOption());
        root.Options.Add(JsonOption);
        var examples = new Dictionary<Command, string[]>
        {
            [root] =
            [
                "sdd login --api http://127.0.0.1:8080 --key $(cat .stack/demo.key)",
                "sdd jobs submit photos/ --attribute smiling --wait",
                "sdd jobs download <job-id> --out edited/",
            ],
        };
        root.Subcommands.Add(LoginCommand.Build(tool, examples));
        root.Subcommands.Add(DatasetCommands.Build(tool, examples));
        root.Subcommands.Add(TeacherCommands.Build(tool, examples));
        root.Subcommands.Add(AttributeCommands.Build(tool, examples));
        root.Subcommands.Add(JobCommands.Build(tool, examples));
        root.Subcommands.Add(RunCommands.Build(tool, examples));

        var help = root.Options.OfType<HelpOption>().Single();
        help.Action = new HelpWithExamples((HelpAction)help.Action!, examples);
        return root;
    }

    /// <summary>Gives <paramref name="command"/> an action run with an <see cref="Invocation"/> (its output mode and client).</summary>
    internal static void Handle(this Command command, ToolContext tool, Func<Invocation, CancellationToken, Task<int>> action) =>
        command.SetAction(async (parse, ct) =>
        {
            using var inv = new Invocation(tool, parse, parse.GetValue(JsonOption));
            return await action(inv, ct);
        });

    private static string CommandPath(CommandResult result)
    {
        var names = new List<string>();
        for (SymbolResult? r = result; r is CommandResult c; r = c.Parent) names.Insert(0, c.Command.Name);
        return string.Join(' ', names);
    }

    /// <summary>The command that fixes a problem a new user meets first, or null.</summary>
    internal static string? Fix(SddApiException e) => e.Status switch
    {
        401 => "log in with a valid key: sdd login --api URL --key KEY (after ./sdd demo: --key \"$(cat .stack/demo.key)\"; an admin makes keys with POST /v1/keys).",
        409 when e.Detail?.Contains("no ready editor version", StringComparison.Ordinal) == true =>
            "its editor is still being distilled or failed: sdd runs list, sdd attributes show NAME.",
        _ => null,
    };
}

/// <summary>The standard help, then the command's examples, the exit codes and where credentials come from.</summary>
internal sealed class HelpWithExamples(HelpAction help, IReadOnlyDictionary<Command, string[]> examples) : SynchronousCommandLineAction
{
    public override bool ClearsParseErrors => true;

    public override int Invoke(ParseResult parse)
    {
        help.Invoke(parse);
        var output = parse.InvocationConfiguration.Output;
        if (examples.TryGetValue(parse.CommandResult.Command, out var lines))
        {
            output.WriteLine("Examples:");
            foreach (var line in lines) output.WriteLine("  " + line);
            output.WriteLine();
        }
        output.WriteLine("Exit codes:");
        output.Write(ExitCodes.Help);
        output.WriteLine();
        output.WriteLine("Credentials: ~/.config/sdd/credentials.json (written by sdd login); SDD_API_URL and SDD_API_KEY override it.");
        return ExitCodes.Ok;
    }

}
