using Sdd.Cli;
using Sdd.Ml.Data;
using Sdd.Ml.Editors;

namespace Sdd.Ml.Tests;

/// <summary>The CLI's <c>edit</c> command, called in-process on a temp folder.</summary>
[Collection(TorchCollection.Name)]
public sealed class EditCommandTests
{
    private const int S = MethodSupport.Size;
    private static readonly HashSet<string> Flags = ["resume", "help", "no-counterfactuals", "edit-outside-domain"];

    private static string SaveUntrainedEditor(TempDir dir)
    {
        random.manual_seed(61);
        using var editor = new Editor(MethodSupport.EditorConfig());
        var path = dir["editor"];
        editor.Save(path);
        return path;
    }

    private static (int Code, string Out, string Err) Run(params string[] args)
    {
        var (oldOut, oldErr) = (Console.Out, Console.Error);
        using var stdout = new StringWriter();
        using var stderr = new StringWriter();
        Console.SetOut(stdout);
        Console.SetError(stderr);
        try { return (MethodCommands.Edit(new Options(args, Flags)), stdout.ToString(), stderr.ToString()); }
        finally { Console.SetOut(oldOut); Console.SetError(oldErr); }
    }

    private static byte[] WriteImage(string path, ulong seed, int h = S, int w = S)
    {
        using var scope = NewDisposeScope();
        var x = rand([3, h, w], generator: new Generator(seed)) * 2 - 1;
        ImageCodec.SavePng(x, path);
        using var img = ImageCodec.Decode(File.ReadAllBytes(path));
        return ImageCodec.ToRgb24(img);
    }

    [Fact]
    public void Edit_skips_images_outside_the_editors_domain_with_the_reason_unless_told_to_edit_them()
    {
        using var scope = NewDisposeScope();
        using var dir = new TempDir();
        random.manual_seed(61);
        using (var editor = new Editor(MethodSupport.EditorConfig()))
        using (var train = Procedures.RunImages.Portraits(Portraits.PortraitAttributes.Smiling, 300, S, Evaluation.HeldOutPortraits.ValidationSeed, Portraits.PortraitAttributes.All))
        {
            var gate = DomainGate.Fit(train.Images, components: 24);
            gate.Calibrate(train.Images[TensorIndex.Slice(0, 100)]);
            editor.SetDomain(gate);
            editor.Save(dir["editor"]);
        }
        var inDir = Directory.CreateDirectory(dir["in"]).FullName;
        using (var portraits = Procedures.RunImages.Portraits(Portraits.PortraitAttributes.Smiling, 2, S, Evaluation.HeldOutPortraits.HeldOutSeed, Portraits.PortraitAttributes.All))
        {
            ImageCodec.SavePng(portraits.Images[0], Path.Combine(inDir, "face-a.png"));
            ImageCodec.SavePng(portraits.Images[1], Path.Combine(inDir, "face-b.png"));
        }
        using (var house = Evaluation.OtherDomains.House(1, 48, seed: 2)) ImageCodec.SavePng(house[0], Path.Combine(inDir, "house.png"));

        var (code, stdout, stderr) = Run("--editor", dir["editor"], "--in", inDir, "--out", dir["out"]);
        Assert.Equal(1, code);
        Assert.Contains("skipped ", stderr);
        Assert.Contains("house.png: outside the editor's domain (score ", stderr);
        Assert.DoesNotContain("face-a.png", stderr);
        Assert.Contains("skipped 1 outside the editor's domain", stdout);
        Assert.Equal(new[] { "face-a.png", "face-b.png" }, Directory.GetFiles(dir["out"]).Select(f => Path.GetFileName(f)).Order().ToArray());

        (code, stdout, stderr) = Run("--editor", dir["editor"], "--in", inDir, "--out", dir["out-all"], "--edit-outside-domain");
        Assert.Equal(0, code);
        Assert.Contains("edited anyway", stderr);
        Assert.Equal(3, Directory.GetFiles(dir["out-all"]).Length);
    }

    [Fact]
    public void Edit_fails_only_the_unreadable_files_and_names_them()
    {
        using var scope = NewDisposeScope();
        using var dir = new TempDir();
        var editor = SaveUntrainedEditor(dir);
        var inDir = Directory.CreateDirectory(dir["in"]).FullName;
        var good = new Dictionary<string, byte[]>
        {
            ["a"] = WriteImage(Path.Combine(inDir, "a.png"), 1),
            ["b"] = WriteImage(Path.Combine(inDir, "b.png"), 2),
            ["c"] = WriteImage(Path.Combine(inDir, "c.png"), 3, 24, 40), // another size: residual mode, its own batch
        };
        File.WriteAllBytes(Path.Combine(inDir, "corrupt.png"), Enumerable.Range(0, 512).Select(i => (byte)(i * 37 + 11)).ToArray());
        File.WriteAllBytes(Path.Combine(inDir, "empty.jpg"), []);
        File.WriteAllText(Path.Combine(inDir, "notes.txt"), "not an image: skipped by extension");

        var (code, stdout, stderr) = Run("--editor", editor, "--in", inDir, "--out", dir["out"], "--batch", "2");

        Assert.Equal(1, code);
        var outputs = Directory.GetFiles(dir["out"]).Select(f => Path.GetFileName(f)!).Order().ToArray();
        Assert.Equal(new[] { "a.png", "b.png", "c.png" }, outputs);
        // An untrained editor is the identity: the outputs are the inputs, pixel for pixel.
        foreach (var (name, rgb) in good)
        {
            using var img = ImageCodec.Decode(File.ReadAllBytes(Path.Combine(dir["out"], name + ".png")));
            Assert.Equal(rgb, ImageCodec.ToRgb24(img));
        }
        var errLines = stderr.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries).Where(l => l.StartsWith("failed ", StringComparison.Ordinal)).ToArray();
        Assert.Equal(2, errLines.Length);
        var corrupt = Assert.Single(errLines, l => l.Contains("corrupt.png"));
        var empty = Assert.Single(errLines, l => l.Contains("empty.jpg"));
        Assert.Contains("Not a supported image format", corrupt);
        Assert.Contains("empty", empty[(empty.IndexOf("empty.jpg", StringComparison.Ordinal) + 9)..]); // a reason after the name
        Assert.Contains("edited 3 image(s)", stdout);
        Assert.Contains("failed 2", stdout);
    }

    [Fact]
    public void Edit_with_only_good_files_returns_0()
    {
        using var scope = NewDisposeScope();
        using var dir = new TempDir();
        var editor = SaveUntrainedEditor(dir);
        var a = dir["a.png"];
        WriteImage(a, 4);
        var (code, stdout, _) = Run("--editor", editor, "--out", dir["out"], a);
        Assert.Equal(0, code);
        Assert.True(File.Exists(Path.Combine(dir["out"], "a.png")));
        Assert.Contains("failed 0", stdout);
    }

    [Fact]
    public void Usage_errors_throw_UsageException()
    {
        using var scope = NewDisposeScope();
        using var dir = new TempDir();
        var editor = SaveUntrainedEditor(dir);
        Directory.CreateDirectory(dir["in"]);
        var unknown = Assert.Throws<UsageException>(() => Run("--editor", editor, "--in", dir["in"], "--out", dir["out"], "--colour", "red"));
        Assert.Contains("--colour", unknown.Message);
        Assert.False(Directory.Exists(dir["out"]), "a usage error must not start the work");
        Assert.Throws<UsageException>(() => Run("--in", dir["in"], "--out", dir["out"])); // --editor missing
        Assert.Throws<UsageException>(() => Run("--editor", editor, "--out", dir["out"])); // no input
        Assert.Throws<UsageException>(() => Run("--editor", editor, "--out", dir["out"], dir["missing.png"]));
        Assert.Throws<UsageException>(() => Run("--editor", editor, "--in", dir["in"], "--out", dir["out"], "--batch", "0"));
        Assert.Throws<UsageException>(() => Run("--editor", editor, "--in", dir["in"], "--out")); // --out needs a value
    }

    /// <summary>
    /// face.jpg and face.png both become out/face.png: the second silently overwrites the first while the command
    /// reports two edited images and exits 0. Every edited input must have its own output (or the clash be reported).
    /// </summary>
    [Fact]
    public void Edit_does_not_silently_overwrite_outputs_of_inputs_with_the_same_stem()
    {
        using var scope = NewDisposeScope();
        using var dir = new TempDir();
        var editor = SaveUntrainedEditor(dir);
        var inDir = Directory.CreateDirectory(dir["in"]).FullName;
        WriteImage(Path.Combine(inDir, "face.png"), 5);
        using (var s = NewDisposeScope())
        using (var img = ImageCodec.ToImage(rand([3, S, S], generator: new Generator(6)) * 2 - 1))
            SixLabors.ImageSharp.ImageExtensions.SaveAsBmp(img, Path.Combine(inDir, "face.bmp"));

        var (code, _, _) = Run("--editor", editor, "--in", inDir, "--out", dir["out"]);
        int outputs = Directory.GetFiles(dir["out"]).Length;
        Assert.True(outputs == 2 || code != 0, $"2 inputs, {outputs} output(s), exit code {code}: an edited image was lost without a word");
    }

    private static byte[] Head(string path, int n) => File.ReadAllBytes(path)[..n];

    /// <summary>A JPEG phone photo stored sideways (EXIF orientation 6), a PNG and a BMP, through ./sdd edit.</summary>
    private static string WriteMixedInputs(TempDir dir)
    {
        var inDir = Directory.CreateDirectory(dir["in"]).FullName;
        using (var s = NewDisposeScope())
        {
            using var sideways = ImageCodec.ToImage(rand([3, 24, 40], generator: new Generator(7)) * 2 - 1);
            sideways.Metadata.ExifProfile = new SixLabors.ImageSharp.Metadata.Profiles.Exif.ExifProfile();
            sideways.Metadata.ExifProfile.SetValue(SixLabors.ImageSharp.Metadata.Profiles.Exif.ExifTag.Orientation, (ushort)6);
            SixLabors.ImageSharp.ImageExtensions.SaveAsJpeg(sideways, Path.Combine(inDir, "phone.jpeg"));
            using var bmp = ImageCodec.ToImage(rand([3, S, S], generator: new Generator(8)) * 2 - 1);
            SixLabors.ImageSharp.ImageExtensions.SaveAsBmp(bmp, Path.Combine(inDir, "scan.bmp"));
        }
        WriteImage(Path.Combine(inDir, "face.png"), 9);
        return inDir;
    }

    [Fact]
    public void Edit_writes_each_output_in_its_input_format_upright()
    {
        using var scope = NewDisposeScope();
        using var dir = new TempDir();
        var editor = SaveUntrainedEditor(dir);
        var inDir = WriteMixedInputs(dir);

        var (code, _, stderr) = Run("--editor", editor, "--in", inDir, "--out", dir["out"]);

        Assert.True(code == 0, stderr);
        var outputs = Directory.GetFiles(dir["out"]).Select(f => Path.GetFileName(f)!).Order().ToArray();
        Assert.Equal(new[] { "face.png", "phone.jpg", "scan.png" }, outputs);
        Assert.Equal(new byte[] { 0xFF, 0xD8, 0xFF }, Head(Path.Combine(dir["out"], "phone.jpg"), 3));
        Assert.Equal(new byte[] { 0x89, (byte)'P', (byte)'N', (byte)'G' }, Head(Path.Combine(dir["out"], "scan.png"), 4));
        using var phone = SixLabors.ImageSharp.Image.Load<SixLabors.ImageSharp.PixelFormats.Rgb24>(Path.Combine(dir["out"], "phone.jpg"));
        Assert.Equal((24, 40), (phone.Width, phone.Height)); // stored 40x24 sideways: upright it is 24 wide
        Assert.Equal((ushort)1, phone.Metadata.ExifProfile?.GetValue(SixLabors.ImageSharp.Metadata.Profiles.Exif.ExifTag.Orientation)?.Value);
    }

    [Fact]
    public void Edit_with_format_writes_every_output_in_it()
    {
        using var scope = NewDisposeScope();
        using var dir = new TempDir();
        var editor = SaveUntrainedEditor(dir);
        var inDir = WriteMixedInputs(dir);

        var (code, _, stderr) = Run("--editor", editor, "--in", inDir, "--out", dir["out"], "--format", "webp");

        Assert.True(code == 0, stderr);
        var outputs = Directory.GetFiles(dir["out"]).Select(f => Path.GetFileName(f)!).Order().ToArray();
        Assert.Equal(new[] { "face.webp", "phone.webp", "scan.webp" }, outputs);
        foreach (var f in outputs) Assert.Equal("RIFF"u8.ToArray(), Head(Path.Combine(dir["out"], f), 4));
        Assert.Throws<UsageException>(() => Run("--editor", editor, "--in", inDir, "--out", dir["out2"], "--format", "gif"));
        Assert.False(Directory.Exists(dir["out2"]));
    }

    [Fact]
    public void Editor_gate_sets_a_masked_editors_gate_and_refuses_a_residual_editor_or_a_gate_out_of_range()
    {
        using var scope = NewDisposeScope();
        using var dir = new TempDir();
        var residual = SaveUntrainedEditor(dir);
        random.manual_seed(62);
        var masked = dir["masked"];
        using (var e = new Editor(MethodSupport.EditorConfig() with { Architecture = EditorArchitecture.Masked })) e.Save(masked);
        int Gate(params string[] args) => MethodCommands.Gate(new Options(args, Flags));

        Assert.Equal(0, Gate("--editor", masked, "--gate", "0.45"));
        Assert.Equal(0.45, Editor.ReadConfig(masked).MaskGate);
        Assert.Throws<UsageException>(() => Gate("--editor", masked, "--gate", "1"));
        Assert.Throws<UsageException>(() => Gate("--editor", masked, "--gate", "half"));
        Assert.Contains("only goes with --auto", Assert.Throws<UsageException>(() => Gate("--editor", masked, "--gate", "0.2", "--target", "0.9")).Message);
        Assert.Throws<UsageException>(() => Gate("--editor", masked)); // neither --gate nor --auto
        Assert.Equal(0.45, Editor.ReadConfig(masked).MaskGate);
        var refused = Assert.Throws<UsageException>(() => Gate("--editor", residual, "--gate", "0.3"));
        Assert.Contains("masked", refused.Message);
        Assert.Equal(0, Editor.ReadConfig(residual).MaskGate);
    }
}
