using Microsoft.AspNetCore.Mvc;
using Microsoft.AspNetCore.Mvc.RazorPages;

namespace Sdd.Ingest.Dashboard;

/// <summary>The dashboard starts at the jobs.</summary>
public sealed class IndexModel : PageModel
{
    public IActionResult OnGet() => Redirect("/ui/jobs");
}
