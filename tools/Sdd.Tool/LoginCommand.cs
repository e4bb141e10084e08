namespace Sdd.Tool;

/// <summary><c>sdd login</c>: checks a key against the API and keeps it, owner-only, for the other commands.</summary>
internal static class LoginCommand
{
    public const string DefaultApi = "http://127.0.0.1:8080";

    public static Command Build(ToolContext tool, Dictionary<Command, string[]> examples)
    {
        var api = new Option<string>("--api")
        {
            Description = $"The API's address (default: SDD_API_URL, else {DefaultApi}, the local stack's)",
            HelpName = "URL",
        };
        var key = new Option<string>("--key") { Description = "Your API key", HelpName = "KEY", Required = true };
        var login = new Command("login", "Check an API key (GET /v1/keys/me) and keep it in ~/.config/sdd/credentials.json (mode 0600)") { api, key };
        examples[login] = ["sdd login --api http://127.0.0.1:8080 --key $(cat .stack/demo.key)", "sdd login --api https://sdd.example.com --key sk-... --json"];
        login.Handle(tool, async (inv, ct) =>
        {
            var credentials = new Credentials(
                inv.Value(api) ?? (tool.Environment(Credentials.UrlVariable) is { Length: > 0 } u ? u : DefaultApi),
                inv.Value(key)!.Trim());
            var me = await inv.Connect(credentials).Keys.GetMeAsync(ct);
            credentials.Save(tool.CredentialsPath);
            if (inv.Json) inv.WriteJson(new { api = credentials.Api, id = me.Id, name = me.Name, admin = me.Admin, credentials = tool.CredentialsPath });
            else inv.Out.MarkupLine($"Logged in to {Display.Esc(credentials.Api)} as [bold]{Display.Esc(me.Name)}[/] (owner {Display.Esc(me.Id)}{(me.Admin ? ", admin" : "")}); key kept in {Display.Esc(tool.CredentialsPath)}");
            foreach (var variable in new[] { Credentials.UrlVariable, Credentials.KeyVariable })
                if (tool.Environment(variable) is { Length: > 0 })
                    inv.Note($"[yellow]note:[/] {variable} is set and overrides the file for every command.");
            return ExitCodes.Ok;
        });
        return login;
    }
}
