using Sdd.Storage;

namespace Sdd.Tests;

/// <summary>Tests read back what they stored without naming a cap (the services always name one).</summary>
internal static class StoreReads
{
    public static Task<byte[]> GetBytesAsync(this ObjectStore store, string bucket, string key, CancellationToken ct = default) =>
        store.GetBytesAsync(bucket, key, 1L << 31, ct);
}
