using System.Text.Json;
using System.Text.Json.Serialization;
using TorchSharp.PyBridge;

namespace Sdd.Ml.Diffusion;

/// <summary>
/// A conditional diffusion model used as the teacher: noise prediction, classifier-free guidance and DDIM
/// sampling. Files: <c>config.json</c> and <c>model.safetensors</c> (the EMA weights).
/// </summary>
public sealed class Teacher : IDisposable
{
    public const string KindAttributeDdpm = TeacherConfig.KindAttributeDdpm;
    public const string ConfigFile = ModelFolder.ConfigFile;
    public const string WeightsFile = ModelFolder.WeightsFile;

    public TeacherConfig Config { get; private set; }
    public AttributeUNet Net { get; }
    public NoiseSchedule Schedule { get; }
    public Device Device { get; }
    public int Size => Config.Unet.ImageSize;
    public IReadOnlyList<string> Attributes => Config.AttributeNames;

    /// <summary>Network evaluations per image since the counter was last reset (one per image per UNet pass).</summary>
    public long Evaluations { get; set; }

    public Teacher(TeacherConfig config, Device? device = null)
    {
        if (config.Kind != KindAttributeDdpm)
            throw new NotSupportedException($"Teacher kind '{config.Kind}' is not supported by this build (supported: {KindAttributeDdpm}).");
        if (config.Unet.Attributes != config.AttributeNames.Length)
            throw new ArgumentException("The UNet's attribute count does not match the attribute names.");
        Config = config;
        Device = device ?? CPU;
        Schedule = new NoiseSchedule(config.Schedule, config.TimeSteps, config.BetaStart, config.BetaEnd);
        Net = new AttributeUNet(config.Unet);
        Net.to(Device);
        Net.eval();
    }

    public int AttributeIndex(string attribute)
    {
        int i = Array.IndexOf(Config.AttributeNames, attribute);
        if (i < 0) throw new ArgumentException($"The teacher has no attribute '{attribute}' (it has: {string.Join(", ", Config.AttributeNames)}).");
        return i;
    }

    public Tensor PredictNoise(Tensor xt, Tensor t, Tensor states)
    {
        Evaluations += xt.shape[0];
        return Net.forward(xt, t, states);
    }

    /// <summary>Classifier-free guidance: eps(null) + s (eps(c) - eps(null)) (Ho and Salimans 2022, eq. 6), one batched pass.</summary>
    public Tensor GuidedNoise(Tensor xt, Tensor t, Tensor states, double guidance)
    {
        if (guidance == 1.0) return PredictNoise(xt, t, states);
        var nul = AttributeCondition.Null((int)xt.shape[0], Attributes.Count, xt.device);
        var both = PredictNoise(cat([xt, xt]), cat([t, t]), cat([states, nul])).chunk(2);
        return both[1] + guidance * (both[0] - both[1]);
    }

    /// <summary>
    /// Deterministic DDIM (Song et al. 2021, eq. 12 with sigma = 0) from x at timestep <paramref name="fromT"/> to
    /// a clean image in <paramref name="steps"/> steps, under guidance; x_0 predictions are clipped to [-1, 1].
    /// </summary>
    public Tensor Ddim(Tensor x, Tensor states, int fromT, int steps, double guidance)
    {
        steps = Math.Max(1, steps);
        var ts = Enumerable.Range(0, steps).Select(i => (int)Math.Round((double)fromT * (steps - i) / steps)).Distinct().ToArray();
        using (no_grad())
        {
            for (int i = 0; i < ts.Length; i++)
            {
                using var scope = NewDisposeScope();
                int t = ts[i];
                double ab = Schedule.AlphaBars[t], abPrev = i + 1 < ts.Length ? Schedule.AlphaBars[ts[i + 1]] : 1.0;
                var tt = full([x.shape[0]], t, ScalarType.Int64, x.device);
                var eps = GuidedNoise(x, tt, states, guidance);
                var x0 = ((x - Math.Sqrt(1 - ab) * eps) / Math.Sqrt(ab)).clamp(-1, 1);
                eps = (x - Math.Sqrt(ab) * x0) / Math.Sqrt(1 - ab);
                var next = Math.Sqrt(abPrev) * x0 + Math.Sqrt(1 - abPrev) * eps;
                x = next.MoveToOuterDisposeScope();
            }
        }
        return x;
    }

    /// <summary>Samples images for the given states from pure noise.</summary>
    public Tensor Sample(Tensor states, int steps, double guidance, Generator? generator = null)
    {
        var x = randn([states.shape[0], 3, Size, Size], generator: generator, device: Device);
        return Ddim(x, states, Config.TimeSteps - 1, steps, guidance);
    }

    /// <summary>SDEdit (Meng et al. 2022): noise the source to t0, then denoise under the target condition.</summary>
    public Tensor SdEdit(Tensor source, Tensor states, int t0, int steps, double guidance, Generator? generator = null)
    {
        Tensor xt;
        using (var scope = NewDisposeScope())
        {
            var eps = randn(source.shape, generator: generator, device: source.device);
            var t = full([source.shape[0]], t0, ScalarType.Int64, source.device);
            xt = Schedule.AddNoise(source, t, eps).MoveToOuterDisposeScope();
        }
        using (xt) return Ddim(xt, states, t0, steps, guidance);
    }

    /// <summary>
    /// DDIM inversion (Song et al. 2021, Sec. 4.3; as in Mokady et al. 2023): the deterministic DDIM update run
    /// backwards from the clean image to timestep <paramref name="toT"/> under <paramref name="states"/> (the image's own
    /// condition) and <paramref name="guidance"/>, on the grid <see cref="Ddim"/> walks down (so that regenerating under the
    /// same condition returns close to the source). The noise at each step is predicted at the next, higher timestep.
    /// </summary>
    public Tensor DdimInvert(Tensor x, Tensor states, int toT, int steps, double guidance = 1.0)
    {
        steps = Math.Max(1, steps);
        var down = Enumerable.Range(0, steps).Select(i => (int)Math.Round((double)toT * (steps - i) / steps)).Distinct().ToArray();
        var up = down.Reverse().ToArray();
        using (no_grad())
        {
            x = x.alias();
            for (int i = 0; i < up.Length; i++)
            {
                using var scope = NewDisposeScope();
                double abCur = i == 0 ? 1.0 : Schedule.AlphaBars[up[i - 1]], abNext = Schedule.AlphaBars[up[i]];
                var tt = full([x.shape[0]], up[i], ScalarType.Int64, x.device);
                var eps = GuidedNoise(x, tt, states, guidance);
                var x0 = (x - Math.Sqrt(1 - abCur) * eps) / Math.Sqrt(abCur);
                var next = Math.Sqrt(abNext) * x0 + Math.Sqrt(1 - abNext) * eps;
                x.Dispose();
                x = next.MoveToOuterDisposeScope();
            }
        }
        return x;
    }

    /// <summary>
    /// DDIM inversion under the source's condition (no guidance) to <paramref name="t0"/>, then DDIM regeneration under
    /// the target condition with classifier-free guidance: an edit that keeps what the inversion recovers of the source.
    /// </summary>
    public Tensor InvertAndRegenerate(Tensor source, Tensor sourceStates, Tensor targetStates, int t0, int steps, double guidance)
    {
        using var xt = DdimInvert(source, sourceStates, t0, steps);
        return Ddim(xt, targetStates, t0, steps, guidance);
    }

    public void Save(string dir, TeacherConfig? config = null)
    {
        Directory.CreateDirectory(dir);
        if (config is not null) Config = config;
        Net.save_safetensors(Path.Combine(dir, WeightsFile));
        File.WriteAllText(Path.Combine(dir, ConfigFile), ModelFolder.Serialize(Config));
    }

    public static TeacherConfig ReadConfig(string dir) => ModelFolder.ReadTeacher(dir);

    public static Teacher Load(string dir, Device? device = null)
    {
        var teacher = new Teacher(ReadConfig(dir), device);
        var weights = Path.Combine(dir, WeightsFile);
        if (!File.Exists(weights)) throw new FileNotFoundException($"No teacher weights at '{weights}'.", weights);
        teacher.Net.load_safetensors(weights, strict: true);
        teacher.Net.to(teacher.Device);
        return teacher;
    }

    public void Dispose() => Net.Dispose();
}
