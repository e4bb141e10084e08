using System.Buffers.Text;
using System.Globalization;
using System.Text;

namespace Sdd.Ingest.Apis;

/// <summary>One page of a list; <see cref="Next"/> is the cursor of the following page, null (written, not left out) on the last.</summary>
public sealed record Page<T>(IReadOnlyList<T> Items,
    [property: System.Text.Json.Serialization.JsonIgnore(Condition = System.Text.Json.Serialization.JsonIgnoreCondition.Never)] string? Next);

/// <summary>
/// Cursor paging for every list: <c>?limit=</c> (1..1000, 100 by default) and the opaque <c>?cursor=</c> a page's
/// <c>next</c> gave. Keyset, not offset: rows created while a client walks the pages neither repeat nor go missing.
/// A cursor holds the sort key of the last row served (creation time and id, or name and id), base64url-encoded.
/// </summary>
public static class Paging
{
    public const int DefaultLimit = 100;
    public const int MaxLimit = 1000;

    /// <summary>The limit asked for, or a 400 when it is out of range.</summary>
    public static ProblemHttpResult? CheckLimit(int? limit, out int take)
    {
        take = limit ?? DefaultLimit;
        return take is < 1 or > MaxLimit ? Problems.BadRequest($"limit must be between 1 and {MaxLimit}.") : null;
    }

    public static ProblemHttpResult BadCursor() => Problems.BadRequest("The cursor is not one this list gave (pass a page's 'next' unchanged).");

    public static string TimeCursor(DateTimeOffset at, Guid id) => Encode($"t:{at.UtcTicks.ToString(CultureInfo.InvariantCulture)}:{id:N}");

    public static bool TryTimeCursor(string cursor, out DateTimeOffset at, out Guid id)
    {
        at = default; id = default;
        var parts = Decode(cursor)?.Split(':');
        if (parts is not ["t", var ticks, var guid] || !long.TryParse(ticks, NumberStyles.None, CultureInfo.InvariantCulture, out var t)
            || t < DateTimeOffset.MinValue.UtcTicks || t > DateTimeOffset.MaxValue.UtcTicks || !Guid.TryParseExact(guid, "N", out id))
            return false;
        at = new DateTimeOffset(t, TimeSpan.Zero);
        return true;
    }

    public static string NameCursor(string name, Guid id) => Encode($"n:{id:N}:{name}");

    public static bool TryNameCursor(string cursor, out string name, out Guid id)
    {
        name = ""; id = default;
        var text = Decode(cursor);
        if (text is null || !text.StartsWith("n:", StringComparison.Ordinal) || text.Length < 35 || text[34] != ':'
            || !Guid.TryParseExact(text[2..34], "N", out id))
            return false;
        name = text[35..];
        return true;
    }

    /// <summary>
    /// A page of rows in creation order (<paramref name="newestFirst"/> reverses it), resuming after the cursor's row.
    /// One row more than the limit is read to know whether another page follows.
    /// </summary>
    public static async Task<(List<T> Rows, string? Next, ProblemHttpResult? Problem)> ByCreationAsync<T>(IQueryable<T> query, int? limit,
        string? cursor, bool newestFirst, CancellationToken ct) where T : class, IListed
    {
        if (CheckLimit(limit, out var take) is { } bad) return ([], null, bad);
        if (!string.IsNullOrEmpty(cursor))
        {
            if (!TryTimeCursor(cursor, out var at, out var id)) return ([], null, BadCursor());
            query = newestFirst
                ? query.Where(r => r.CreatedAt < at || (r.CreatedAt == at && r.Id.CompareTo(id) < 0))
                : query.Where(r => r.CreatedAt > at || (r.CreatedAt == at && r.Id.CompareTo(id) > 0));
        }
        query = newestFirst ? query.OrderByDescending(r => r.CreatedAt).ThenByDescending(r => r.Id) : query.OrderBy(r => r.CreatedAt).ThenBy(r => r.Id);
        var rows = await query.Take(take + 1).ToListAsync(ct);
        if (rows.Count <= take) return (rows, null, null);
        rows.RemoveAt(take);
        return (rows, TimeCursor(rows[^1].CreatedAt, rows[^1].Id), null);
    }

    private static string Encode(string text) => Base64Url.EncodeToString(Encoding.UTF8.GetBytes(text));

    private static string? Decode(string cursor)
    {
        if (cursor.Length > 2000) return null;
        try { return Encoding.UTF8.GetString(Base64Url.DecodeFromChars(cursor)); }
        catch (FormatException) { return null; }
    }
}
