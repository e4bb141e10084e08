using System.Diagnostics;

namespace Sdd.EndToEnd.Tests;

/// <summary>The demo driver (tools/Sdd.Demo, what ./sdd demo runs) twice in a row on one running system, then a stranger's use of its editor.</summary>
[Collection(EndToEndCollection.Name)]
public sealed class DemoTests(SddSystem system, ITestOutputHelper output)
{
    // Not "smiling" nor "eyeglasses": the fixture's own key has those, and other tests count on them being unpublished.
    private const string Attribute = "beard";

    [Fact]
    public async Task The_demo_runs_twice_in_a_row_keeps_its_key_and_publishes_its_editor()
    {
        var stackDir = Path.Combine(system.WorkDir, "demo-stack");
        var keyFile = Path.Combine(stackDir, "demo.key");

        var first = await RunDemoAsync(stackDir, "first");
        Assert.Contains("created the demo's API key", first);
        Assert.True(File.Exists(keyFile));
        if (!OperatingSystem.IsWindows()) Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, File.GetUnixFileMode(keyFile)); // owner-only
        var key = (await File.ReadAllTextAsync(keyFile)).Trim();

        var second = await RunDemoAsync(stackDir, "second");
        Assert.Contains("reusing the demo's API key", second);
        Assert.Equal(key, (await File.ReadAllTextAsync(keyFile)).Trim());
        Assert.Contains($"attribute {Attribute} v2", second); // the re-run trained a second version of the same attribute
        Assert.True(File.Exists(Path.Combine(stackDir, "out-second", "contact-sheet.png")));

        // The README's next step: the demo's key edits one's own photos with the demo's editor.
        using var demo = system.Client(key);
        var job = await demo.Jobs.SubmitFilesAsync(Attribute, SddSystem.Portraits(2, SddSystem.ImageSize, first: 500).ToUploads());
        var done = await demo.WaitForCompletedAsync(job.JobId, TimeSpan.FromMinutes(2), () => system.Edit.Tail());
        Assert.Equal(2, done.Counts.Done);
        // Published: any other key may use it too, read-only.
        var shared = await system.Api.Attributes.GetAsync(Attribute);
        Assert.True(shared.Shared);
        var stranger = await system.Api.Jobs.SubmitFilesAsync(Attribute, SddSystem.Portraits(1, SddSystem.ImageSize, first: 510).ToUploads());
        Assert.Equal(1, stranger.Items);
    }

    private async Task<string> RunDemoAsync(string stackDir, string name)
    {
        var dll = system.Dll("tools", "Sdd.Demo");
        var info = new ProcessStartInfo("dotnet", [dll, "--count", "40", "--steps", "5", "--images", "4", "--attribute", Attribute, "--out", Path.Combine(stackDir, "out-" + name)])
        {
            RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false, WorkingDirectory = system.WorkDir,
        };
        foreach (var (k, v) in system.Environment) info.Environment[k] = v;
        info.Environment["SDD_STACK_DIR"] = stackDir;
        using var process = Process.Start(info)!;
        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = process.StandardError.ReadToEndAsync();
        using var timeout = new CancellationTokenSource(TimeSpan.FromMinutes(4));
        try { await process.WaitForExitAsync(timeout.Token); }
        catch (OperationCanceledException) { process.Kill(entireProcessTree: true); }
        var text = await stdout + await stderr;
        output.WriteLine($"--- demo run {name} (exit {process.ExitCode}) ---\n{text}");
        Assert.True(process.ExitCode == 0, $"demo run {name} failed:\n{text}\n{system.Distill.Tail()}");
        return text;
    }
}
