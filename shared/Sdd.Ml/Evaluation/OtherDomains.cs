namespace Sdd.Ml.Evaluation;

/// <summary>
/// Images that are not portraits, made here (nothing is downloaded), for measuring and testing the domain gate:
/// <list type="bullet">
/// <item><c>texture</c>: multi-octave noise with a natural image's 1/f falloff, in random colours (foliage, gravel, clouds);</item>
/// <item><c>house</c>: a sky gradient, ground, a house with a roof, a door and windows, at a random place and scale;</item>
/// <item><c>flat</c>: one colour with a faint grain (a blank wall, a document scan).</item>
/// </list>
/// Each set is deterministic in its seed; images are (count, 3, size, size) in [-1, 1].
/// </summary>
public static class OtherDomains
{
    public static readonly IReadOnlyList<string> Kinds = ["texture", "house", "flat"];

    public static Tensor Render(string kind, int count, int size, int seed) => kind switch
    {
        "texture" => Texture(count, size, seed),
        "house" => House(count, size, seed),
        "flat" => Flat(count, size, seed),
        _ => throw new ArgumentException($"Unknown kind '{kind}' (one of {string.Join(", ", Kinds)})."),
    };

    public static Tensor Texture(int count, int size, int seed)
    {
        using var scope = NewDisposeScope();
        var g = new Generator((ulong)seed);
        var x = zeros(count, 3, size, size);
        double amplitude = 1;
        for (int cells = 2; cells <= size; cells *= 2, amplitude /= 2)
        {
            var field = randn([count, 3, cells, cells], generator: g);
            x += amplitude * F.interpolate(field, size: [size, size], mode: InterpolationMode.Bilinear, align_corners: false);
        }
        var tint = rand([count, 3, 1, 1], generator: g) * 1.6 - 0.8;
        x = tint + 0.35 * x / x.flatten(1).std([1]).view(-1, 1, 1, 1);
        return x.clamp(-1, 1).MoveToOuterDisposeScope();
    }

    public static Tensor House(int count, int size, int seed)
    {
        using var scope = NewDisposeScope();
        var rng = new Random(seed);
        var images = new List<Tensor>();
        var yy = arange(size).view(size, 1).expand(size, size).to_type(ScalarType.Float32) / size;
        var xx = arange(size).view(1, size).expand(size, size).to_type(ScalarType.Float32) / size;
        for (int i = 0; i < count; i++)
        {
            double R() => rng.NextDouble();
            Tensor Colour(double r, double g, double b) => tensor(new float[] { (float)r, (float)g, (float)b }).view(3, 1, 1) * 2 - 1;
            var horizon = 0.55 + 0.25 * R();
            var sky = Colour(0.4 + 0.3 * R(), 0.6 + 0.3 * R(), 0.9 + 0.1 * R()) * (1 - 0.4 * yy) ;
            var ground = Colour(0.2 + 0.3 * R(), 0.4 + 0.3 * R(), 0.1 + 0.2 * R()).expand(3, size, size);
            var img = where(yy.lt(horizon), sky, ground);
            double w = 0.3 + 0.35 * R(), h = 0.25 + 0.25 * R(), left = R() * (1 - w), bottom = horizon + 0.05 * R();
            double top = bottom - h;
            var wall = xx.ge(left) & xx.lt(left + w) & yy.ge(top) & yy.lt(bottom);
            img = where(wall, Colour(0.5 + 0.5 * R(), 0.3 + 0.5 * R(), 0.2 + 0.4 * R()), img);
            // A triangular roof above the wall.
            var roofHeight = 0.1 + 0.15 * R();
            var cx = left + w / 2;
            var roof = yy.lt(top) & yy.ge(top - roofHeight) & ((xx - cx).abs() * (roofHeight / (w / 2 + 0.03))).le(yy - (top - roofHeight));
            img = where(roof, Colour(0.3 + 0.4 * R(), 0.1 + 0.2 * R(), 0.1 + 0.1 * R()), img);
            var door = xx.ge(cx - w * 0.08) & xx.lt(cx + w * 0.08) & yy.ge(bottom - h * 0.5) & yy.lt(bottom);
            img = where(door, Colour(0.25, 0.15, 0.1), img);
            foreach (var wx in new[] { left + w * 0.15, left + w * 0.7 })
            {
                var window = xx.ge(wx) & xx.lt(wx + w * 0.15) & yy.ge(top + h * 0.2) & yy.lt(top + h * 0.45);
                img = where(window, Colour(0.7, 0.85, 0.95), img);
            }
            images.Add(img);
        }
        return stack(images).clamp(-1, 1).MoveToOuterDisposeScope();
    }

    public static Tensor Flat(int count, int size, int seed)
    {
        using var scope = NewDisposeScope();
        var g = new Generator((ulong)seed);
        var colour = rand([count, 3, 1, 1], generator: g) * 2 - 1;
        return (colour + 0.03 * randn([count, 3, size, size], generator: g)).clamp(-1, 1).MoveToOuterDisposeScope();
    }
}
