namespace Sdd.Tool;

/// <summary><c>sdd runs watch|list|cancel</c>: training runs of teachers and editor versions.</summary>
internal static class RunCommands
{
    public static Command Build(ToolContext tool, Dictionary<Command, string[]> examples)
    {
        var runs = new Command("runs", "Training runs: a teacher's training or an editor version's distillation");

        var id = new Argument<string>("ID") { Description = "The run's id" };
        var watch = new Command("watch", "Follow a run to its end with a progress bar (exit 0 succeeded, 1 failed or cancelled)") { id };
        examples[watch] = ["sdd runs watch 0b5c…", "sdd runs watch 0b5c… --json   # the finished run"];
        watch.Handle(tool, async (inv, ct) => await WatchAsync(inv, Lookup.Id(inv.Value(id)!, "run"), ct));

        var list = new Command("list", "Your runs, newest first");
        examples[list] = ["sdd runs list", "sdd runs list --json"];
        list.Handle(tool, async (inv, ct) =>
        {
            var all = await inv.Client.Runs.ListAllAsync(ct).ToListAsync(ct);
            if (inv.Json) { inv.WriteJson(all); return ExitCodes.Ok; }
            var table = Display.Table("id", "kind", "state", "step", "heartbeat", "error");
            foreach (var r in all)
                table.AddRow(r.Id.ToString(), SddJson.Name(r.Kind), State(r.State), $"{r.Step}/{r.TotalSteps}", Display.When(r.HeartbeatAt), Display.Esc(r.Error ?? ""));
            inv.Out.Write(table);
            return ExitCodes.Ok;
        });

        var cancelId = new Argument<string>("ID") { Description = "The run's id" };
        var cancel = new Command("cancel", "Cancel a queued or running run (yours; an admin key cancels any): its worker stops within a heartbeat, what it was making fails") { cancelId };
        examples[cancel] = ["sdd runs cancel 0b5c…", "sdd runs cancel 0b5c… --json   # the cancelled run"];
        cancel.Handle(tool, async (inv, ct) =>
        {
            var run = await inv.Client.Runs.CancelAsync(Lookup.Id(inv.Value(cancelId)!, "run"), ct);
            if (inv.Json) inv.WriteJson(run);
            else inv.Out.MarkupLine($"Run {run.Id} {State(run.State)} at step {run.Step}/{run.TotalSteps}.");
            return ExitCodes.Ok;
        });

        runs.Subcommands.Add(watch);
        runs.Subcommands.Add(list);
        runs.Subcommands.Add(cancel);
        return runs;
    }

    /// <summary>Waits for a run with a progress bar; prints it; 0 when it succeeded, 1 when it failed, 130 on Ctrl-C (the run goes on).</summary>
    public static async Task<int> WatchAsync(Invocation inv, Guid runId, CancellationToken ct)
    {
        Run run;
        try
        {
            run = await Display.WithProgressAsync(inv, $"run {runId.ToString()[..8]}", report =>
                inv.Client.Runs.WaitAsync(runId, new InlineProgress<Run>(r =>
                    report(r.Step, r.TotalSteps, $"{SddJson.Name(r.State)} step {r.Step}/{r.TotalSteps}")), ct));
        }
        catch (OperationCanceledException) when (ct.IsCancellationRequested)
        {
            inv.Tool.Error.WriteLine($"Stopped watching; run {runId} goes on. Follow it again with: sdd runs watch {runId}");
            return ExitCodes.Interrupted;
        }
        if (inv.Json) inv.WriteJson(run);
        else if (run.State == RunState.Succeeded) inv.Out.MarkupLine($"Run {run.Id} [green]succeeded[/] at step {run.Step}/{run.TotalSteps}.");
        else inv.Out.MarkupLine($"Run {run.Id} {State(run.State)} at step {run.Step}/{run.TotalSteps}: {Display.Esc(run.Error ?? "no reason given")}");
        return run.State == RunState.Succeeded ? ExitCodes.Ok : ExitCodes.Failed;
    }

    private static string State(RunState state) => state switch
    {
        RunState.Succeeded => "[green]succeeded[/]",
        RunState.Failed => "[red]failed[/]",
        RunState.Cancelled => "[yellow]cancelled[/]",
        _ => SddJson.Name(state),
    };
}
