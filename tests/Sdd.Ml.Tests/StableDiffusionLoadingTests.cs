using System.Buffers.Binary;
using System.Text;
using System.Text.Json;
using Sdd.Cli;
using Sdd.Ml.StableDiffusion;

namespace Sdd.Ml.Tests;

/// <summary>
/// Stable Diffusion weights from users' files: tiny random pipelines written by the tests as diffusers folders (fp32,
/// fp16, bf16, sharded, old VAE names) and as original single files, loaded strictly and compared with the modules
/// they were written from; pickle refusal; bounded safetensors headers; the probe command's .npy files.
/// </summary>
[Collection(TorchCollection.Name)]
public sealed class StableDiffusionLoadingTests
{
    private const string Prompt = "a photo of a cat";
    private const long T = 500;

    private static (Tensor Latents, Tensor Image) Inputs(ulong seed)
    {
        var g = new Generator(seed);
        return (randn([2, 4, 8, 8], generator: g), rand([1, 3, 16, 16], generator: g) * 2 - 1);
    }

    private static void AssertSame((Tensor Text, Tensor Eps, Tensor Decoded, Tensor Mean) expected, (Tensor Text, Tensor Eps, Tensor Decoded, Tensor Mean) actual)
    {
        Assert.True(Tiny.BitEqual(expected.Text, actual.Text), "text embeddings differ");
        Assert.True(Tiny.BitEqual(expected.Eps, actual.Eps), "eps differs");
        Assert.True(Tiny.BitEqual(expected.Decoded, actual.Decoded), "decoded differs");
        Assert.True(Tiny.BitEqual(expected.Mean, actual.Mean), "encoded mean differs");
    }

    private static void AssertMoves((Tensor Text, Tensor Eps, Tensor Decoded, Tensor Mean) o)
    {
        // Random weights, but not degenerate ones: every output varies and is finite.
        foreach (var t in new[] { o.Text, o.Eps, o.Decoded, o.Mean })
        {
            Assert.True(Tiny.Finite(t));
            Assert.True(t.std().item<float>() > 1e-3f);
        }
    }

    [Fact]
    public void A_diffusers_folder_loads_into_modules_that_compute_what_the_written_ones_do()
    {
        using var dir = new TempDir();
        using var parts = SdFixtures.WriteDiffusers(dir["sd"], seed: 3);
        using var model = StableDiffusionModel.Load(dir["sd"]);
        var (latents, image) = Inputs(5);
        var ids = model.Tokenizer.Encode(Prompt);
        Assert.Equal(512 + SdFixtures.TinyMerges.Length, ids[0]); // <|startoftext|> follows the merges
        var expected = SdFixtures.Outputs(parts, ids, latents, T, image);
        AssertMoves(expected);
        AssertSame(expected, SdFixtures.Outputs(model, Prompt, latents, T, image));
        Assert.Equal([1, 77, 32], expected.Text.shape);
        Assert.Equal([2, 4, 8, 8], expected.Eps.shape);
        Assert.Equal([2, 3, 16, 16], expected.Decoded.shape);
        Assert.Equal([1, 4, 8, 8], expected.Mean.shape);
        Assert.Empty(model.Assumptions);
        Assert.Equal(0.18215, model.ScalingFactor);
    }

    [Fact]
    public void The_tiny_tokenizer_gives_whole_word_tokens_and_pads_with_the_end_token()
    {
        using var dir = new TempDir();
        SdFixtures.WriteTokenizer(dir.Path, SdFixtures.TinyMerges);
        var tok = ClipTokenizer.FromFolder(dir.Path);
        var v = SdFixtures.Vocabulary(SdFixtures.TinyMerges);
        var ids = tok.Encode("A Photo of a CAT");
        Assert.Equal(new long[] { v["<|startoftext|>"], v["a</w>"], v["photo</w>"], v["of</w>"], v["a</w>"], v["cat</w>"], v["<|endoftext|>"] }, ids[..7]);
        Assert.All(ids[7..], id => Assert.Equal(v["<|endoftext|>"], id));
        Assert.Equal(77, ids.Length);
    }

    [Fact]
    public void A_small_vocabulary_turns_symbols_it_lacks_into_its_unk_token_and_reads_the_special_token_names()
    {
        using var dir = new TempDir();
        SdFixtures.WriteTokenizer(dir.Path, SdFixtures.TinyMerges);
        var vocab = SdFixtures.Vocabulary(SdFixtures.TinyMerges);
        vocab.Remove("z</w>");
        vocab["<unk>"] = 600;
        File.WriteAllText(dir["vocab.json"], JsonSerializer.Serialize(vocab));
        File.WriteAllText(dir["special_tokens_map.json"], """{"bos_token": {"content": "<|startoftext|>"}, "eos_token": "<|endoftext|>", "unk_token": "<unk>", "pad_token": "<|endoftext|>"}""");
        var tok = ClipTokenizer.FromFolder(dir.Path);
        Assert.Equal(600, tok.UnkId);
        Assert.Equal([vocab["a</w>"], 600], tok.Tokens("a z"));
    }

    [Fact]
    public void An_original_single_file_with_configs_beside_it_loads_equal_to_its_folder()
    {
        using var dir = new TempDir();
        using var parts = SdFixtures.WriteDiffusers(dir["sd"], seed: 7);
        Directory.CreateDirectory(dir["single"]);
        SafetensorsFile.Write(dir["single/v1-tiny.safetensors"], SdFixtures.SingleFileWeights(parts));
        var (latents, image) = Inputs(9);
        var expected = SdFixtures.Outputs(parts, ClipTokenizer.FromFolder(dir["sd/tokenizer"]).Encode(Prompt), latents, T, image);
        using (var fromFile = StableDiffusionModel.Load(dir["single/v1-tiny.safetensors"], dir["sd"]))
        {
            AssertSame(expected, SdFixtures.Outputs(fromFile, Prompt, latents, T, image));
            Assert.Empty(fromFile.Assumptions);
        }
        // A file without a tokenizer beside it, and no --config: refused with what to pass.
        var e = Assert.Throws<WeightsException>(() => StableDiffusionModel.Load(dir["single/v1-tiny.safetensors"]));
        Assert.Contains("tokenizer", e.Message);
        Assert.Contains("--config", e.Message);
    }

    [Fact]
    public void A_single_file_alone_gets_its_config_from_the_shapes_and_says_what_it_assumed()
    {
        using var dir = new TempDir();
        // SD 1.x's conventions that weights do not store: 8 heads per UNet block, CLIP's 64 per text head.
        using var parts = SdFixtures.WriteDiffusers(dir["sd"], seed: 11, unetJson: SdFixtures.UNetJson("8", cross: 64), textJson: SdFixtures.TextJson(64, 1));
        Directory.CreateDirectory(dir["alone"]);
        SafetensorsFile.Write(dir["alone/model.safetensors"], SdFixtures.SingleFileWeights(parts, oldTextPrefix: true), "F32");
        SdFixtures.WriteTokenizer(dir["alone/tokenizer"], SdFixtures.TinyMerges);
        using var model = StableDiffusionModel.Load(dir["alone/model.safetensors"]);
        var (latents, image) = Inputs(13);
        AssertSame(SdFixtures.Outputs(parts, model.Tokenizer.Encode(Prompt), latents, T, image), SdFixtures.Outputs(model, Prompt, latents, T, image));
        Assert.Contains(model.Assumptions, a => a.Contains("8 per block"));
        Assert.Contains(model.Assumptions, a => a.Contains("0.18215"));
        Assert.Contains(model.Assumptions, a => a.Contains("scaled_linear"));
        Assert.Equal(new[] { 32, 64 }, model.UNet.Config.BlockOutChannels);
        Assert.Equal(new[] { false, true }, model.UNet.Config.DownCrossAttention);
        Assert.Equal(new[] { true, false }, model.UNet.Config.UpCrossAttention);
        Assert.Equal(2, model.UNet.Config.LayersPerBlock);
        Assert.Equal(1, model.Vae.Config.LayersPerBlock);
        Assert.Equal(37, model.TextEncoder.Config.IntermediateSize);
        Assert.Equal(5, model.TextEncoder.Config.Layers);
    }

    [Theory]
    [InlineData("F16")]
    [InlineData("BF16")]
    public void Half_precision_weights_and_the_fp16_variant_names_load_as_their_exact_float32_values(string dtype)
    {
        using var dir = new TempDir();
        using var parts = SdFixtures.WriteDiffusers(dir["sd"], seed: 17, dtype: dtype, variant: ".fp16");
        Assert.False(File.Exists(dir["sd/unet/diffusion_pytorch_model.safetensors"]));
        Assert.Equal(dtype, SafetensorsFile.Open(dir["sd/unet/diffusion_pytorch_model.fp16.safetensors"]).Entries["conv_in.weight"].Dtype);
        using var model = StableDiffusionModel.Load(dir["sd"]);
        var (latents, image) = Inputs(19);
        AssertSame(SdFixtures.Outputs(parts, model.Tokenizer.Encode(Prompt), latents, T, image), SdFixtures.Outputs(model, Prompt, latents, T, image));
        // The rounding is torch's (round to nearest even): the reference modules were rounded by torch itself.
        var w = SafetensorsFile.Open(dir["sd/text_encoder/model.fp16.safetensors"]).ReadFloat32("text_model.final_layer_norm.weight");
        Assert.True(Tiny.BitEqual(w, w.to_type(dtype == "F16" ? ScalarType.Float16 : ScalarType.BFloat16).to_type(ScalarType.Float32)));
    }

    [Fact]
    public void A_sharded_text_encoder_and_the_old_VAE_attention_names_load_equal()
    {
        using var dir = new TempDir();
        using var parts = SdFixtures.WriteDiffusers(dir["sd"], seed: 23);
        // Text encoder in two shards with an index, as transformers writes large models.
        var text = parts.Text.state_dict();
        File.Delete(dir["sd/text_encoder/model.safetensors"]);
        var first = text.Where(kv => kv.Key.Contains(".layers.0.") || kv.Key.Contains("embeddings")).ToDictionary();
        var second = text.Where(kv => !first.ContainsKey(kv.Key)).ToDictionary();
        SafetensorsFile.Write(dir["sd/text_encoder/model-00001-of-00002.safetensors"], first);
        SafetensorsFile.Write(dir["sd/text_encoder/model-00002-of-00002.safetensors"], second);
        var map = first.Keys.ToDictionary(k => k, _ => "model-00001-of-00002.safetensors");
        foreach (var k in second.Keys) map[k] = "model-00002-of-00002.safetensors";
        File.WriteAllText(dir["sd/text_encoder/model.safetensors.index.json"], JsonSerializer.Serialize(new { metadata = new { total_size = 0 }, weight_map = map }));
        // VAE attention under diffusers' pre-0.14 names (query, key, value, proj_attn), stored as 1×1 convolutions.
        var vae = parts.Vae.Net.state_dict().ToDictionary(kv => kv.Key.Replace(".to_q.", ".query.").Replace(".to_k.", ".key.").Replace(".to_v.", ".value.").Replace(".to_out.0.", ".proj_attn."),
            kv => kv.Key.Contains(".attentions.") && kv.Key.EndsWith(".weight") && kv.Value.dim() == 2 ? kv.Value.reshape(kv.Value.shape[0], kv.Value.shape[1], 1, 1) : kv.Value);
        Assert.Contains("encoder.mid_block.attentions.0.proj_attn.weight", vae.Keys);
        SafetensorsFile.Write(dir["sd/vae/diffusion_pytorch_model.safetensors"], vae);
        using var model = StableDiffusionModel.Load(dir["sd"]);
        var (latents, image) = Inputs(29);
        AssertSame(SdFixtures.Outputs(parts, model.Tokenizer.Encode(Prompt), latents, T, image), SdFixtures.Outputs(model, Prompt, latents, T, image));

        // An index that maps a key to a shard not holding it is refused by name.
        map["text_model.final_layer_norm.bias"] = "model-00001-of-00002.safetensors";
        File.WriteAllText(dir["sd/text_encoder/model.safetensors.index.json"], JsonSerializer.Serialize(new { weight_map = map }));
        var e = Assert.Throws<WeightsException>(() => StableDiffusionModel.Load(dir["sd"]));
        Assert.Contains("text_model.final_layer_norm.bias", e.Message);
    }

    [Fact]
    public void Loading_is_strict_and_names_every_missing_unexpected_and_misshaped_key_with_its_file()
    {
        using var dir = new TempDir();
        using var parts = SdFixtures.WriteDiffusers(dir["sd"], seed: 31);
        var unet = parts.UNet.state_dict().ToDictionary();
        unet.Remove("conv_in.bias");
        unet["extra.weight"] = zeros(3);
        unet["conv_out.weight"] = zeros(4, 32, 1, 1);
        var unetFile = dir["sd/unet/diffusion_pytorch_model.safetensors"];
        SafetensorsFile.Write(unetFile, unet);
        var e = Assert.Throws<WeightsException>(() => StableDiffusionModel.Load(dir["sd"]));
        Assert.Contains("missing: conv_in.bias [32]", e.Message);
        Assert.Contains($"unexpected: extra.weight in {unetFile}", e.Message);
        Assert.Contains("mis-shaped: conv_out.weight is [4, 32, 1, 1]", e.Message);
        Assert.Contains("needs [4, 32, 3, 3]", e.Message);
        Assert.Contains("3 key(s)", e.Message);

        // The single file: a key under the UNet's prefix that maps nowhere, and one under no known prefix.
        SafetensorsFile.Write(unetFile, parts.UNet.state_dict());
        var single = SdFixtures.SingleFileWeights(parts);
        single["model.diffusion_model.label_emb.0.0.weight"] = zeros(2);
        single["lora_te_text_model.weight"] = zeros(2);
        single.Remove("first_stage_model.decoder.norm_out.bias");
        SafetensorsFile.Write(dir["one.safetensors"], single);
        e = Assert.Throws<WeightsException>(() => StableDiffusionModel.Load(dir["one.safetensors"], dir["sd"]));
        Assert.Contains("unexpected: model.diffusion_model.label_emb.0.0.weight", e.Message);
        Assert.Contains("unexpected: lora_te_text_model.weight", e.Message);
        Assert.Contains(dir["one.safetensors"], e.Message);
        e = Assert.Throws<WeightsException>(() =>
        {
            single.Remove("model.diffusion_model.label_emb.0.0.weight");
            single.Remove("lora_te_text_model.weight");
            SafetensorsFile.Write(dir["one.safetensors"], single);
            StableDiffusionModel.Load(dir["one.safetensors"], dir["sd"]);
        });
        Assert.Contains("missing: decoder.conv_norm_out.bias", e.Message);
    }

    [Fact]
    public void Configs_the_modules_do_not_build_are_refused_by_name()
    {
        using var dir = new TempDir();
        foreach (var (extra, name) in new[]
        {
            (", \"class_embed_type\": \"timestep\"", "class_embed_type"),
            (", \"resnet_time_scale_shift\": \"scale_shift\"", "resnet_time_scale_shift"),
            (", \"downsample_padding\": 0", "downsample_padding"),
            (", \"addition_embed_type\": \"text_time\"", "addition_embed_type"),
        })
        {
            File.WriteAllText(dir["config.json"], SdFixtures.UNetJson(extra: extra));
            var e = Assert.Throws<WeightsException>(() => UNetConditionConfig.Read(dir["config.json"]));
            Assert.Contains(name, e.Message);
        }
        File.WriteAllText(dir["config.json"], SdFixtures.UNetJson(heads: "[2, 3]"));
        Assert.Contains("heads", Assert.Throws<WeightsException>(() => UNetConditionConfig.Read(dir["config.json"])).Message);
        // SD 1.x's attention_head_dim is the head count; num_attention_heads wins when both are set.
        File.WriteAllText(dir["config.json"], SdFixtures.UNetJson(heads: "8"));
        Assert.Equal(new[] { 8, 8 }, UNetConditionConfig.Read(dir["config.json"]).Heads);
        File.WriteAllText(dir["config.json"], SdFixtures.UNetJson(heads: "8", extra: ", \"num_attention_heads\": [4, 16]"));
        Assert.Equal(new[] { 4, 16 }, UNetConditionConfig.Read(dir["config.json"]).Heads);
        File.WriteAllText(dir["config.json"], SdFixtures.SchedulerJson.Replace("scaled_linear", "squaredcos_cap_v2"));
        Assert.Contains("squaredcos_cap_v2", Assert.Throws<WeightsException>(() => SdScheduleConfig.Read(dir["config.json"])).Message);
        File.WriteAllText(dir["config.json"], SdFixtures.TextJson().Replace("quick_gelu", "relu"));
        Assert.Contains("relu", Assert.Throws<WeightsException>(() => ClipTextConfig.Read(dir["config.json"])).Message);
        File.WriteAllText(dir["config.json"], SdFixtures.TextJson().Replace("\"num_hidden_layers\": 5", "\"num_hidden_layers\": \"5\""));
        Assert.Contains("num_hidden_layers", Assert.Throws<WeightsException>(() => ClipTextConfig.Read(dir["config.json"])).Message);
    }

    /// <summary>SD 1.5's unet/config.json as diffusers 0.2x writes it: every default spelled out.</summary>
    private const string Sd15UNetConfig = """
        {"_class_name": "UNet2DConditionModel", "_diffusers_version": "0.27.0", "act_fn": "silu", "addition_embed_type": null,
         "addition_embed_type_num_heads": 64, "addition_time_embed_dim": null, "attention_head_dim": 8, "attention_type": "default",
         "block_out_channels": [320, 640, 1280, 1280], "center_input_sample": false, "class_embed_type": null, "class_embeddings_concat": false,
         "conv_in_kernel": 3, "conv_out_kernel": 3, "cross_attention_dim": 768, "cross_attention_norm": null,
         "down_block_types": ["CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"], "downsample_padding": 1,
         "dropout": 0.0, "dual_cross_attention": false, "encoder_hid_dim": null, "encoder_hid_dim_type": null, "flip_sin_to_cos": true,
         "freq_shift": 0, "in_channels": 4, "layers_per_block": 2, "mid_block_only_cross_attention": null, "mid_block_scale_factor": 1,
         "mid_block_type": "UNetMidBlock2DCrossAttn", "norm_eps": 1e-05, "norm_num_groups": 32, "num_attention_heads": null,
         "num_class_embeds": null, "only_cross_attention": false, "out_channels": 4, "projection_class_embeddings_input_dim": null,
         "resnet_out_scale_factor": 1.0, "resnet_skip_time_act": false, "resnet_time_scale_shift": "default",
         "reverse_transformer_layers_per_block": null, "sample_size": 64, "time_cond_proj_dim": null, "time_embedding_act_fn": null,
         "time_embedding_dim": null, "time_embedding_type": "positional", "timestep_post_act": null, "transformer_layers_per_block": 1,
         "up_block_types": ["UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"], "upcast_attention": false,
         "use_linear_projection": false}
        """;

    [Fact]
    public void SD_1_5_and_2_1_configs_as_diffusers_writes_them_read_as_their_architectures()
    {
        using var dir = new TempDir();
        File.WriteAllText(dir["unet.json"], Sd15UNetConfig);
        var sd15 = UNetConditionConfig.Read(dir["unet.json"]);
        Assert.Equal(new UNetConditionConfig(), sd15 with { }, new UNetConfigComparer());
        // SD 2.1: heads per block in attention_head_dim, linear projections, a 1024-wide text encoder.
        File.WriteAllText(dir["unet.json"], Sd15UNetConfig.Replace("\"attention_head_dim\": 8", "\"attention_head_dim\": [5, 10, 20, 20]")
            .Replace("\"use_linear_projection\": false", "\"use_linear_projection\": true").Replace("\"cross_attention_dim\": 768", "\"cross_attention_dim\": 1024"));
        var sd21 = UNetConditionConfig.Read(dir["unet.json"]);
        Assert.Equal(new[] { 5, 10, 20, 20 }, sd21.Heads);
        Assert.True(sd21.UseLinearProjection);
        Assert.Equal(1024, sd21.CrossAttentionDim);
        File.WriteAllText(dir["vae.json"], """
            {"_class_name": "AutoencoderKL", "_diffusers_version": "0.27.0", "act_fn": "silu", "block_out_channels": [128, 256, 512, 512],
             "down_block_types": ["DownEncoderBlock2D", "DownEncoderBlock2D", "DownEncoderBlock2D", "DownEncoderBlock2D"], "force_upcast": true,
             "in_channels": 3, "latent_channels": 4, "latents_mean": null, "latents_std": null, "layers_per_block": 2, "norm_num_groups": 32,
             "out_channels": 3, "sample_size": 512, "scaling_factor": 0.18215, "shift_factor": null,
             "up_block_types": ["UpDecoderBlock2D", "UpDecoderBlock2D", "UpDecoderBlock2D", "UpDecoderBlock2D"], "use_post_quant_conv": true,
             "use_quant_conv": true}
            """);
        var vae = VaeConfig.Read(dir["vae.json"]);
        Assert.Equal(8, vae.Downsampling);
        Assert.Equal(0.18215, vae.ScalingFactor);
        Assert.Equal(32, vae.NormNumGroups);
        Assert.Equal(2, vae.LayersPerBlock);
    }

    private sealed class UNetConfigComparer : IEqualityComparer<UNetConditionConfig>
    {
        public bool Equals(UNetConditionConfig? a, UNetConditionConfig? b) => a is not null && b is not null &&
            a.BlockOutChannels.SequenceEqual(b.BlockOutChannels) && a.DownCrossAttention.SequenceEqual(b.DownCrossAttention) &&
            a.UpCrossAttention.SequenceEqual(b.UpCrossAttention) && a.Heads.SequenceEqual(b.Heads) && a.LayersPerBlock == b.LayersPerBlock &&
            a.CrossAttentionDim == b.CrossAttentionDim && a.UseLinearProjection == b.UseLinearProjection && a.NormGroups == b.NormGroups &&
            a.NormEps == b.NormEps && a.FlipSinToCos == b.FlipSinToCos && a.FreqShift == b.FreqShift && a.SampleSize == b.SampleSize &&
            a.InChannels == b.InChannels && a.OutChannels == b.OutChannels && a.TransformerLayers == b.TransformerLayers;

        public int GetHashCode(UNetConditionConfig c) => c.BlockOutChannels.Length;
    }

    [Fact]
    public void Pickle_checkpoints_are_refused_with_a_message_that_they_can_run_code_and_how_to_convert()
    {
        using var dir = new TempDir();
        File.WriteAllBytes(dir["v1-5-pruned.ckpt"], [(byte)'P', (byte)'K', 3, 4, 0, 0]);
        var e = Assert.Throws<WeightsException>(() => StableDiffusionModel.Load(dir["v1-5-pruned.ckpt"]));
        Assert.Contains("run arbitrary code", e.Message);
        Assert.Contains("safetensors", e.Message);
        Assert.Contains(dir["v1-5-pruned.ckpt"], e.Message);
        foreach (var name in new[] { "model.bin", "model.pt", "model.pth" })
        {
            File.WriteAllBytes(dir[name], [0x80, 2]);
            Assert.Contains("run arbitrary code", Assert.Throws<WeightsException>(() => StableDiffusionModel.Load(dir[name])).Message);
        }
        // Renamed to .safetensors, the content still gives it away: a zip archive or a raw pickle stream.
        File.WriteAllBytes(dir["zip.safetensors"], [(byte)'P', (byte)'K', 3, 4, 1, 2, 3, 4, 5, 6, 7, 8]);
        File.WriteAllBytes(dir["raw.safetensors"], [0x80, 4, 0x95, 0, 0, 0, 0, 0, 0, 0]);
        Assert.Contains("run arbitrary code", Assert.Throws<WeightsException>(() => StableDiffusionModel.Load(dir["zip.safetensors"])).Message);
        Assert.Contains("run arbitrary code", Assert.Throws<WeightsException>(() => SafetensorsFile.Open(dir["raw.safetensors"])).Message);
        // A diffusers folder with .bin weights only.
        using var parts = SdFixtures.WriteDiffusers(dir["sd"], seed: 37);
        File.Move(dir["sd/unet/diffusion_pytorch_model.safetensors"], dir["sd/unet/diffusion_pytorch_model.bin"]);
        e = Assert.Throws<WeightsException>(() => StableDiffusionModel.Load(dir["sd"]));
        Assert.Contains("run arbitrary code", e.Message);
        Assert.Contains("diffusion_pytorch_model.bin", e.Message);
    }

    private static void WriteRaw(string path, string header, int dataBytes, ulong? declaredLength = null)
    {
        var json = Encoding.UTF8.GetBytes(header);
        using var f = File.Create(path);
        var len = new byte[8];
        BinaryPrimitives.WriteUInt64LittleEndian(len, declaredLength ?? (ulong)json.Length);
        f.Write(len);
        f.Write(json);
        f.Write(new byte[dataBytes]);
    }

    [Fact]
    public void Safetensors_headers_are_bounded_and_checked_before_any_data_is_read()
    {
        using var dir = new TempDir();
        string P(string n) => dir[n + ".safetensors"];
        WriteRaw(P("ok"), """{"a": {"dtype": "F32", "shape": [2, 2], "data_offsets": [0, 16]}, "__metadata__": {"format": "pt"}}""", 16);
        var ok = SafetensorsFile.Open(P("ok"));
        Assert.Equal([2, 2], ok.Entries["a"].Shape);
        Assert.Equal("pt", ok.Metadata["format"]);
        Assert.True(Tiny.BitEqual(zeros(2, 2), ok.ReadFloat32("a")));
        var cases = new (string Name, string Header, int Data, ulong? Declared, string Says)[]
        {
            ("huge", "{}", 0, 1UL << 40, "header length"),
            ("past-end", """{"a": {"dtype": "F32", "shape": [2, 2], "data_offsets": [0, 16]}}""", 16, 4096, "header length"),
            ("outside", """{"a": {"dtype": "F32", "shape": [2, 2], "data_offsets": [0, 16]}}""", 8, null, "outside the data"),
            ("short", """{"a": {"dtype": "F32", "shape": [2, 3], "data_offsets": [0, 16]}}""", 16, null, "needs 24 bytes"),
            ("overlap", """{"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}, "b": {"dtype": "F32", "shape": [2], "data_offsets": [4, 12]}}""", 12, null, "overlaps"),
            ("twice", """{"a": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}, "a": {"dtype": "F32", "shape": [1], "data_offsets": [4, 8]}}""", 8, null, "twice"),
            ("dtype", """{"a": {"dtype": "F8_E4M3", "shape": [1], "data_offsets": [0, 1]}}""", 1, null, "unknown dtype"),
            ("negative", """{"a": {"dtype": "F32", "shape": [-1], "data_offsets": [0, 4]}}""", 4, null, "negative shape"),
            ("not-json", "{\"a\": [", 0, null, "cannot be read"),
            ("array", "[1, 2]", 0, null, "not a JSON object"),
        };
        foreach (var c in cases)
        {
            WriteRaw(P(c.Name), c.Header, c.Data, c.Declared);
            var e = Assert.Throws<WeightsException>(() => SafetensorsFile.Open(P(c.Name)));
            Assert.Contains(c.Says, e.Message);
            Assert.Contains(P(c.Name), e.Message);
        }
        File.WriteAllBytes(P("tiny"), [1, 2, 3]);
        Assert.Contains("not a safetensors file", Assert.Throws<WeightsException>(() => SafetensorsFile.Open(P("tiny"))).Message);
        WriteRaw(P("ints"), """{"a": {"dtype": "I64", "shape": [1], "data_offsets": [0, 8]}}""", 8);
        Assert.Contains("not a floating-point weight", Assert.Throws<WeightsException>(() => SafetensorsFile.Open(P("ints")).ReadFloat32("a")).Message);
    }

    [Fact]
    public void Npy_files_are_numpy_format_1_0_and_read_back()
    {
        using var dir = new TempDir();
        var x = randn([2, 3, 5], generator: new Generator(41));
        Npy.WriteFloat32(dir["x.npy"], x);
        var bytes = File.ReadAllBytes(dir["x.npy"]);
        Assert.Equal(new byte[] { 0x93, (byte)'N', (byte)'U', (byte)'M', (byte)'P', (byte)'Y', 1, 0 }, bytes[..8]);
        int headerLen = BinaryPrimitives.ReadUInt16LittleEndian(bytes.AsSpan(8, 2));
        Assert.Equal(0, (10 + headerLen) % 64);
        var header = Encoding.ASCII.GetString(bytes, 10, headerLen);
        Assert.StartsWith("{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3, 5), }", header);
        Assert.EndsWith("\n", header);
        Assert.Equal(10 + headerLen + 30 * 4, bytes.Length);
        Assert.True(Tiny.BitEqual(x, Npy.ReadFloat32(dir["x.npy"])));
        Npy.WriteInt64(dir["ids.npy"], tensor(new long[] { 49406, 320, 49407 }, [1, 3]));
        var (shape, values) = Npy.ReadInt64(dir["ids.npy"]);
        Assert.Equal([1, 3], shape);
        Assert.Equal([49406, 320, 49407], values);
        Assert.Contains("'<i8'", Encoding.ASCII.GetString(File.ReadAllBytes(dir["ids.npy"]), 10, 118));
        Npy.WriteFloat32(dir["v.npy"], tensor(new float[] { 1, 2 }));
        Assert.Contains("'shape': (2,)", Encoding.ASCII.GetString(File.ReadAllBytes(dir["v.npy"]), 10, 118));
        // float64 and float16 arrays as numpy writes them, and Fortran order refused.
        var header64 = "{'descr': '<f8', 'fortran_order': False, 'shape': (2,), }";
        header64 += new string(' ', (64 - (10 + header64.Length + 1) % 64) % 64) + "\n";
        File.WriteAllBytes(dir["d.npy"], [0x93, .. "NUMPY"u8, 1, 0, (byte)header64.Length, 0, .. Encoding.ASCII.GetBytes(header64), .. BitConverter.GetBytes(1.5), .. BitConverter.GetBytes(-2.25)]);
        Assert.Equal(new[] { 1.5f, -2.25f }, Npy.ReadFloat32(dir["d.npy"]).data<float>().ToArray());
        File.WriteAllBytes(dir["f.npy"], [0x93, .. "NUMPY"u8, 1, 0, (byte)header64.Length, 0, .. Encoding.ASCII.GetBytes(header64.Replace("False", "True ")), .. new byte[16]]);
        Assert.Throws<InvalidDataException>(() => Npy.ReadFloat32(dir["f.npy"]));
    }

    private static (int Code, string Out, string Err) Probe(params string[] args)
    {
        var (oldOut, oldErr) = (Console.Out, Console.Error);
        using var stdout = new StringWriter();
        using var stderr = new StringWriter();
        Console.SetOut(stdout);
        Console.SetError(stderr);
        try { return (SdCommands.Probe(new Options(args, new HashSet<string>())), stdout.ToString(), stderr.ToString()); }
        finally { Console.SetOut(oldOut); Console.SetError(oldErr); }
    }

    [Fact]
    public void The_probe_writes_what_the_pipeline_computes_as_npy_files_from_both_layouts()
    {
        using var dir = new TempDir();
        using var parts = SdFixtures.WriteDiffusers(dir["sd"], seed: 43);
        SafetensorsFile.Write(dir["v1.safetensors"], SdFixtures.SingleFileWeights(parts), "F32");
        var (latents, image) = Inputs(47);
        Npy.WriteFloat32(dir["latents.npy"], latents);
        Npy.WriteFloat32(dir["image.npy"], image);
        var ids = ClipTokenizer.FromFolder(dir["sd/tokenizer"]).Encode(Prompt);
        var expected = SdFixtures.Outputs(parts, ids, latents, 981, image);
        foreach (var (teacher, extra) in new[] { (dir["sd"], Array.Empty<string>()), (dir["v1.safetensors"], new[] { "--config", dir["sd"] }) })
        {
            var outDir = dir[Path.GetFileName(teacher) + "-out"];
            var (code, stdout, _) = Probe([
                "--teacher", teacher, "--prompt", Prompt, "--latents", dir["latents.npy"], "--timestep", "981", "--out", outDir, "--image", dir["image.npy"], .. extra]);
            Assert.Equal(0, code);
            Assert.Contains("eps [2, 4, 8, 8] at t = 981 (epsilon)", stdout);
            var (idShape, idValues) = Npy.ReadInt64(Path.Combine(outDir, "input_ids.npy"));
            Assert.Equal([1, 77], idShape);
            Assert.Equal(ids, idValues);
            Assert.True(Tiny.BitEqual(expected.Text, Npy.ReadFloat32(Path.Combine(outDir, "text_embeddings.npy"))));
            Assert.True(Tiny.BitEqual(expected.Eps, Npy.ReadFloat32(Path.Combine(outDir, "eps.npy"))));
            Assert.True(Tiny.BitEqual(expected.Decoded, Npy.ReadFloat32(Path.Combine(outDir, "decoded.npy"))));
            Assert.True(Tiny.BitEqual(expected.Mean, Npy.ReadFloat32(Path.Combine(outDir, "encoded_mean.npy"))));
        }
        // Random latents from the probe's own generator, written beside the outputs.
        Assert.Equal(0, Probe("--teacher", dir["sd"], "--prompt", Prompt, "--latents", "random:1,8,8", "--timestep", "10", "--out", dir["random-out"]).Code);
        var drawn = Npy.ReadFloat32(dir["random-out/latents.npy"]);
        Assert.Equal([1, 4, 8, 8], drawn.shape);
        Assert.True(Tiny.BitEqual(SdFixtures.Outputs(parts, ids, drawn, 10, image).Eps, Npy.ReadFloat32(dir["random-out/eps.npy"])));
        Assert.Contains("random:B,h,w", Assert.Throws<UsageException>(() => Probe(
            "--teacher", dir["sd"], "--prompt", Prompt, "--latents", "random:1,8", "--timestep", "1", "--out", dir["x"])).Message);
        Assert.Contains("between 0 and 999", Assert.Throws<UsageException>(() => Probe(
            "--teacher", dir["sd"], "--prompt", Prompt, "--latents", dir["latents.npy"], "--timestep", "1000", "--out", dir["x"])).Message);
        Npy.WriteFloat32(dir["bad.npy"], zeros(1, 3, 8, 8));
        Assert.Contains("[B, 4, h, w]", Assert.Throws<UsageException>(() => Probe(
            "--teacher", dir["sd"], "--prompt", Prompt, "--latents", dir["bad.npy"], "--timestep", "1", "--out", dir["x"])).Message);
        Assert.Contains("run arbitrary code", Assert.Throws<WeightsException>(() => Probe(
            "--teacher", dir["m.ckpt"], "--prompt", Prompt, "--latents", dir["latents.npy"], "--timestep", "1", "--out", dir["x"])).Message);
    }
}
