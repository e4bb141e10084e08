namespace Sdd.Ingest.Sources;

/// <summary>
/// Where a job or a data set may read, as a client names it: one of its uploads (<c>{ "upload": id }</c>, optionally with a
/// sub-prefix) or a bucket and prefix (<c>{ "bucket", "prefix" }</c>).
/// </summary>
public sealed record SourceRequest(string? Bucket, string? Prefix, Guid? Upload);

/// <summary>A source the caller may read: every object under <see cref="Prefix"/> in <see cref="Bucket"/>.</summary>
public sealed record ReadableSource(string Bucket, string Prefix);

/// <summary>
/// The one check between a client and the objects it names. A caller may read only (a) its own upload area
/// (<see cref="KeyLayout.Uploads"/> in the datasets bucket), or (b) a bucket or prefix an admin granted it
/// (<see cref="SourceGrant"/>, never one of the service's buckets). Anything else is a 404 problem, decided before a
/// single object is listed, so the answer says nothing about what exists.
/// </summary>
public static class SourceAccess
{
    public static async Task<(ReadableSource?, ProblemHttpResult?)> ResolveAsync(SourceRequest? request, string owner, SddDbContext db,
        ObjectStore store, CancellationToken ct)
    {
        if (request is null || (request.Upload is null && string.IsNullOrWhiteSpace(request.Bucket)))
            return (null, Problems.BadRequest("Name the source: { \"upload\": \"<uploadId>\" } (POST /v1/uploads) or { \"bucket\", \"prefix\" } granted to you."));
        var prefix = (request.Prefix ?? "").Trim();
        try { ObjectKey.ValidatePrefix(prefix); }
        catch (ArgumentException e) { return (null, Problems.BadRequest(e.Message)); }

        if (request.Upload is { } uploadId)
        {
            if (!await db.Uploads.AnyAsync(u => u.Id == uploadId && u.Owner == owner, ct)) return (null, Problems.NotFound($"No upload {uploadId}."));
            if (prefix.Length > 0 && !prefix.EndsWith('/')) prefix += "/";
            return (new ReadableSource(store.DatasetsBucket, KeyLayout.Upload(owner, uploadId) + prefix), null);
        }

        var bucket = request.Bucket!.Trim();
        if (bucket == store.DatasetsBucket && KeyLayout.IsWithin(prefix, KeyLayout.Uploads(owner)))
            return (new ReadableSource(bucket, prefix), null);
        if (!IsServiceBucket(store, bucket))
        {
            var grants = await db.SourceGrants.AsNoTracking()
                .Where(g => g.Owner == owner && g.Bucket == bucket && g.RevokedAt == null).Select(g => g.Prefix).ToListAsync(ct);
            if (grants.Any(area => KeyLayout.IsWithin(prefix, area))) return (new ReadableSource(bucket, prefix), null);
        }
        return (null, Problems.NotFound(
            $"Nothing you may read is at s3://{bucket}/{prefix}: name one of your uploads (POST /v1/uploads) or a bucket prefix an admin granted you (GET /v1/grants)."));
    }

    /// <summary>Whether a registered data set's location is still the owner's to read (a grant may have been revoked since).</summary>
    public static async Task<bool> StillReadableAsync(Dataset dataset, SddDbContext db, ObjectStore store, CancellationToken ct)
    {
        if (string.IsNullOrEmpty(dataset.Owner)) return false;
        var owner = dataset.Owner;
        var bucket = dataset.Bucket ?? store.DatasetsBucket;
        var prefix = dataset.Prefix ?? "";
        if (bucket == store.DatasetsBucket && (KeyLayout.IsWithin(prefix, KeyLayout.Tenant(owner)) || prefix == $"{dataset.Id:D}/"))
            return true; // its own area, or a zip stored before the tenant layout (under the data set's id)
        var (source, _) = await ResolveAsync(new SourceRequest(bucket, prefix, null), owner, db, store, ct);
        return source is not null;
    }

    public static bool IsServiceBucket(ObjectStore store, string bucket) =>
        bucket == store.DatasetsBucket || bucket == store.ModelsBucket || bucket == store.JobsBucket;
}
