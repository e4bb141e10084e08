using System.Text.Json;
using Sdd.Ml.Diffusion;

namespace Sdd.Ml.StableDiffusion;

/// <summary>
/// A Stable Diffusion 1.x / 2.x pipeline's parts, loaded from a user's files: the CLIP tokenizer and text encoder,
/// the conditional UNet, the VAE and the training schedule. Pickle checkpoints are refused; every weight is checked
/// by key and shape. Weights are read as float32 (fp16 and bf16 files are widened) on the CPU.
/// </summary>
public sealed class StableDiffusionModel : IDisposable
{
    public required string Source { get; init; }
    public required ClipTokenizer Tokenizer { get; init; }
    public required ClipTextModel TextEncoder { get; init; }
    public required UNet2DCondition UNet { get; init; }
    /// <summary>The VAE, as the project's latent teachers hold theirs: Encode gives scaled posterior means, Decode takes scaled latents.</summary>
    public required Autoencoder Vae { get; init; }
    public required SdScheduleConfig Schedule { get; init; }
    /// <summary>Notes on what was assumed rather than read (single files carry no config).</summary>
    public IReadOnlyList<string> Assumptions { get; init; } = [];

    public double ScalingFactor => Vae.Config.ScalingFactor;

    /// <summary>A diffusers folder (model_index.json, unet/, vae/, text_encoder/, tokenizer/, scheduler/) or one
    /// original .safetensors checkpoint. <paramref name="configDir"/>: for a single file, a folder whose tokenizer/ and
    /// configs (unet/config.json, …) it uses; default the file's own folder when it has a tokenizer/.</summary>
    public static StableDiffusionModel Load(string path, string? configDir = null)
    {
        SafetensorsFile.RefusePickle(path);
        if (Directory.Exists(path)) return LoadFolder(path);
        if (File.Exists(path)) return LoadSingleFile(path, configDir);
        throw new WeightsException($"{path}: no such file or folder");
    }

    private static StableDiffusionModel LoadFolder(string dir)
    {
        var index = Path.Combine(dir, "model_index.json");
        if (File.Exists(index))
        {
            using var doc = JsonDocument.Parse(File.ReadAllBytes(index));
            foreach (var part in new[] { "unet", "vae", "text_encoder", "tokenizer", "scheduler" })
                if (!doc.RootElement.TryGetProperty(part, out _)) throw new WeightsException($"{index}: no '{part}' component; not a Stable Diffusion pipeline");
        }
        else if (!Directory.Exists(Path.Combine(dir, "unet"))) throw new WeightsException($"{dir}: not a diffusers folder (no model_index.json, no unet/)");
        var unetConfig = UNetConditionConfig.Read(Path.Combine(dir, "unet", "config.json"));
        var vaeConfig = VaeConfig.Read(Path.Combine(dir, "vae", "config.json"));
        var textConfig = ClipTextConfig.Read(Path.Combine(dir, "text_encoder", "config.json"));
        var schedule = SdScheduleConfig.Read(Path.Combine(dir, "scheduler", "scheduler_config.json"));
        var tokenizer = ClipTokenizer.FromFolder(Path.Combine(dir, "tokenizer"));
        var unet = new UNet2DCondition(unetConfig);
        var vae = new Autoencoder(vaeConfig);
        var text = new ClipTextModel(textConfig);
        SdCheckpoint.LoadStrict(unet, SdCheckpoint.DiffusersWeights(SdCheckpoint.ComponentFiles(Path.Combine(dir, "unet"), "diffusion_pytorch_model")), "the UNet");
        SdCheckpoint.LoadStrict(vae.Net, SdCheckpoint.DiffusersWeights(SdCheckpoint.ComponentFiles(Path.Combine(dir, "vae"), "diffusion_pytorch_model"), vae: true), "the VAE");
        SdCheckpoint.LoadStrict(text, SdCheckpoint.DiffusersWeights(SdCheckpoint.ComponentFiles(Path.Combine(dir, "text_encoder"), "model"), text: true), "the text encoder");
        return Finish(new StableDiffusionModel { Source = dir, Tokenizer = tokenizer, TextEncoder = text, UNet = unet, Vae = vae, Schedule = schedule });
    }

    private static StableDiffusionModel LoadSingleFile(string file, string? configDir)
    {
        var f = SafetensorsFile.Open(file);
        var (unetW, vaeW, textW, unexpected) = SdCheckpoint.SingleFileWeights(f);
        if (unetW.Count == 0 || vaeW.Count == 0 || textW.Count == 0)
            throw new WeightsException($"{file}: not an original SD checkpoint: {unetW.Count} UNet (model.diffusion_model.*), {vaeW.Count} VAE (first_stage_model.*) and {textW.Count} text encoder (cond_stage_model.transformer.*) weights");
        var dir = configDir ?? Path.GetDirectoryName(Path.GetFullPath(file))!;
        string? Sidecar(params string[] rel) => Path.Combine([dir, .. rel]) is var p && File.Exists(p) ? p : null;
        var tokenizerDir = Path.Combine(dir, "tokenizer");
        if (!File.Exists(Path.Combine(tokenizerDir, "vocab.json")))
            throw new WeightsException($"{file}: a single-file checkpoint carries no tokenizer; pass a folder with tokenizer/vocab.json and merges.txt " +
                $"(a diffusers folder of the same model, e.g. --config DIR){(configDir is null ? $", or put tokenizer/ beside the file in {dir}" : $"; {tokenizerDir} has none")}");
        var assumptions = new List<string>();
        var unetConfig = Sidecar("unet", "config.json") is { } uc ? UNetConditionConfig.Read(uc) : InferUNet(unetW, assumptions);
        var vaeConfig = Sidecar("vae", "config.json") is { } vc ? VaeConfig.Read(vc) : InferVae(vaeW, assumptions);
        var textConfig = Sidecar("text_encoder", "config.json") is { } tc ? ClipTextConfig.Read(tc) : InferText(textW, file);
        var schedule = Sidecar("scheduler", "scheduler_config.json") is { } sc ? SdScheduleConfig.Read(sc) : new SdScheduleConfig();
        if (Sidecar("scheduler", "scheduler_config.json") is null) assumptions.Add("schedule: scaled_linear 0.00085–0.012 over 1000 steps, epsilon prediction (SD 1.x)");
        var tokenizer = ClipTokenizer.FromFolder(tokenizerDir);
        var unet = new UNet2DCondition(unetConfig);
        var vae = new Autoencoder(vaeConfig);
        var text = new ClipTextModel(textConfig);
        SdCheckpoint.LoadStrict(unet, unetW, "the UNet (model.diffusion_model.*)", unexpected, file);
        SdCheckpoint.LoadStrict(vae.Net, vaeW, "the VAE (first_stage_model.*)");
        SdCheckpoint.LoadStrict(text, textW, "the text encoder (cond_stage_model.transformer.*)");
        return Finish(new StableDiffusionModel { Source = file, Tokenizer = tokenizer, TextEncoder = text, UNet = unet, Vae = vae, Schedule = schedule, Assumptions = assumptions });
    }

    private static StableDiffusionModel Finish(StableDiffusionModel m)
    {
        foreach (var module in new nn.Module[] { m.UNet, m.Vae.Net, m.TextEncoder })
        {
            module.eval();
            foreach (var p in module.parameters()) p.requires_grad = false;
        }
        return m;
    }

    private static long[] Shape(Dictionary<string, WeightSource> w, string key) =>
        w.TryGetValue(key, out var s) ? s.Shape : throw new WeightsException($"the checkpoint has no '{key}' (as diffusers names it), needed to read the model's shape");

    /// <summary>The UNet's config from its weights' shapes; the head count is not stored in weights (SD 1.x: 8, SD 2.x: 64 per head).</summary>
    private static UNetConditionConfig InferUNet(Dictionary<string, WeightSource> w, List<string> assumptions)
    {
        var channels = new List<int>();
        var down = new List<bool>();
        for (int i = 0; w.ContainsKey($"down_blocks.{i}.resnets.0.conv1.weight"); i++)
        {
            channels.Add((int)Shape(w, $"down_blocks.{i}.resnets.0.conv1.weight")[0]);
            down.Add(w.ContainsKey($"down_blocks.{i}.attentions.0.proj_in.weight"));
        }
        int n = channels.Count;
        if (n == 0) throw new WeightsException("the checkpoint's UNet has no down blocks");
        int lpb = 0;
        while (w.ContainsKey($"down_blocks.0.resnets.{lpb}.conv1.weight")) lpb++;
        var up = Enumerable.Range(0, n).Select(i => w.ContainsKey($"up_blocks.{i}.attentions.0.proj_in.weight")).ToArray();
        var anyAttention = w.Keys.FirstOrDefault(k => k.EndsWith(".attn2.to_k.weight", StringComparison.Ordinal))
            ?? throw new WeightsException("the checkpoint's UNet has no cross-attention (attn2); not a text-conditioned SD UNet");
        var attnPrefix = anyAttention[..anyAttention.IndexOf(".transformer_blocks.", StringComparison.Ordinal)];
        bool linear = Shape(w, attnPrefix + ".proj_in.weight").Length == 2;
        int layers = 0;
        while (w.ContainsKey($"{attnPrefix}.transformer_blocks.{layers}.attn1.to_q.weight")) layers++;
        var heads = linear ? channels.Select(c => Math.Max(1, c / 64)).ToArray() : Enumerable.Repeat(8, n).ToArray();
        assumptions.Add(linear ? "UNet heads: channels / 64 (SD 2.x; weights do not store it)" : "UNet heads: 8 per block (SD 1.x; weights do not store it)");
        var conf = new UNetConditionConfig
        {
            InChannels = (int)Shape(w, "conv_in.weight")[1],
            OutChannels = (int)Shape(w, "conv_out.weight")[0],
            BlockOutChannels = channels.ToArray(),
            DownCrossAttention = down.ToArray(),
            UpCrossAttention = up,
            LayersPerBlock = lpb,
            CrossAttentionDim = (int)Shape(w, anyAttention)[1],
            Heads = heads,
            TransformerLayers = layers,
            UseLinearProjection = linear,
        };
        try { conf.Validate("the checkpoint's UNet"); }
        catch (WeightsException e)
        {
            throw new WeightsException($"{e.Message}: a single file stores no norm groups or head counts (SD 1.x's are assumed); " +
                "pass a folder with unet/config.json (--config DIR, or unet/ beside the file)");
        }
        return conf;
    }

    private static AutoencoderConfig InferVae(Dictionary<string, WeightSource> w, List<string> assumptions)
    {
        var channels = new List<int>();
        for (int i = 0; w.ContainsKey($"encoder.down_blocks.{i}.resnets.0.conv1.weight"); i++)
            channels.Add((int)Shape(w, $"encoder.down_blocks.{i}.resnets.0.conv1.weight")[0]);
        int lpb = 0;
        while (w.ContainsKey($"encoder.down_blocks.0.resnets.{lpb}.conv1.weight")) lpb++;
        assumptions.Add($"VAE scaling factor: {VaeConfig.SdScalingFactor} (SD 1.x and 2.x); norm groups: 32");
        return new AutoencoderConfig
        {
            InChannels = (int)Shape(w, "encoder.conv_in.weight")[1],
            OutChannels = (int)Shape(w, "decoder.conv_out.weight")[0],
            LatentChannels = (int)Shape(w, "decoder.conv_in.weight")[1],
            BlockOutChannels = channels.ToArray(),
            DownBlockTypes = [.. channels.Select(_ => AutoencoderConfig.DownBlock)],
            UpBlockTypes = [.. channels.Select(_ => AutoencoderConfig.UpBlock)],
            LayersPerBlock = lpb,
            NormNumGroups = 32,
            SampleSize = 512,
            ScalingFactor = VaeConfig.SdScalingFactor,
            MidBlockAddAttention = w.ContainsKey("encoder.mid_block.attentions.0.to_q.weight"),
        }.Validated();
    }

    private static ClipTextConfig InferText(Dictionary<string, WeightSource> w, string file)
    {
        var tok = Shape(w, "text_model.embeddings.token_embedding.weight");
        int hidden = (int)tok[1];
        if (hidden % 64 != 0)
            throw new WeightsException($"{file}: the text encoder's head count is not stored in weights and its width {hidden} is not CLIP's 64 per head; " +
                "pass a folder with text_encoder/config.json (--config DIR)");
        int layers = 0;
        while (w.ContainsKey($"text_model.encoder.layers.{layers}.self_attn.q_proj.weight")) layers++;
        return new ClipTextConfig
        {
            VocabSize = (int)tok[0],
            HiddenSize = hidden,
            IntermediateSize = (int)Shape(w, "text_model.encoder.layers.0.mlp.fc1.weight")[0],
            Layers = layers,
            Heads = hidden / 64,
            MaxPositions = (int)Shape(w, "text_model.embeddings.position_embedding.weight")[0],
        };
    }

    /// <summary>The prompt's token ids (1, max length), as the SD pipelines tokenize it.</summary>
    public Tensor PromptIds(string prompt) => tensor(Tokenizer.Encode(prompt), [1, Tokenizer.MaxLength]);

    /// <summary>The text encoder's last hidden state for the prompt: (1, 77, D).</summary>
    public Tensor EncodePrompt(string prompt)
    {
        using var _ = no_grad();
        return TextEncoder.forward(PromptIds(prompt));
    }

    /// <summary>The UNet's output (ε, or v for v-prediction) for latents (B, 4, h, w) at timestep t, given text embeddings (1 or B, 77, D).</summary>
    public Tensor PredictNoise(Tensor latents, long timestep, Tensor text)
    {
        if (timestep < 0 || timestep >= Schedule.TrainTimesteps) throw new ArgumentException($"timestep {timestep} outside 0..{Schedule.TrainTimesteps - 1}");
        var context = text.shape[0] == latents.shape[0] ? text : text.expand(latents.shape[0], text.shape[1], text.shape[2]);
        return UNet.Forward(latents, tensor(timestep, ScalarType.Int64), context);
    }

    /// <summary>The VAE decode of scaled latents: decoder(post_quant_conv(latents / scaling factor)), unclamped.</summary>
    public Tensor DecodeLatents(Tensor latents) => Vae.Decode(latents, clamp: false);

    /// <summary>The posterior mean of images in [−1, 1], times the scaling factor (the latents SD's UNet sees).</summary>
    public Tensor EncodeMean(Tensor images) => Vae.Encode(images);

    /// <summary>Whether a path is a Stable Diffusion pipeline rather than one of the project's teacher folders: a folder with
    /// model_index.json, or a single weights file (a pickle one too, so that loading it says why it is refused).</summary>
    public static bool IsPipeline(string path) =>
        Directory.Exists(path) ? File.Exists(Path.Combine(path, "model_index.json"))
        : File.Exists(path) && Path.GetExtension(path).ToLowerInvariant() is ".safetensors" or ".ckpt" or ".bin" or ".pt" or ".pth";

    private bool _handedOver;

    /// <summary>
    /// The pipeline as the method's teacher for one text-prompt attribute (<see cref="PromptUNet"/>): the prompt, the
    /// source prompt (delta guidance's reference; none: the empty prompt) and the empty prompt are encoded once, and the
    /// teacher takes over the UNet and the VAE (this model keeps only its text encoder). Images are the UNet's
    /// sample_size × the VAE's factor (512 px for SD 1.x).
    /// </summary>
    public Teacher ToTeacher(string attribute, string prompt, string? sourcePrompt = null, Device? device = null)
    {
        if (_handedOver) throw new InvalidOperationException("This pipeline's UNet and VAE already belong to a teacher.");
        if (string.IsNullOrWhiteSpace(prompt)) throw new ArgumentException("A prompt attribute needs a prompt.", nameof(prompt));
        var schedule = Schedule.ToNoiseSchedule();
        var net = new PromptUNet(UNet, EncodePrompt(sourcePrompt ?? ""), EncodePrompt(prompt), EncodePrompt(""),
            Schedule.PredictionType == "v_prediction" ? schedule : null, device);
        var config = new TeacherConfig
        {
            Kind = TeacherConfig.KindStableDiffusion,
            AttributeNames = [attribute],
            Unet = new UNetConfig { ImageSize = UNet.Config.SampleSize, InChannels = UNet.Config.InChannels, Channels = UNet.Config.BlockOutChannels, Heads = UNet.Config.Heads[0], Attributes = 1 },
            Schedule = schedule.Kind,
            TimeSteps = Schedule.TrainTimesteps,
            BetaStart = Schedule.BetaStart,
            BetaEnd = Schedule.BetaEnd,
            Prompt = prompt,
            SourcePrompt = sourcePrompt,
        };
        _handedOver = true;
        return new Teacher(config, net, Vae, device);
    }

    /// <summary>Loads a pipeline and makes it the teacher of one prompt attribute (<see cref="ToTeacher"/>); the text encoder is freed.</summary>
    public static Teacher LoadTeacher(string path, string attribute, string prompt, string? sourcePrompt = null, string? configDir = null, Device? device = null)
    {
        using var model = Load(path, configDir);
        return model.ToTeacher(attribute, prompt, sourcePrompt, device);
    }

    public void Dispose()
    {
        if (!_handedOver)
        {
            UNet.Dispose();
            Vae.Dispose();
        }
        TextEncoder.Dispose();
    }
}
