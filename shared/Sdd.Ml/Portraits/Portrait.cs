namespace Sdd.Ml.Portraits;

public readonly record struct Rgb(float R, float G, float B)
{
    public static Rgb Lerp(Rgb a, Rgb b, float t) => new(a.R + (b.R - a.R) * t, a.G + (b.G - a.G) * t, a.B + (b.B - a.B) * t);
    public Rgb Scale(float k) => new(R * k, G * k, B * k);
}

/// <summary>
/// Everything that defines one portrait. Attributes are plain flags; every other field is identity that a
/// counterfactual keeps. Coordinates are normalised to [0,1] with y pointing down.
/// </summary>
public sealed record Portrait
{
    public required Rgb BackgroundTop { get; init; }
    public required Rgb BackgroundBottom { get; init; }
    public required Rgb Shirt { get; init; }
    public required Rgb Skin { get; init; }
    public required Rgb Hair { get; init; }
    public required Rgb BeardColor { get; init; }
    public required Rgb HatColor { get; init; }
    public required Rgb FrameColor { get; init; }
    public required Rgb Iris { get; init; }
    public required Rgb Lips { get; init; }
    public required float HeadX { get; init; }
    public required float HeadY { get; init; }
    public required float HeadRx { get; init; }
    public required float HeadRy { get; init; }
    public required bool LongHair { get; init; }
    public required float HairlineDrop { get; init; }
    public required float EyeSpacing { get; init; }
    public required float MouthWidth { get; init; }
    public required float Light { get; init; }
    public required bool HatHasBrim { get; init; }
    public required bool RoundGlasses { get; init; }

    public bool Smiling { get; init; }
    public bool WhiteHair { get; init; }
    public bool Eyeglasses { get; init; }
    public bool Hat { get; init; }
    public bool Beard { get; init; }

    public bool Get(string attribute) => attribute switch
    {
        PortraitAttributes.Smiling => Smiling,
        PortraitAttributes.WhiteHair => WhiteHair,
        PortraitAttributes.Eyeglasses => Eyeglasses,
        PortraitAttributes.Hat => Hat,
        PortraitAttributes.Beard => Beard,
        _ => throw new ArgumentException($"Unknown portrait attribute '{attribute}'.", nameof(attribute)),
    };

    /// <summary>The same portrait with one attribute set; nothing else changes (the counterfactual).</summary>
    public Portrait With(string attribute, bool value) => attribute switch
    {
        PortraitAttributes.Smiling => this with { Smiling = value },
        PortraitAttributes.WhiteHair => this with { WhiteHair = value },
        PortraitAttributes.Eyeglasses => this with { Eyeglasses = value },
        PortraitAttributes.Hat => this with { Hat = value },
        PortraitAttributes.Beard => this with { Beard = value },
        _ => throw new ArgumentException($"Unknown portrait attribute '{attribute}'.", nameof(attribute)),
    };

    public Portrait Flip(string attribute) => With(attribute, !Get(attribute));

    private static readonly Rgb[] SkinTones =
    [
        new(0.96f, 0.80f, 0.69f), new(0.92f, 0.72f, 0.58f), new(0.80f, 0.60f, 0.45f),
        new(0.66f, 0.47f, 0.33f), new(0.52f, 0.36f, 0.25f), new(0.38f, 0.26f, 0.18f),
    ];

    private static readonly Rgb[] HairColours =
    [
        new(0.10f, 0.08f, 0.07f), new(0.30f, 0.18f, 0.10f), new(0.50f, 0.32f, 0.16f),
        new(0.62f, 0.28f, 0.12f), new(0.78f, 0.62f, 0.32f),
    ];

    private static readonly Rgb[] Vivid =
    [
        new(0.80f, 0.15f, 0.15f), new(0.15f, 0.35f, 0.80f), new(0.15f, 0.60f, 0.25f),
        new(0.55f, 0.20f, 0.65f), new(0.85f, 0.55f, 0.10f), new(0.10f, 0.55f, 0.60f),
    ];

    /// <summary>A random portrait; attributes are independent fair coins.</summary>
    public static Portrait Random(Random rng)
    {
        float U(float lo, float hi) => lo + (float)rng.NextDouble() * (hi - lo);
        Rgb Pastel() => new(U(0.25f, 0.85f), U(0.25f, 0.85f), U(0.25f, 0.85f));
        var hair = HairColours[rng.Next(HairColours.Length)];
        var hatColour = Vivid[rng.Next(Vivid.Length)];
        return new Portrait
        {
            BackgroundTop = Pastel(),
            BackgroundBottom = Pastel(),
            Shirt = new Rgb(U(0.1f, 0.9f), U(0.1f, 0.9f), U(0.1f, 0.9f)),
            Skin = SkinTones[rng.Next(SkinTones.Length)],
            Hair = hair,
            BeardColor = Rgb.Lerp(hair, new Rgb(0.12f, 0.09f, 0.07f), 0.35f),
            HatColor = hatColour,
            FrameColor = rng.NextDouble() < 0.7 ? new Rgb(0.05f, 0.05f, 0.06f) : new Rgb(0.45f, 0.12f, 0.10f),
            Iris = rng.NextDouble() < 0.5 ? new Rgb(0.25f, 0.15f, 0.08f) : new Rgb(0.20f, 0.35f, 0.55f),
            Lips = Rgb.Lerp(SkinTones[rng.Next(SkinTones.Length)], new Rgb(0.75f, 0.25f, 0.30f), 0.6f),
            HeadX = U(0.46f, 0.54f),
            HeadY = U(0.48f, 0.54f),
            HeadRx = U(0.21f, 0.25f),
            HeadRy = U(0.27f, 0.31f),
            LongHair = rng.NextDouble() < 0.5,
            HairlineDrop = U(0.30f, 0.42f),
            EyeSpacing = U(0.36f, 0.44f),
            MouthWidth = U(0.9f, 1.1f),
            Light = U(-0.25f, 0.25f),
            HatHasBrim = rng.NextDouble() < 0.5,
            RoundGlasses = rng.NextDouble() < 0.5,
            Smiling = rng.NextDouble() < 0.5,
            WhiteHair = rng.NextDouble() < 0.5,
            Eyeglasses = rng.NextDouble() < 0.5,
            Hat = rng.NextDouble() < 0.5,
            Beard = rng.NextDouble() < 0.5,
        };
    }
}
