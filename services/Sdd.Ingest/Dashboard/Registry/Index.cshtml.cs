using Microsoft.AspNetCore.Mvc.RazorPages;
using Sdd.Ingest.Apis;

namespace Sdd.Ingest.Dashboard.Registry;

/// <summary>The editor registry: each attribute with its versions' states and the active one.</summary>
public sealed class IndexModel(SddDbContext db) : PageModel
{
    public const int Limit = 500;

    public sealed record VersionState(int Version, string State, bool Active);
    public sealed record Row(string Name, string? Owner, string? OwnerName, bool Published, bool Shared, string? Target, IReadOnlyList<VersionState> Versions);

    public IReadOnlyList<Row> Attributes { get; private set; } = [];

    public async Task OnGetAsync(CancellationToken ct)
    {
        var attributes = await db.VisibleAttributesAsync(User, Limit, ct);
        var ids = attributes.Select(a => a.Id).ToList();
        var versions = await db.EditorVersions.AsNoTracking().Where(v => ids.Contains(v.AttributeId))
            .Select(v => new { v.AttributeId, v.Version, v.Status, v.IsActive }).ToListAsync(ct);
        var names = User.IsAdmin() ? await db.OwnerNamesAsync(attributes.Select(a => a.Owner), ct) : null;
        var caller = User.Owner();
        Attributes = attributes.Select(a => new Row(a.Name, a.Owner, a.Owner is { } o && names is not null ? names[o] : null, a.IsPublished, a.Owner != caller,
            a.TargetAttribute,
            versions.Where(v => v.AttributeId == a.Id).OrderBy(v => v.Version)
                .Select(v => new VersionState(v.Version, AttributesApi.StateName(v.Status), v.IsActive)).ToList())).ToList();
    }
}
