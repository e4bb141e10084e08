using Microsoft.AspNetCore.Mvc;
using Microsoft.AspNetCore.Mvc.RazorPages;
using Sdd.Ingest.Apis;

namespace Sdd.Ingest.Dashboard.Jobs;

/// <summary>Jobs, newest first, with the API's own status (state, counts, rate, ETA: <see cref="JobsApi.DescribeAsync"/>).</summary>
public sealed class IndexModel(SddDbContext db) : PageModel
{
    public const int PageSize = 50;

    [BindProperty(SupportsGet = true)] public string? Cursor { get; set; }
    public IReadOnlyList<JobStatusDto> Jobs { get; private set; } = [];
    /// <summary>Each job's owner as people call it (shown to an admin).</summary>
    public IReadOnlyDictionary<Guid, string> Owners { get; private set; } = new Dictionary<Guid, string>();
    public string? Next { get; private set; }
    public bool Active => Jobs.Any(j => j.State is "queued" or "running");

    public async Task OnGetAsync(CancellationToken ct) => await LoadAsync(ct);

    /// <summary>The table alone, for the page's live refresh.</summary>
    public async Task<IActionResult> OnGetTableAsync(CancellationToken ct)
    {
        await LoadAsync(ct);
        return Partial("_JobsTable", this);
    }

    private async Task LoadAsync(CancellationToken ct)
    {
        var (rows, next, problem) = await Paging.ByCreationAsync(db.VisibleJobs(User), PageSize, Cursor, newestFirst: true, ct);
        if (problem is not null) (rows, next, _) = await Paging.ByCreationAsync(db.VisibleJobs(User), PageSize, null, newestFirst: true, ct);
        Jobs = await JobsApi.DescribeAsync(db, rows, ct);
        Next = next;
        if (User.IsAdmin())
        {
            var names = await db.OwnerNamesAsync(rows.Select(r => r.Owner), ct);
            Owners = rows.ToDictionary(r => r.Id, r => names[r.Owner]);
        }
    }
}
