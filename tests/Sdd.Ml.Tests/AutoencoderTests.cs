using TorchSharp.PyBridge;
using Sdd.Ml.Diffusion;

namespace Sdd.Ml.Tests;

/// <summary>The autoencoder in the diffusers AutoencoderKL layout, checked against files the tests write in that layout.</summary>
[Collection(TorchCollection.Name)]
public sealed class AutoencoderTests
{
    private static AutoencoderConfig Tiny3() => new() { BlockOutChannels = [8, 16, 16], LayersPerBlock = 1, NormNumGroups = 4, SampleSize = 16 };

    /// <summary>
    /// The tensor names and shapes the diffusers AutoencoderKL layout gives a config, written out independently of the
    /// model code (the test's oracle): Encoder/Decoder with ResnetBlock2D, Down/Upsample2D, a mid block with one attention.
    /// </summary>
    private static Dictionary<string, long[]> DiffusersLayout(AutoencoderConfig c)
    {
        var d = new Dictionary<string, long[]>();
        void Conv(string n, int i, int o, int k) { d[n + ".weight"] = [o, i, k, k]; d[n + ".bias"] = [o]; }
        void Norm(string n, int ch) { d[n + ".weight"] = [ch]; d[n + ".bias"] = [ch]; }
        void Lin(string n, int ch) { d[n + ".weight"] = [ch, ch]; d[n + ".bias"] = [ch]; }
        void Res(string n, int i, int o)
        {
            Norm(n + ".norm1", i); Conv(n + ".conv1", i, o, 3); Norm(n + ".norm2", o); Conv(n + ".conv2", o, o, 3);
            if (i != o) Conv(n + ".conv_shortcut", i, o, 1);
        }
        void Mid(string n, int ch)
        {
            Res(n + ".resnets.0", ch, ch);
            Norm(n + ".attentions.0.group_norm", ch);
            foreach (var p in new[] { "to_q", "to_k", "to_v", "to_out.0" }) Lin($"{n}.attentions.0.{p}", ch);
            Res(n + ".resnets.1", ch, ch);
        }
        var ch = c.BlockOutChannels; int l = c.LatentChannels, n = ch.Length;
        Conv("encoder.conv_in", c.InChannels, ch[0], 3);
        int prev = ch[0];
        for (int i = 0; i < n; i++)
        {
            for (int j = 0; j < c.LayersPerBlock; j++) Res($"encoder.down_blocks.{i}.resnets.{j}", j == 0 ? prev : ch[i], ch[i]);
            if (i < n - 1) Conv($"encoder.down_blocks.{i}.downsamplers.0.conv", ch[i], ch[i], 3);
            prev = ch[i];
        }
        Mid("encoder.mid_block", ch[^1]);
        Norm("encoder.conv_norm_out", ch[^1]);
        Conv("encoder.conv_out", ch[^1], 2 * l, 3);
        Conv("quant_conv", 2 * l, 2 * l, 1);
        Conv("post_quant_conv", l, l, 1);
        var rev = ch.Reverse().ToArray();
        Conv("decoder.conv_in", l, rev[0], 3);
        Mid("decoder.mid_block", rev[0]);
        prev = rev[0];
        for (int i = 0; i < n; i++)
        {
            for (int j = 0; j < c.LayersPerBlock + 1; j++) Res($"decoder.up_blocks.{i}.resnets.{j}", j == 0 ? prev : rev[i], rev[i]);
            if (i < n - 1) Conv($"decoder.up_blocks.{i}.upsamplers.0.conv", rev[i], rev[i], 3);
            prev = rev[i];
        }
        Norm("decoder.conv_norm_out", ch[0]);
        Conv("decoder.conv_out", ch[0], c.OutChannels, 3);
        return d;
    }

    /// <summary>A diffusers-style folder: config.json with diffusers' own field names (and some this build ignores), weights of the layout.</summary>
    private static Dictionary<string, Tensor> WriteFolder(string dir, Func<Dictionary<string, Tensor>, Dictionary<string, Tensor>>? edit = null, ScalarType dtype = ScalarType.Float32)
    {
        Directory.CreateDirectory(dir);
        File.WriteAllText(Path.Combine(dir, "config.json"), """
            {
              "_class_name": "AutoencoderKL",
              "_diffusers_version": "0.27.0",
              "act_fn": "silu",
              "block_out_channels": [8, 16, 16],
              "down_block_types": ["DownEncoderBlock2D", "DownEncoderBlock2D", "DownEncoderBlock2D"],
              "force_upcast": true,
              "in_channels": 3,
              "latent_channels": 4,
              "layers_per_block": 1,
              "norm_num_groups": 4,
              "out_channels": 3,
              "sample_size": 16,
              "scaling_factor": 0.5,
              "up_block_types": ["UpDecoderBlock2D", "UpDecoderBlock2D", "UpDecoderBlock2D"]
            }
            """);
        var g = new Generator(11);
        var tensors = DiffusersLayout(Tiny3()).ToDictionary(kv => kv.Key, kv => (randn(kv.Value, generator: g) * 0.1).to_type(dtype));
        if (edit is not null) tensors = edit(tensors);
        Safetensors.SaveStateDict(Path.Combine(dir, AutoencoderConfig.WeightsFile), tensors);
        return tensors;
    }

    private static string TempDir() => Directory.CreateTempSubdirectory("sdd-vae-").FullName;

    [Fact]
    public void A_folder_in_the_diffusers_layout_loads_strictly_with_every_tensor_in_its_place()
    {
        var dir = TempDir();
        try
        {
            using var scope = NewDisposeScope();
            var written = WriteFolder(dir);
            using var ae = Autoencoder.Load(dir);
            Assert.Equal(0.5, ae.Config.ScalingFactor);
            var state = ae.Net.state_dict();
            Assert.Equal(written.Keys.OrderBy(k => k), state.Keys.OrderBy(k => k));
            foreach (var (name, t) in written) Assert.True(Tiny.BitEqual(t, state[name]), $"{name} differs after loading");

            // The shapes the layout implies: 16 px -> 4x4x4 latents (three blocks, two downsamplings), and back.
            var x = rand(2, 3, 16, 16) * 2 - 1;
            var z = ae.Encode(x);
            Assert.Equal(new long[] { 2, 4, 4, 4 }, z.shape);
            var y = ae.Decode(z);
            Assert.Equal(new long[] { 2, 3, 16, 16 }, y.shape);
            Assert.True(Tiny.Finite(y));
            // Scaled latents: the posterior mean times scaling_factor.
            Assert.True(allclose(z, ae.Net.Encode(x).Mean * 0.5, 1e-5, 1e-6));
        }
        finally { Directory.Delete(dir, true); }
    }

    [Fact]
    public void Half_precision_weights_and_the_older_attention_names_load_too()
    {
        var dir = TempDir();
        try
        {
            using var scope = NewDisposeScope();
            var written = WriteFolder(dir, dtype: ScalarType.Float16);
            using (var ae = Autoencoder.Load(dir))
                Assert.True(allclose(ae.Net.state_dict()["decoder.conv_out.weight"], written["decoder.conv_out.weight"].to_type(ScalarType.Float32)));

            // query/key/value/proj_attn stored as 1x1 convolutions, as older diffusers checkpoints have them.
            WriteFolder(dir, t => t.ToDictionary(
                kv => kv.Key.Replace(".to_q.", ".query.").Replace(".to_k.", ".key.").Replace(".to_v.", ".value.").Replace(".to_out.0.", ".proj_attn."),
                kv => kv.Key.Contains(".attentions.") && kv.Key.EndsWith(".weight") && !kv.Key.Contains("group_norm") ? kv.Value.reshape(kv.Value.shape[0], kv.Value.shape[1], 1, 1) : kv.Value));
            using var legacy = Autoencoder.Load(dir);
            var w = legacy.Net.state_dict()["encoder.mid_block.attentions.0.to_out.0.weight"];
            Assert.Equal(new long[] { 16, 16 }, w.shape);
        }
        finally { Directory.Delete(dir, true); }
    }

    [Theory]
    [InlineData("missing", "decoder.up_blocks.1.resnets.1.conv2.bias")]
    [InlineData("unexpected", "encoder.down_blocks.3.resnets.0.conv1.weight")]
    [InlineData("shape", "encoder.conv_out.weight")]
    public void A_file_that_does_not_fit_fails_naming_the_tensor(string fault, string key)
    {
        var dir = TempDir();
        try
        {
            using var scope = NewDisposeScope();
            WriteFolder(dir, t =>
            {
                if (fault == "missing") t.Remove(key);
                if (fault == "unexpected") t[key] = zeros(8, 8, 3, 3);
                if (fault == "shape") t[key] = zeros(6, 16, 3, 3);
                return t;
            });
            var e = Assert.Throws<InvalidDataException>(() => Autoencoder.Load(dir));
            Assert.Contains(key, e.Message);
            Assert.Contains(fault == "shape" ? "[6, 16, 3, 3]" : fault, e.Message);
            if (fault == "shape") Assert.Contains("[8, 16, 3, 3]", e.Message);
        }
        finally { Directory.Delete(dir, true); }
    }

    [Fact]
    public void A_config_this_build_cannot_honour_is_refused_naming_the_field()
    {
        Assert.Contains("act_fn", Assert.Throws<NotSupportedException>(() => (Tiny3() with { ActFn = "gelu" }).Validated()).Message);
        Assert.Contains("up_block_types", Assert.Throws<NotSupportedException>(() => (Tiny3() with { UpBlockTypes = ["UpDecoderBlock2D"] }).Validated()).Message);
        Assert.Contains("norm_num_groups", Assert.Throws<InvalidDataException>(() => (Tiny3() with { NormNumGroups = 3 }).Validated()).Message);
    }

    [Fact]
    public void Save_then_load_reconstructs_bit_identically()
    {
        var dir = TempDir();
        try
        {
            using var scope = NewDisposeScope();
            random.manual_seed(4);
            using var ae = new Autoencoder(Tiny3());
            var x = rand(2, 3, 16, 16) * 2 - 1;
            using var _ = no_grad();
            var before = ae.Net.forward(x);
            ae.Save(dir);
            Assert.True(File.Exists(Path.Combine(dir, "diffusion_pytorch_model.safetensors")));
            Assert.Contains("\"block_out_channels\"", File.ReadAllText(Path.Combine(dir, "config.json")));
            using var loaded = Autoencoder.Load(dir);
            var a = ae.Net.state_dict(); var b = loaded.Net.state_dict();
            Assert.All(a.Keys, k => Assert.True(Tiny.BitEqual(a[k], b[k]), $"{k} differs"));
            Assert.True(Tiny.BitEqual(before, loaded.Net.forward(x)), $"max diff {(before - loaded.Net.forward(x)).abs().max().item<float>()}");
        }
        finally { Directory.Delete(dir, true); }
    }

    [Fact]
    public void Without_gradients_a_batch_is_encoded_and_decoded_in_chunks_to_the_same_values_as_whole()
    {
        using var scope = NewDisposeScope();
        random.manual_seed(5);
        using var ae = new Autoencoder(Tiny3());
        var x = rand(5, 3, 16, 16) * 2 - 1;
        // With gradients the batch runs whole (the autograd graph holds the activations anyway).
        var zWhole = ae.Encode(x).detach();
        var yWhole = ae.Decode(zWhole).detach();
        using var _ = no_grad();
        ae.ChunkPixels = 2 * 16 * 16; // two images a chunk: chunks of 2, 2 and 1
        var z = ae.Encode(x);
        var y = ae.Decode(z);
        Assert.Equal(zWhole.shape, z.shape);
        Assert.Equal(yWhole.shape, y.shape);
        Assert.True(allclose(z, zWhole, rtol: 1e-5, atol: 1e-5), $"encode: max diff {(z - zWhole).abs().max().item<float>()}");
        Assert.True(allclose(y, yWhole, rtol: 1e-5, atol: 1e-5), $"decode: max diff {(y - yWhole).abs().max().item<float>()}");
        // Each image is its own: the last chunk (one image) gives what that image alone gives.
        Assert.True(allclose(y[4..5], ae.Decode(z[4..5]), rtol: 1e-5, atol: 1e-5));
        // A sample from the posterior draws its noise once for the whole batch, so a chunked encode draws the same noise.
        var s1 = ae.Encode(x, new Generator(7), sample: true);
        ae.ChunkPixels = long.MaxValue;
        var s2 = ae.Encode(x, new Generator(7), sample: true);
        Assert.True(allclose(s1, s2, rtol: 1e-5, atol: 1e-5), $"sampled encode: max diff {(s1 - s2).abs().max().item<float>()}");
        Assert.False(allclose(s1, z, rtol: 1e-3, atol: 1e-3));
    }
}
