namespace Sdd.Tool;

/// <summary><c>sdd jobs submit|list|status|items|download|cancel</c>: editing photo batches.</summary>
internal static class JobCommands
{
    public static Command Build(ToolContext tool, Dictionary<Command, string[]> examples)
    {
        var jobs = new Command("jobs", "Edit batches of photos with an attribute's editor");
        jobs.Subcommands.Add(Submit(tool, examples));
        jobs.Subcommands.Add(List(tool, examples));
        jobs.Subcommands.Add(Status(tool, examples));
        jobs.Subcommands.Add(Items(tool, examples));
        jobs.Subcommands.Add(Download(tool, examples));
        jobs.Subcommands.Add(Cancel(tool, examples));
        return jobs;
    }

    private static Command Submit(ToolContext tool, Dictionary<Command, string[]> examples)
    {
        var inputs = new Argument<string[]>("DIR|FILES|s3://bucket/prefix")
        {
            Description = "A folder (its images, recursively), image files, or one s3://bucket/prefix granted to you (read in place)",
            Arity = ArgumentArity.OneOrMore,
        };
        var attribute = new Option<string>("--attribute") { Description = "The attribute to apply (yours, or a published one)", Required = true, HelpName = "NAME" };
        var format = new Option<string>("--format") { Description = "Output format (default: each input's own)", HelpName = "jpeg|png|webp" };
        format.AcceptOnlyFromAmong("jpeg", "png", "webp");
        var webhook = new Option<string>("--webhook") { Description = "A URL told (signed POST) when the job finishes", HelpName = "URL" };
        var events = new Option<string>("--webhook-events") { Description = "Which events: a comma list of job.completed, job.failed, job.cancelled (default all)", HelpName = "LIST" };
        var via = new Option<string>("--via")
        {
            Description = $"auto: one multipart request for up to {JobInputs.MultipartMaxFiles} files / {JobInputs.MultipartMaxBytes >> 20} MiB in one folder, else an upload area; " +
                          "upload: presigned PUTs straight to storage (sub-folders kept in the results' names); multipart: everything through the API (when storage is out of reach; file names only)",
            DefaultValueFactory = _ => "auto",
        };
        via.AcceptOnlyFromAmong("auto", "upload", "multipart");
        var wait = new Option<bool>("--wait") { Description = "Follow the job with a progress bar until it finishes (Ctrl-C stops watching, not the job)" };
        var outside = new Option<bool>("--edit-outside-domain")
        {
            Description = "Edit images the editor's domain gate refuses too (by default they are skipped, each with its score and the reason)",
        };
        var submit = new Command("submit", "Submit photos to be edited; prints the job id (with --wait, the finished job)")
            { inputs, attribute, format, webhook, events, via, wait, outside };
        examples[submit] =
        [
            "sdd jobs submit photos/ --attribute smiling --wait",
            "sdd jobs submit a.jpg b.png --attribute smiling --format png",
            "sdd jobs submit s3://photos/team-a/ --attribute smiling --webhook https://example.com/hooks/sdd",
            "id=$(sdd jobs submit photos/ --attribute smiling --json | jq -r .jobId)",
        ];
        submit.Handle(tool, async (inv, ct) =>
        {
            var given = JobInputs.Resolve(inv.Value(inputs)!);
            var options = new JobOptions(
                inv.Value(format) is { } f ? Enum.Parse<OutputFormat>(f, ignoreCase: true) : null,
                inv.Value(webhook),
                inv.Value(events) is { } e ? e.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries) : null,
                inv.Value(outside));
            if (options.Webhook is { } hook && !(Uri.TryCreate(hook, UriKind.Absolute, out var u) && u.Scheme is "http" or "https"))
                throw new ToolException($"--webhook {hook} is not an http(s) URL.");
            var name = inv.Value(attribute)!;
            var client = inv.Client;
            JobAccepted accepted;
            if (given.Source is { } source)
                accepted = await client.Jobs.SubmitAsync(new SubmitJob(name, source, options.Format, options.Webhook, options.WebhookEvents, options.EditOutsideDomain ? "edit" : null), ct);
            else
            {
                var mode = inv.Value(via);
                bool multipart = mode == "multipart" || (mode == "auto" && given.FitsOneRequest);
                if (multipart)
                {
                    inv.Note($"Sending {given.Files.Count} files ({Display.Bytes(given.Bytes)})...");
                    accepted = await client.Jobs.SubmitFilesAsync(name, given.Files, options, ct);
                }
                else
                {
                    accepted = await Display.WithProgressAsync(inv, "upload", report =>
                        client.Jobs.SubmitThroughUploadAsync(name, given.Files, options, new InlineProgress<UploadProgress>(p =>
                            report(p.Bytes, p.TotalBytes, $"{p.Files}/{p.TotalFiles} files, {Display.Bytes(p.Bytes)} of {Display.Bytes(p.TotalBytes)}")), ct));
                }
            }
            if (!inv.Value(wait))
            {
                if (inv.Json) inv.WriteJson(accepted);
                else
                {
                    inv.Out.MarkupLine($"Job {accepted.JobId}: {accepted.Items} images to edit with [bold]{Display.Esc(name)}[/].");
                    inv.Note($"Follow it: sdd jobs status {accepted.JobId} --wait; then sdd jobs download {accepted.JobId} --out DIR");
                }
                return ExitCodes.Ok;
            }
            if (!inv.Json) inv.Out.MarkupLine($"Job {accepted.JobId}: {accepted.Items} images to edit with [bold]{Display.Esc(name)}[/].");
            return await WaitAsync(inv, accepted.JobId, ct);
        });
        return submit;
    }

    private static Command List(ToolContext tool, Dictionary<Command, string[]> examples)
    {
        var state = new Option<string>("--state") { Description = "Only jobs in this state", HelpName = "queued|running|completed|failed|cancelled" };
        state.AcceptOnlyFromAmong(Enum.GetValues<JobState>().Select(SddJson.Name).ToArray());
        var attribute = new Option<string>("--attribute") { Description = "Only jobs of this attribute", HelpName = "NAME" };
        var limit = new Option<int>("--limit") { Description = "At most this many, newest first", DefaultValueFactory = _ => 20, HelpName = "N" };
        var list = new Command("list", "Your jobs, newest first") { state, attribute, limit };
        examples[list] = ["sdd jobs list", "sdd jobs list --state running --attribute smiling", "sdd jobs list --limit 500 --json"];
        list.Handle(tool, async (inv, ct) =>
        {
            if (inv.Value(limit) < 1) throw new ToolException("--limit must be at least 1.");
            var filter = new JobFilter(inv.Value(state) is { } s ? Enum.Parse<JobState>(s, ignoreCase: true) : null, inv.Value(attribute));
            int most = inv.Value(limit);
            var all = await Pages.AllAsync((cursor, t) => inv.Client.Jobs.ListAsync(filter, cursor, Math.Min(most, 1000), t), ct).Take(most).ToListAsync(ct);
            if (inv.Json) { inv.WriteJson(all); return ExitCodes.Ok; }
            var table = Display.Table("id", "attribute", "state", "done", "failed", "total", "images/s", "created");
            foreach (var j in all)
                table.AddRow(j.Id.ToString(), Display.Esc(j.Attribute), State(j), j.Counts.Done.ToString(CultureInfo.InvariantCulture),
                    j.Counts.Failed.ToString(CultureInfo.InvariantCulture), j.Total.ToString(CultureInfo.InvariantCulture), Display.Number(j.ImagesPerSecond), Display.When(j.CreatedAt));
            inv.Out.Write(table);
            return ExitCodes.Ok;
        });
        return list;
    }

    private static Command Status(ToolContext tool, Dictionary<Command, string[]> examples)
    {
        var id = new Argument<string>("ID") { Description = "The job's id" };
        var wait = new Option<bool>("--wait") { Description = "Follow the job with a progress bar until it finishes" };
        var status = new Command("status", "A job's state and counts (exit 1 when it finished with failed items, failed or was cancelled)") { id, wait };
        examples[status] = ["sdd jobs status 9c41…", "sdd jobs status 9c41… --wait", "sdd jobs status 9c41… --json | jq .counts"];
        status.Handle(tool, async (inv, ct) =>
        {
            var jobId = Lookup.Id(inv.Value(id)!, "job");
            if (inv.Value(wait)) return await WaitAsync(inv, jobId, ct);
            var job = await inv.Client.Jobs.GetAsync(jobId, ct);
            Print(inv, job);
            return Exit(job);
        });
        return status;
    }

    private static Command Items(ToolContext tool, Dictionary<Command, string[]> examples)
    {
        var id = new Argument<string>("ID") { Description = "The job's id" };
        var failed = new Option<bool>("--failed") { Description = "Only the failed items, with their reasons" };
        var state = new Option<string>("--state") { Description = "Only items in this state", HelpName = "pending|done|failed|cancelled|skipped" };
        state.AcceptOnlyFromAmong(Enum.GetValues<ItemState>().Select(SddJson.Name).ToArray());
        var items = new Command("items", "A job's images: name, state, domain score, and why one failed or was skipped") { id, failed, state };
        examples[items] = ["sdd jobs items 9c41… --failed", "sdd jobs items 9c41… --state skipped", "sdd jobs items 9c41… --state done --json"];
        items.Handle(tool, async (inv, ct) =>
        {
            if (inv.Value(failed) && inv.Value(state) is not (null or "failed")) throw new ToolException("--failed and --state name different states; give one.");
            ItemState? filter = inv.Value(failed) ? ItemState.Failed : inv.Value(state) is { } s ? Enum.Parse<ItemState>(s, ignoreCase: true) : null;
            var all = await inv.Client.Jobs.ListAllItemsAsync(Lookup.Id(inv.Value(id)!, "job"), filter, ct).ToListAsync(ct);
            if (inv.Json) { inv.WriteJson(all); return ExitCodes.Ok; }
            var table = Display.Table("name", "state", "domain score", "error");
            foreach (var i in all)
                table.AddRow(Display.Esc(i.Name),
                    i.State switch { ItemState.Failed => "[red]failed[/]", ItemState.Skipped => "[yellow]skipped[/]", _ => SddJson.Name(i.State) },
                    i.DomainScore is { } d ? $"{Display.Number(d)}{(i.OutsideDomain ? " (outside)" : "")}" : "",
                    Display.Esc(i.Error ?? ""));
            inv.Out.Write(table);
            return ExitCodes.Ok;
        });
        return items;
    }

    private static Command Download(ToolContext tool, Dictionary<Command, string[]> examples)
    {
        var id = new Argument<string>("ID") { Description = "The job's id" };
        var output = new Option<string>("--out") { Description = "The folder to unzip the results into (created; files of the same name replaced)", Required = true, HelpName = "DIR" };
        var download = new Command("download", "Download a job's edited images (the results zip, unpacked; names as the server gives them)") { id, output };
        examples[download] = ["sdd jobs download 9c41… --out edited/", "sdd jobs download 9c41… --out edited/ --json   # the files written"];
        download.Handle(tool, async (inv, ct) =>
        {
            var jobId = Lookup.Id(inv.Value(id)!, "job");
            var folder = inv.Value(output)!;
            var job = await inv.Client.Jobs.GetAsync(jobId, ct);
            if (!job.IsFinished) inv.Note($"[yellow]note:[/] job {jobId} is {SddJson.Name(job.State)}; downloading the {job.Counts.Done} images edited so far.");
            var written = await inv.Client.Jobs.ExtractResultsAsync(jobId, folder, ct);
            if (inv.Json) inv.WriteJson(new { jobId, folder = Path.GetFullPath(folder), files = written });
            else inv.Out.MarkupLine($"{written.Count} edited images in {Display.Esc(folder)}{(job.Counts.Failed > 0 ? $"; {job.Counts.Failed} failed (sdd jobs items {jobId} --failed)" : "")}");
            return ExitCodes.Ok;
        });
        return download;
    }

    private static Command Cancel(ToolContext tool, Dictionary<Command, string[]> examples)
    {
        var id = new Argument<string>("ID") { Description = "The job's id" };
        var cancel = new Command("cancel", "Cancel a job: its pending images are skipped; edited ones stay downloadable") { id };
        examples[cancel] = ["sdd jobs cancel 9c41…"];
        cancel.Handle(tool, async (inv, ct) =>
        {
            var job = await inv.Client.Jobs.CancelAsync(Lookup.Id(inv.Value(id)!, "job"), ct);
            Print(inv, job);
            return ExitCodes.Ok;
        });
        return cancel;
    }

    /// <summary>Follows a job with a progress bar (rate and ETA); prints the finished job. Ctrl-C stops watching, not the job.</summary>
    public static async Task<int> WaitAsync(Invocation inv, Guid jobId, CancellationToken ct)
    {
        JobStatus job;
        try
        {
            job = await Display.WithProgressAsync(inv, $"job {jobId.ToString()[..8]}", report =>
                inv.Client.Jobs.WaitAsync(jobId, new InlineProgress<JobStatus>(s => report(s.Processed, s.Total, Progress(s))), ct));
        }
        catch (OperationCanceledException) when (ct.IsCancellationRequested)
        {
            inv.Tool.Error.WriteLine($"Stopped waiting; job {jobId} keeps running. Resume with: sdd jobs status {jobId} --wait");
            return ExitCodes.Interrupted;
        }
        Print(inv, job);
        return Exit(job);
    }

    /// <summary>0 when every image was edited (or the job is still going), 1 when it finished with failed or skipped items, failed, or was cancelled.</summary>
    private static int Exit(JobStatus job) => !job.IsFinished || job.Succeeded ? ExitCodes.Ok : ExitCodes.Failed;

    private static string Progress(JobStatus s)
    {
        var rate = s.ImagesPerSecond;
        var eta = s.EtaSeconds ?? (rate > 0 ? (s.Total - s.Processed - s.Counts.Cancelled) / rate : null);
        return $"{s.Counts.Done}/{s.Total} done, {s.Counts.Failed} failed{(s.Counts.Skipped > 0 ? $", {s.Counts.Skipped} skipped" : "")}, {Display.Number(rate, "0.0")} img/s, ETA {(s.IsFinished ? "0:00" : Display.Duration(eta))}";
    }

    private static void Print(Invocation inv, JobStatus job)
    {
        if (inv.Json) inv.WriteJson(job);
        else inv.Out.MarkupLine($"Job {job.Id} ([bold]{Display.Esc(job.Attribute)}[/]{(job.EditorVersion is { } v ? $" v{v}" : "")}): {State(job)}, " +
                           $"{job.Counts.Done}/{job.Total} done, {job.Counts.Failed} failed, {job.Counts.Skipped} skipped, {job.Counts.Cancelled} cancelled, {job.Counts.Pending} pending" +
                           $"{(job.ImagesPerSecond is { } r ? $"; {Display.Number(r)} images/s" : "")}");
        if (job.Counts.Failed > 0) inv.Note($"Why they failed: sdd jobs items {job.Id} --failed");
        if (job.Counts.Skipped > 0)
            inv.Note($"{job.Counts.Skipped} skipped: outside the editor's domain (not like the photos it was trained on), left unedited; " +
                     $"their scores: sdd jobs items {job.Id} --state skipped; to edit them anyway submit with --edit-outside-domain");
        if (job.Counts.Done > 0 && job.IsFinished) inv.Note($"Download: sdd jobs download {job.Id} --out DIR");
    }

    private static string State(JobStatus job) => job.State switch
    {
        JobState.Completed when job.Succeeded => "[green]completed[/]",
        JobState.Completed when job.Counts.Failed == 0 && job.Counts.Cancelled == 0 && job.Counts.Skipped > 0 => "[yellow]completed with skipped images[/]",
        JobState.Completed => "[yellow]completed with errors[/]",
        JobState.Failed => "[red]failed[/]",
        JobState.Cancelled => "[yellow]cancelled[/]",
        _ => SddJson.Name(job.State),
    };
}
