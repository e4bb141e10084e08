using Microsoft.AspNetCore.Mvc;
using Microsoft.AspNetCore.Mvc.RazorPages;
using Sdd.Ingest.Apis;

namespace Sdd.Ingest.Dashboard.Registry;

/// <summary>
/// One attribute as the API describes it (<see cref="AttributesApi.Describe"/>): each version's state, metrics, selected
/// timesteps and indicator curve, the evaluation grid when there is one, and pinning a ready version (the API's own
/// <see cref="AttributesApi.SetActive"/>, so only on one's own attribute).
/// </summary>
public sealed class AttributeModel(SddDbContext db, ObjectStore store) : PageModel
{
    [BindProperty(SupportsGet = true)] public string? Owner { get; set; }
    public AttributeDto? Attribute { get; private set; }
    public string? OwnerName { get; private set; }
    /// <summary>The caller's own attribute: it may pin versions.</summary>
    public bool Mine { get; private set; }
    public string? Problem { get; private set; }
    public string? Message { get; private set; }

    public async Task<IActionResult> OnGetAsync(string name, int? pinned, CancellationToken ct)
    {
        if (!await LoadAsync(name, ct)) return Missing(name);
        if (pinned is { } v) Message = $"Version {v} is now active: new jobs use it.";
        return Page();
    }

    public async Task<IActionResult> OnPostPinAsync(string name, int version, CancellationToken ct)
    {
        if (!await LoadAsync(name, ct)) return Missing(name);
        if (!Mine)
        {
            Problem = "Only the attribute's owner can pin its versions (the API's rule); this key may only look.";
            Response.StatusCode = StatusCodes.Status403Forbidden;
            return Page();
        }
        var answer = await AttributesApi.SetActive(name, new SetActiveRequest(version), User, db, store, ct);
        if (answer.Result is ProblemHttpResult problem)
        {
            Problem = problem.ProblemDetails.Detail;
            Response.StatusCode = problem.StatusCode;
            await LoadAsync(name, ct);
            return Page();
        }
        return Redirect($"{Link(name)}{(Link(name).Contains('?') ? '&' : '?')}pinned={version}");
    }

    /// <summary>This page's address (with the owner, for an admin looking at another owner's attribute).</summary>
    public string Link(string name) => Owner is { Length: > 0 } o && User.IsAdmin()
        ? $"/ui/attributes/{Uri.EscapeDataString(name)}?owner={Uri.EscapeDataString(o)}"
        : $"/ui/attributes/{Uri.EscapeDataString(name)}";

    public string GridLink(string name, int version) =>
        $"/ui/attributes/{Uri.EscapeDataString(name)}/versions/{version}/grid.png" + (Owner is { Length: > 0 } o && User.IsAdmin() ? $"?owner={Uri.EscapeDataString(o)}" : "");

    private async Task<bool> LoadAsync(string name, CancellationToken ct)
    {
        var attribute = await db.FindAttributeAsync(User, name, Owner, ct);
        if (attribute is null) return false;
        Attribute = await AttributesApi.Describe(attribute, User.Owner(), db, store, ct, User.IsAdmin());
        Mine = attribute.Owner == User.Owner();
        if (User.IsAdmin() && attribute.Owner is { } owner)
        {
            Owner = owner;
            OwnerName = (await db.OwnerNamesAsync([owner], ct))[owner];
        }
        return true;
    }

    public string? NotFoundText { get; private set; }

    private IActionResult Missing(string name)
    {
        Response.StatusCode = StatusCodes.Status404NotFound;
        NotFoundText = $"No attribute '{name}'.";
        return Page();
    }
}
