using Microsoft.AspNetCore.Mvc;
using Microsoft.AspNetCore.Mvc.RazorPages;
using Sdd.Ingest.Apis;

namespace Sdd.Ingest.Dashboard.Runs;

/// <summary>Teacher trainings and editor distillations, newest first: phase, step, heartbeat (stalled when silent too long while running), error.</summary>
public sealed class IndexModel(SddDbContext db) : PageModel
{
    public const int PageSize = 50;
    /// <summary>A running run whose heartbeat is older than this is shown as stalled.</summary>
    public static readonly TimeSpan StallAfter = TimeSpan.FromSeconds(60);

    /// <summary><see cref="Subject"/>: what the run makes ("smiling v2", "teacher builtin").</summary>
    public sealed record Row(RunDto Run, string Subject, string? Phase, string? Owner, TimeSpan? HeartbeatAge, bool Stalled);

    [BindProperty(SupportsGet = true)] public string? Cursor { get; set; }
    public IReadOnlyList<Row> Runs { get; private set; } = [];
    public string? Next { get; private set; }
    public DateTimeOffset Now { get; private set; }
    public bool Active => Runs.Any(r => r.Run.State is "queued" or "running");

    public async Task OnGetAsync(CancellationToken ct) => await LoadAsync(ct);

    public async Task<IActionResult> OnGetTableAsync(CancellationToken ct)
    {
        await LoadAsync(ct);
        return Partial("_RunsTable", this);
    }

    private async Task LoadAsync(CancellationToken ct)
    {
        var (rows, next, problem) = await Paging.ByCreationAsync(db.VisibleRuns(User), PageSize, Cursor, newestFirst: true, ct);
        if (problem is not null) (rows, next, _) = await Paging.ByCreationAsync(db.VisibleRuns(User), PageSize, null, newestFirst: true, ct);
        Next = next;
        Now = DateTimeOffset.UtcNow;
        var versionIds = rows.Select(r => r.EditorVersionId).OfType<Guid>().ToList();
        var versions = await db.EditorVersions.AsNoTracking().Where(v => versionIds.Contains(v.Id))
            .Select(v => new { v.Id, v.Version, v.Status, Attribute = v.Attribute!.Name }).ToDictionaryAsync(v => v.Id, ct);
        var teacherIds = rows.Where(r => r.Kind == RunKind.Teacher).Select(r => r.TeacherId).OfType<Guid>().ToList();
        var teachers = await db.Teachers.AsNoTracking().Where(t => teacherIds.Contains(t.Id)).ToDictionaryAsync(t => t.Id, t => t.Name, ct);
        var owners = User.IsAdmin() ? await db.OwnerNamesAsync(rows.Select(r => r.Owner), ct) : null;
        Runs = rows.Select(r =>
        {
            var dto = RunDto.From(r);
            string subject;
            string? phase = null;
            if (r.EditorVersionId is { } vid && versions.TryGetValue(vid, out var v))
            {
                subject = $"{v.Attribute} v{v.Version}";
                phase = r.State == RunState.Running ? v.Status.ToString().ToLowerInvariant() : null; // selecting timesteps, distilling
            }
            else subject = r.TeacherId is { } tid && teachers.TryGetValue(tid, out var name) ? $"teacher {name}" : r.Kind.ToString().ToLowerInvariant();
            TimeSpan? age = r.HeartbeatAt is { } beat ? Now - beat : null;
            var stalled = r.State == RunState.Running && (age ?? (Now - (r.StartedAt ?? r.CreatedAt))) > StallAfter;
            return new Row(dto, subject, phase, owners?[r.Owner], age, stalled);
        }).ToList();
    }
}
