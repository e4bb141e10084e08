namespace Sdd.Tool;

/// <summary>Things named on the command line by id or by name.</summary>
internal static class Lookup
{
    public static async Task<Dataset> DatasetAsync(SddClient client, string nameOrId, CancellationToken ct)
    {
        if (Guid.TryParse(nameOrId, out var id)) return await client.Datasets.GetAsync(id, ct);
        var matches = await client.Datasets.ListAllAsync(ct).Where(d => d.Name == nameOrId).ToListAsync(ct);
        return matches.Count switch
        {
            1 => matches[0],
            0 => throw new ToolException($"You have no dataset named '{nameOrId}' (sdd datasets list).", ExitCodes.Api),
            _ => throw new ToolException($"{matches.Count} datasets are named '{nameOrId}'; give its id.", ExitCodes.Usage),
        };
    }

    public static async Task<Teacher> TeacherAsync(SddClient client, string nameOrId, CancellationToken ct)
    {
        if (Guid.TryParse(nameOrId, out var id)) return await client.Teachers.GetAsync(id, ct);
        var matches = await client.Teachers.ListAllAsync(ct).Where(t => t.Name == nameOrId).ToListAsync(ct);
        // One's own teacher hides a published one of the same name.
        if (matches.Count > 1 && matches.Count(t => !t.Shared) == 1) return matches.Single(t => !t.Shared);
        return matches.Count switch
        {
            1 => matches[0],
            0 => throw new ToolException($"No teacher named '{nameOrId}' (sdd teachers list).", ExitCodes.Api),
            _ => throw new ToolException($"{matches.Count} teachers are named '{nameOrId}'; give its id.", ExitCodes.Usage),
        };
    }

    public static Guid Id(string text, string what) =>
        Guid.TryParse(text, out var id) ? id : throw new ToolException($"'{text}' is not a {what} id (a GUID).");
}
