using Microsoft.AspNetCore.Mvc;
using Microsoft.AspNetCore.Mvc.RazorPages;
using Sdd.Ingest.Apis;
using Sdd.Ingest.Webhooks;

namespace Sdd.Ingest.Dashboard.Jobs;

/// <summary>
/// One job: its live progress (<see cref="JobsApi.DescribeAsync"/>), failed and skipped items with their reasons, a before/after gallery
/// of a few done items, the results zip, and cancel (the API's own <see cref="JobsApi.Cancel"/>, so only the owner may).
/// </summary>
public sealed class JobModel(SddDbContext db) : PageModel
{
    public const int GallerySize = 6;
    public const int FailedShown = 100;

    public sealed record Preview(Guid ItemId, string Name);

    public JobStatusDto? Job { get; private set; }
    public string? OwnerName { get; private set; }
    public bool Mine { get; private set; }
    public bool Finished => Job?.State is "completed" or "failed" or "cancelled";
    public IReadOnlyList<JobItemDto> Failed { get; private set; } = [];
    /// <summary>Items the editor's domain gate refused, with their scores (the first <see cref="FailedShown"/> by name).</summary>
    public IReadOnlyList<JobItemDto> Skipped { get; private set; } = [];
    public IReadOnlyList<Preview> Gallery { get; private set; } = [];
    public string? Problem { get; private set; }

    public async Task<IActionResult> OnGetAsync(Guid id, CancellationToken ct)
    {
        if (!await LoadAsync(id, ct)) return Missing(id);
        Failed = await db.JobItems.AsNoTracking().Where(i => i.JobId == id && i.State == ItemState.Failed)
            .OrderBy(i => i.Name ?? i.SourceKey).ThenBy(i => i.Id).Take(FailedShown)
            .Select(i => new JobItemDto(i.Id, i.Name ?? i.SourceKey, "failed", i.Error, null, i.DomainScore, i.OutsideDomain)).ToListAsync(ct);
        Skipped = await db.JobItems.AsNoTracking().Where(i => i.JobId == id && i.State == ItemState.Skipped)
            .OrderBy(i => i.Name ?? i.SourceKey).ThenBy(i => i.Id).Take(FailedShown)
            .Select(i => new JobItemDto(i.Id, i.Name ?? i.SourceKey, "skipped", i.Error, null, i.DomainScore, i.OutsideDomain)).ToListAsync(ct);
        Gallery = await db.JobItems.AsNoTracking().Where(i => i.JobId == id && i.State == ItemState.Done && i.OutputKey != null)
            .OrderBy(i => i.Name ?? i.SourceKey).ThenBy(i => i.Id).Take(GallerySize)
            .Select(i => new Preview(i.Id, i.Name ?? i.SourceKey)).ToListAsync(ct);
        return Page();
    }

    /// <summary>The progress section alone, for the page's live refresh.</summary>
    public async Task<IActionResult> OnGetProgressAsync(Guid id, CancellationToken ct) =>
        await LoadAsync(id, ct) ? Partial("_JobProgress", this) : NotFound();

    public async Task<IActionResult> OnPostCancelAsync(Guid id, [FromServices] WebhookOutbox outbox, CancellationToken ct)
    {
        if (!await LoadAsync(id, ct)) return Missing(id);
        var answer = await JobsApi.Cancel(id, User, db, outbox, ct);
        if (answer.Result is ProblemHttpResult)
        {
            Problem = "Only the job's owner can cancel it (the API's rule); this key may only look.";
            Response.StatusCode = StatusCodes.Status403Forbidden;
            return await OnGetAsync(id, ct);
        }
        return Redirect($"/ui/jobs/{id}"); // after a POST, a GET: reloading the page does not post again
    }

    private async Task<bool> LoadAsync(Guid id, CancellationToken ct)
    {
        var job = await db.VisibleJobs(User).SingleOrDefaultAsync(j => j.Id == id, ct);
        if (job is null) return false;
        Job = (await JobsApi.DescribeAsync(db, [job], ct))[0];
        Mine = job.Owner == User.Owner();
        OwnerName = (await db.OwnerNamesAsync([job.Owner], ct))[job.Owner];
        return true;
    }

    /// <summary>Another owner's job, or none: the page says "not found" with a 404, as the API does.</summary>
    private IActionResult Missing(Guid id)
    {
        Response.StatusCode = StatusCodes.Status404NotFound;
        NotFoundText = $"No job {id}.";
        return Page();
    }

    public string? NotFoundText { get; private set; }
}
