namespace Sdd.Ml.Diffusion;

/// <summary>
/// The teacher's condition: one state per attribute, absent (0), present (1) or unknown (2), as an Int64
/// tensor (B, A). All-unknown is the null condition of classifier-free guidance.
/// </summary>
public static class AttributeCondition
{
    public const long Absent = 0, Present = 1, Unknown = 2;

    public static Tensor Null(int batch, int attributes, Device device) => full([batch, attributes], Unknown, ScalarType.Int64, device);

    /// <summary>Only <paramref name="attribute"/> is stated; the others are unknown.</summary>
    public static Tensor Single(int batch, int attributes, int attribute, bool present, Device device)
    {
        var c = Null(batch, attributes, device);
        c[.., attribute] = present ? Present : Absent;
        return c;
    }

    /// <summary>+1/-1/0 labels (B, A) to states; 0 becomes unknown.</summary>
    public static Tensor FromLabels(Tensor labels)
    {
        using var scope = NewDisposeScope();
        var l = labels.to_type(ScalarType.Int64);
        var s = where(l.gt(0), Present, where(l.lt(0), Absent, Unknown));
        return s.MoveToOuterDisposeScope();
    }

    /// <summary>
    /// Random dropout to unknown for training: each attribute with <paramref name="perAttribute"/>, the whole
    /// condition with <paramref name="all"/>, so that any subset conditions and the null condition is learned.
    /// </summary>
    public static Tensor Dropout(Tensor states, double perAttribute, double all, Generator? generator = null)
    {
        using var scope = NewDisposeScope();
        var b = states.shape[0];
        var dropOne = rand(states.shape, generator: generator, device: states.device).lt(perAttribute);
        var dropAll = rand([b, 1], generator: generator, device: states.device).lt(all);
        var s = where(dropOne.logical_or(dropAll), full_like(states, Unknown), states);
        return s.MoveToOuterDisposeScope();
    }

    /// <summary>Parses "smiling=1,hat=-1" (1/present/yes, -1/0/absent/no, ?/unknown) against attribute names.</summary>
    public static long[] Parse(string spec, IReadOnlyList<string> attributes)
    {
        var states = Enumerable.Repeat(Unknown, attributes.Count).ToArray();
        if (string.IsNullOrWhiteSpace(spec)) return states;
        foreach (var part in spec.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
        {
            var kv = part.Split('=', 2, StringSplitOptions.TrimEntries);
            if (kv.Length != 2) throw new ArgumentException($"'{part}' is not attr=value (for example smiling=1).");
            int i = attributes.ToList().IndexOf(kv[0]);
            if (i < 0) throw new ArgumentException($"Unknown attribute '{kv[0]}'; the teacher knows: {string.Join(", ", attributes)}.");
            states[i] = kv[1].ToLowerInvariant() switch
            {
                "1" or "+1" or "present" or "yes" or "true" => Present,
                "-1" or "0" or "absent" or "no" or "false" => Absent,
                "?" or "unknown" => Unknown,
                var v => throw new ArgumentException($"'{v}' is not a state for '{kv[0]}': use 1, -1 or ?."),
            };
        }
        return states;
    }
}
