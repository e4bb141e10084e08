using Microsoft.AspNetCore.Authentication;
using Microsoft.AspNetCore.Mvc;
using Microsoft.AspNetCore.Mvc.RazorPages;

namespace Sdd.Ingest.Dashboard;

/// <summary>Signing out is a POST (antiforgery-checked): a link or an image elsewhere cannot sign anyone out.</summary>
public sealed class SignOutModel : PageModel
{
    public IActionResult OnGet() => Redirect("/ui/jobs");

    public async Task<IActionResult> OnPostAsync()
    {
        await HttpContext.SignOutAsync(DashboardAuth.Scheme);
        return Redirect("/ui/signin");
    }
}
