namespace Sdd.Client;

/// <summary>One page of a list route: its items and the cursor of the next page (null on the last).</summary>
public sealed record Page<T>(IReadOnlyList<T> Items, string? Next);

public static class Pages
{
    /// <summary>Every item of a list, page after page: <paramref name="fetch"/> gets the cursor (null for the first page).</summary>
    public static async IAsyncEnumerable<T> AllAsync<T>(Func<string?, CancellationToken, Task<Page<T>>> fetch,
        [EnumeratorCancellation] CancellationToken ct = default)
    {
        string? cursor = null;
        var seen = new HashSet<string>(StringComparer.Ordinal);
        do
        {
            var page = await fetch(cursor, ct);
            foreach (var item in page.Items) yield return item;
            cursor = page.Next;
            if (cursor is not null && !seen.Add(cursor))
                throw new InvalidOperationException($"The API answered the cursor '{cursor}' twice; stopping rather than looping.");
        } while (!string.IsNullOrEmpty(cursor));
    }
}
