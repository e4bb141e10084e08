using System.Text;
using System.Text.Json.Nodes;
using Sdd.Formats.Datasets;
using Sdd.Ml.Data;
using Sdd.Ml.Diffusion;

namespace Sdd.Ml.Tests;

/// <summary>What the API and the method both read: labels.csv, a model folder's config, a run's settings.</summary>
[Collection(TorchCollection.Name)]
public sealed class FormatsTests
{
    /// <summary>A labels.csv as spreadsheets write it: a byte-order mark, CRLF lines, 0 for an unknown label, a blank last line.</summary>
    private static readonly byte[] SpreadsheetCsv =
        [.. Encoding.UTF8.GetPreamble(), .. Encoding.UTF8.GetBytes("image,smiling,hat\r\na.png,1,0\r\nb.png,-1,+1\r\nc.png,0,-1\r\n\r\n")];

    /// <summary>The API validates a data set with LabelsCsv.Parse; the worker reads the stored bytes with LabeledImageSet.Parse.</summary>
    [Fact]
    public void A_labels_csv_with_a_bom_crlf_and_zeros_reads_the_same_in_the_api_and_in_the_worker()
    {
        var api = LabelsCsv.Parse(SpreadsheetCsv);
        var worker = LabeledImageSet.Parse(SpreadsheetCsv, "s3://datasets/x/labels.csv", _ => []);

        Assert.Equal(["smiling", "hat"], api.Attributes);
        Assert.Equal(api.Attributes, worker.Attributes);
        Assert.Equal(["a.png", "b.png", "c.png"], api.Images);
        Assert.Equal(api.Images, worker.Rows.Select(r => r.Name));
        Assert.Equal(new sbyte[][] { [1, 0], [-1, 1], [0, -1] }, api.Rows.Select(r => r.Labels));
        Assert.Equal(api.Rows.Select(r => r.Labels), worker.Rows.Select(r => r.Labels));
    }

    [Theory]
    [InlineData("image,a\nx.png,yes\n", "labels.csv:2:", "must be 1 or -1")]
    [InlineData("image,a\nx.png,2\n", "labels.csv:2:", "'2'")]
    [InlineData("image,a\n../x.png,1\n", "labels.csv:2:", "bad image name")]
    [InlineData("image,a\nx\\y.png,1\n", "labels.csv:2:", "backslash")]
    [InlineData("image,a\nx.png,1\nx.png,-1\n", "labels.csv:3:", "twice")]
    [InlineData("file,a\nx.png,1\n", "labels.csv:1:", "header")]
    [InlineData("\uFEFF\r\n", "labels.csv", "empty")]
    public void Both_paths_refuse_the_same_tables_with_the_same_reason(string csv, string where, string what)
    {
        var api = Assert.Throws<InvalidDataException>(() => LabelsCsv.Parse(Encoding.UTF8.GetBytes(csv)));
        var worker = Assert.Throws<DatasetException>(() => LabeledImageSet.Parse(Encoding.UTF8.GetBytes(csv), "labels.csv", _ => []));
        Assert.Equal(api.Message, worker.Message);
        Assert.StartsWith(where, api.Message);
        Assert.Contains(what, api.Message);
    }

    [Fact]
    public void A_name_with_dots_inside_a_segment_is_an_image_name()
    {
        Assert.Null(LabelsCsv.NameProblem("a..b.png"));
        Assert.Null(LabelsCsv.NameProblem("sub/a.png"));
        Assert.NotNull(LabelsCsv.NameProblem("sub//a.png"));
    }

    [Fact]
    public void A_teacher_folder_reads_with_the_torch_free_reader()
    {
        using var dir = new TempDir();
        using (var teacher = MethodSupport.Teacher(46)) teacher.Save(dir.Path);
        var config = ModelFolder.ReadTeacher(dir.Path);
        Assert.Equal(MethodSupport.TeacherConfig().AttributeNames, config.AttributeNames);
        Assert.Equal(MethodSupport.Size, config.Unet.ImageSize);
        Assert.Equal(TeacherConfig.KindAttributeDdpm, config.Kind);
        Assert.Throws<FileNotFoundException>(() => ModelFolder.ReadTeacher(dir["missing"]));
    }

    [Fact]
    public void Distill_settings_have_one_set_of_defaults_and_what_the_api_stores_reads_back_exactly()
    {
        var defaults = new DistillSettings();
        Assert.Equal(300, defaults.Steps);
        Assert.Equal(defaults, DistillSettings.FromApi(null));
        Assert.Equal(defaults, DistillSettings.FromApi([]));
        Assert.Equal(defaults, DistillSettings.FromApiJson(defaults.ToApiJson()));

        var given = DistillSettings.FromApi(new JsonObject { ["Steps"] = 50, ["mode"] = "SDS", ["batch_size"] = 8, ["lr"] = "0.002", ["timesteps"] = "fixed:400", ["seed"] = null });
        Assert.Equal(GuidanceMode.Sds, given.Guidance.Mode);
        Assert.Null(given.Guidance.Scale);
        Assert.Equal(0, given.PositiveShare);
        Assert.Equal((50, 8, 0.002, "fixed:400", 1L), (given.Steps, given.BatchSize, given.LearningRate, given.Timesteps, given.Seed));
        Assert.Equal(given, DistillSettings.FromApiJson(given.ToApiJson()));
    }

    [Fact]
    public void The_scale_is_automatic_unless_given_and_the_stored_settings_say_auto()
    {
        var defaults = new DistillSettings();
        Assert.True(defaults.Guidance.AutoScale);
        Assert.Equal("auto", defaults.ToApi()["scale"]!.GetValue<string>());
        Assert.Equal(defaults, DistillSettings.FromApi(new JsonObject { ["scale"] = "auto" }));
        Assert.Equal(defaults, DistillSettings.FromApi(new JsonObject { ["scale"] = null }));
        var given = DistillSettings.FromApi(new JsonObject { ["scale"] = 5, ["targetEditability"] = 0.9, ["editor"] = "residual", ["mask_sparsity"] = 0 });
        Assert.Equal(5, given.Guidance.Scale);
        Assert.Equal(5, given.ToApi()["scale"]!.GetValue<double>());
        Assert.Equal((0.9, EditorArchitecture.Residual, 0.0), (given.TargetEditability, given.Editor, given.MaskSparsity));
        Assert.Equal(given, DistillSettings.FromApiJson(given.ToApiJson()));
        Assert.Equal(EditorArchitecture.Masked, defaults.Editor);
        Assert.Equal(0.25, defaults.PositiveShare);
        Assert.Equal(10, defaults.Guidance.WithReferenceScale().Scale);
        Assert.Null(defaults.CalibrationSteps);
        Assert.Equal(100, defaults.ProbeSteps);
        Assert.Equal(3, (defaults with { Steps = 10 }).ProbeSteps);
        Assert.Equal(7, DistillSettings.FromApi(new JsonObject { ["calibrationSteps"] = 7 }).ProbeSteps);
    }

    [Fact]
    public void The_latent_gradient_is_the_encoders_unless_given_and_is_stored()
    {
        var defaults = new DistillSettings();
        Assert.Equal(LatentGradient.Encoder, defaults.LatentGradient);
        Assert.Equal("encoder", defaults.ToApi()["latentGradient"]!.GetValue<string>());
        var given = DistillSettings.FromApi(new JsonObject { ["latent_gradient"] = "Decoder" });
        Assert.Equal(LatentGradient.Decoder, given.LatentGradient);
        Assert.Equal(given, DistillSettings.FromApiJson(given.ToApiJson()));
        // The decoder's derivative unless a finite step is given.
        Assert.Null(given.DecoderStep);
        Assert.Null(defaults.ToApi()["decoderStep"]);
        var step = DistillSettings.FromApi(new JsonObject { ["latentGradient"] = "decoder", ["decoder_step"] = 3 });
        Assert.Equal(3.0, step.DecoderStep);
        Assert.Equal(step, DistillSettings.FromApiJson(step.ToApiJson()));
    }

    [Fact]
    public void Cfg_mode_is_stored_and_takes_positives_and_the_delta_reference_scale()
    {
        var cfg = DistillSettings.FromApi(new JsonObject { ["mode"] = "CFG" });
        Assert.Equal(GuidanceMode.Cfg, cfg.Guidance.Mode);
        Assert.Equal("cfg", cfg.ToApi()["mode"]!.GetValue<string>());
        Assert.Equal(0.25, cfg.PositiveShare);
        Assert.Equal(10, GuidanceSettings.DefaultScale(GuidanceMode.Cfg));
        Assert.Equal(cfg, DistillSettings.FromApiJson(cfg.ToApiJson()));
        Assert.True(GuidanceSettings.FromSource(GuidanceMode.Cfg) && GuidanceSettings.FromSource(GuidanceMode.Delta) && !GuidanceSettings.FromSource(GuidanceMode.Sds));
    }

    [Fact]
    public void The_mask_gate_is_automatic_unless_given_and_a_residual_editor_cannot_have_one()
    {
        var defaults = new DistillSettings();
        Assert.True(defaults.AutoMaskGate);
        Assert.Equal("auto", defaults.ToApi()["maskGate"]!.GetValue<string>());
        Assert.Equal(defaults, DistillSettings.FromApi(new JsonObject { ["mask_gate"] = "auto" }));
        var given = DistillSettings.FromApi(new JsonObject { ["maskGate"] = 0.45 });
        Assert.Equal(0.45, given.MaskGate);
        Assert.False(given.AutoMaskGate);
        Assert.Equal(given, DistillSettings.FromApiJson(given.ToApiJson()));
        var off = DistillSettings.FromApi(new JsonObject { ["maskGate"] = 0, ["editor"] = "residual" });
        Assert.Equal(0.0, off.MaskGate);
        Assert.True(DistillSettings.FromApi(new JsonObject { ["editor"] = "residual" }).AutoMaskGate);
    }

    [Theory]
    [InlineData("{\"maskGate\":1}", "settings.maskGate")]
    [InlineData("{\"maskGate\":-0.1}", "settings.maskGate")]
    [InlineData("{\"maskGate\":\"half\"}", "settings.maskGate")]
    [InlineData("{\"maskGate\":0.3,\"editor\":\"residual\"}", "settings.maskGate")]
    [InlineData("{\"scale\":\"automatic\"}", "settings.scale")]
    [InlineData("{\"targetEditability\":1.5}", "settings.targetEditability")]
    [InlineData("{\"mode\":\"sds\",\"positiveShare\":0.2}", "settings.positiveShare")]
    [InlineData("{\"editor\":\"unet\"}", "settings.editor")]
    [InlineData("{\"maskSmoothness\":-1}", "settings.maskSmoothness")]
    [InlineData("{\"latentGradient\":\"both\"}", "settings.latentGradient")]
    [InlineData("{\"latentGradient\":1}", "settings.latentGradient")]
    [InlineData("{\"decoderStep\":3}", "settings.decoderStep")]
    [InlineData("{\"latentGradient\":\"decoder\",\"decoderStep\":0}", "settings.decoderStep")]
    [InlineData("{\"latentGradient\":\"decoder\",\"decoderStep\":1000}", "settings.decoderStep")]
    [InlineData("{\"steps\":0}", "settings.steps")]
    [InlineData("{\"steps\":1.5}", "settings.steps")]
    [InlineData("{\"mode\":\"magic\"}", "settings.mode")]
    [InlineData("{\"scale\":-1}", "settings.scale")]
    [InlineData("{\"timesteps\":\"fixed:5000\"}", "settings.timesteps")]
    [InlineData("{\"checkpointEvery\":5}", "settings.checkpointEvery")]
    public void Bad_or_unknown_settings_are_refused_with_their_name(string json, string name)
    {
        var e = Assert.Throws<FormatException>(() => DistillSettings.FromApiJson(json));
        Assert.Contains(name, e.Message);
    }
}
