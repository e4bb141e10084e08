using Microsoft.AspNetCore.Authentication;
using Microsoft.AspNetCore.Mvc;
using Microsoft.AspNetCore.Mvc.RazorPages;

namespace Sdd.Ingest.Dashboard;

/// <summary>Posting an API key (antiforgery-checked like every dashboard form) starts a cookie session; see <see cref="DashboardAuth"/>.</summary>
public sealed class SignInModel(SddDbContext db, IngestSettings settings) : PageModel
{
    [BindProperty] public string? Key { get; set; }
    [BindProperty(SupportsGet = true)] public string? ReturnUrl { get; set; }
    public string? Error { get; private set; }

    public void OnGet() { }

    public async Task<IActionResult> OnPostAsync(CancellationToken ct)
    {
        var key = Key?.Trim() ?? "";
        var holder = key.Length is > 0 and <= 1024 ? await ApiKeyAuthentication.ResolveAsync(key, db, settings, ct) : null;
        if (holder is null)
        {
            Error = "That key is unknown or revoked.";
            Response.StatusCode = StatusCodes.Status401Unauthorized;
            return Page();
        }
        await HttpContext.SignInAsync(DashboardAuth.Scheme, DashboardAuth.Principal(holder, key), new AuthenticationProperties { IsPersistent = false });
        return LocalRedirect(IsDashboardUrl(ReturnUrl) ? ReturnUrl! : "/ui/jobs");
    }

    /// <summary>Only a path of this dashboard is a place to return to (no other site, no API route).</summary>
    private bool IsDashboardUrl(string? url) =>
        !string.IsNullOrEmpty(url) && Url.IsLocalUrl(url) && (url == DashboardAuth.PathBase || url.StartsWith(DashboardAuth.PathBase + "/", StringComparison.Ordinal));
}
