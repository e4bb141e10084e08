namespace Sdd.Distill;

/// <summary>Before consuming: the database migrated and the buckets there, waiting for servers that are still starting.</summary>
public static class Startup
{
    public static async Task PrepareAsync(SddSettings settings, ObjectStore store, ILogger log, CancellationToken ct = default)
    {
        var deadline = DateTime.UtcNow.AddSeconds(90);
        for (int attempt = 1; ; attempt++)
        {
            try
            {
                await SddDb.MigrateAsync(settings.Postgres.ConnectionString(), ct);
                await store.EnsureBucketsAsync(ct);
                return;
            }
            catch (Exception e) when (DateTime.UtcNow < deadline && e is not OperationCanceledException)
            {
                log.LogWarning("Start-up attempt {Attempt}: {Error}; retrying", attempt, e.Message);
                await Task.Delay(TimeSpan.FromSeconds(Math.Min(10, attempt * 2)), ct);
            }
        }
    }
}
