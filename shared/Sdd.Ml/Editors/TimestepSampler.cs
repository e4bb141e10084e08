namespace Sdd.Ml.Editors;

/// <summary>
/// Where distillation takes the teacher's guidance: uniformly from a set of timesteps (the HQS selection,
/// a fixed list, or one fixed t), or uniformly over [lo, hi] ("random", the paper's ablation).
/// </summary>
public sealed class TimestepSampler
{
    public int[]? Set { get; }
    public int Lo { get; }
    public int Hi { get; }
    public string Description { get; }

    private TimestepSampler(int[]? set, int lo, int hi, string description) { Set = set; Lo = lo; Hi = hi; Description = description; }

    public static TimestepSampler FromSet(int[] set, string description)
    {
        if (set.Length == 0) throw new ArgumentException("An empty timestep set.");
        return new TimestepSampler(set, 0, 0, description);
    }

    public static TimestepSampler Uniform(int lo, int hi) => lo <= hi ? new TimestepSampler(null, lo, hi, $"random {lo}..{hi}") : throw new ArgumentException($"An empty timestep range: {lo} is above {hi}.");

    /// <summary>Parses fixed:T, list:T1,T2 or random[:lo-hi]; "hqs" is resolved by the caller with the indicator.</summary>
    public static TimestepSampler Parse(string spec, int timeSteps)
    {
        static int T(string s, int max) => int.TryParse(s, out var v) && v >= 0 && v < max ? v : throw new ArgumentException($"'{s}' is not a timestep in 0..{max - 1}.");
        if (spec.StartsWith("fixed:", StringComparison.Ordinal)) return FromSet([T(spec[6..], timeSteps)], spec);
        if (spec.StartsWith("list:", StringComparison.Ordinal)) return FromSet(spec[5..].Split(',').Select(s => T(s.Trim(), timeSteps)).ToArray(), spec);
        if (spec == "random") return Uniform(20, timeSteps - 20);
        if (spec.StartsWith("random:", StringComparison.Ordinal))
        {
            var p = spec[7..].Split('-');
            if (p.Length != 2) throw new ArgumentException($"'{spec}' should look like random:100-900.");
            return Uniform(T(p[0], timeSteps), T(p[1], timeSteps));
        }
        throw new ArgumentException($"Unknown timestep rule '{spec}': use hqs, random, fixed:T or list:T1,T2.");
    }

    public Tensor Sample(int batch, Generator generator, Device device)
    {
        if (Set is null) return randint(Lo, Hi + 1, [batch], generator: generator, dtype: ScalarType.Int64, device: device);
        var idx = randint(0, Set.Length, [batch], generator: generator, dtype: ScalarType.Int64, device: device);
        using var set = tensor(Set.Select(v => (long)v).ToArray(), ScalarType.Int64).to(device);
        return set.index_select(0, idx);
    }
}
