using Sdd.Ingest.Apis;

namespace Sdd.Ingest.Dashboard;

/// <summary>
/// What a signed-in person sees: an admin key sees every owner's jobs, runs and attributes (read-only where the API would
/// refuse it the action); any other key sees what the API shows it — its own, and the published attributes. Another owner's
/// resource is simply absent, so its page answers 404 like the API.
/// </summary>
public static class Visibility
{
    public static IQueryable<EditJob> VisibleJobs(this SddDbContext db, ClaimsPrincipal user)
    {
        var jobs = db.EditJobs.AsNoTracking().Include(j => j.Attribute).Include(j => j.EditorVersion);
        if (user.IsAdmin()) return jobs;
        var owner = user.Owner();
        return jobs.Where(j => j.Owner == owner);
    }

    public static IQueryable<TrainingRun> VisibleRuns(this SddDbContext db, ClaimsPrincipal user)
    {
        if (user.IsAdmin()) return db.TrainingRuns.AsNoTracking();
        var owner = user.Owner();
        return db.TrainingRuns.AsNoTracking().Where(r => r.Owner == owner);
    }

    /// <summary>
    /// Attributes by name: for a non-admin, its own and the published ones (its own hides a published namesake, as in the API);
    /// for an admin, every owner's.
    /// </summary>
    public static async Task<List<ImageAttribute>> VisibleAttributesAsync(this SddDbContext db, ClaimsPrincipal user, int limit, CancellationToken ct)
    {
        var owner = user.Owner();
        var query = db.Attributes.AsNoTracking();
        if (!user.IsAdmin()) query = query.Where(a => a.Owner == owner || a.IsPublished);
        var rows = await query.OrderBy(a => a.Name).ThenBy(a => a.Owner).Take(limit).ToListAsync(ct);
        return user.IsAdmin() ? rows : rows.GroupBy(a => a.Name).Select(g => g.FirstOrDefault(a => a.Owner == owner) ?? g.First()).ToList();
    }

    /// <summary>
    /// The attribute a name means: the API's rule (one's own, else the published one); an admin may name another owner with
    /// <paramref name="owner"/>, and otherwise gets its own, the published one, or the first owner's of that name.
    /// </summary>
    public static async Task<ImageAttribute?> FindAttributeAsync(this SddDbContext db, ClaimsPrincipal user, string name, string? owner, CancellationToken ct)
    {
        if (user.IsAdmin())
        {
            if (!string.IsNullOrEmpty(owner)) return await db.Attributes.AsNoTracking().SingleOrDefaultAsync(a => a.Name == name && a.Owner == owner, ct);
            return await AttributesApi.FindVisibleAsync(db, user.Owner(), name, ct)
                ?? await db.Attributes.AsNoTracking().Where(a => a.Name == name).OrderBy(a => a.Owner).FirstOrDefaultAsync(ct);
        }
        return await AttributesApi.FindVisibleAsync(db, user.Owner(), name, ct);
    }

    /// <summary>What people call owners: the key's name ("admin" for the bootstrap key).</summary>
    public static async Task<Dictionary<string, string>> OwnerNamesAsync(this SddDbContext db, IEnumerable<string?> owners, CancellationToken ct)
    {
        var distinct = owners.OfType<string>().Distinct().ToList();
        var ids = distinct.Select(o => Guid.TryParse(o, out var id) ? id : (Guid?)null).OfType<Guid>().ToList();
        var names = await db.ApiClients.AsNoTracking().Where(c => ids.Contains(c.Id)).Select(c => new { c.Id, c.Name }).ToListAsync(ct);
        var result = distinct.ToDictionary(o => o, o => o);
        foreach (var n in names) result[n.Id.ToString()] = n.Name;
        return result;
    }
}
