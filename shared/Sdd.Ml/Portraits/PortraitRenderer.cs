namespace Sdd.Ml.Portraits;

/// <summary>
/// Rasterises a <see cref="Portrait"/> with a painter's algorithm over simple shapes, supersampled for
/// anti-aliasing. Each attribute owns its own shapes, so flipping one changes only that attribute's region.
/// </summary>
public static class PortraitRenderer
{
    private static readonly Rgb White = new(0.93f, 0.93f, 0.95f);
    private static readonly Rgb MouthInside = new(0.32f, 0.06f, 0.08f);
    private static readonly Rgb Teeth = new(0.97f, 0.97f, 0.94f);
    private static readonly Rgb EyeWhite = new(0.97f, 0.97f, 0.97f);
    private static readonly Rgb Pupil = new(0.03f, 0.03f, 0.03f);

    /// <summary>Renders to interleaved RGB bytes, row-major (H, W, 3).</summary>
    public static byte[] RenderRgb24(Portrait p, int size, int supersample = 4)
    {
        if (size < 8) throw new ArgumentOutOfRangeException(nameof(size), "Portraits need at least 8 px.");
        var bytes = new byte[size * size * 3];
        float inv = 1f / (supersample * supersample);
        for (int py = 0; py < size; py++)
        for (int px = 0; px < size; px++)
        {
            float r = 0, g = 0, b = 0;
            for (int sy = 0; sy < supersample; sy++)
            for (int sx = 0; sx < supersample; sx++)
            {
                float x = (px + (sx + 0.5f) / supersample) / size;
                float y = (py + (sy + 0.5f) / supersample) / size;
                var c = Shade(p, x, y);
                r += c.R; g += c.G; b += c.B;
            }
            int o = (py * size + px) * 3;
            bytes[o] = ToByte(r * inv);
            bytes[o + 1] = ToByte(g * inv);
            bytes[o + 2] = ToByte(b * inv);
        }
        return bytes;
    }

    private static byte ToByte(float v) => (byte)Math.Clamp((int)MathF.Round(v * 255f), 0, 255);

    private static bool InEllipse(float x, float y, float cx, float cy, float rx, float ry)
    {
        float dx = (x - cx) / rx, dy = (y - cy) / ry;
        return dx * dx + dy * dy <= 1f;
    }

    private static bool InRect(float x, float y, float x0, float y0, float x1, float y1) => x >= x0 && x <= x1 && y >= y0 && y <= y1;

    /// <summary>The colour of one sample point: background to foreground, last shape that covers it wins.</summary>
    private static Rgb Shade(Portrait p, float x, float y)
    {
        float hx = p.HeadX, hy = p.HeadY, rx = p.HeadRx, ry = p.HeadRy;
        var hair = p.WhiteHair ? Rgb.Lerp(p.Hair, White, 0.9f) : p.Hair;
        var c = Rgb.Lerp(p.BackgroundTop, p.BackgroundBottom, y);

        // Long hair falls behind the head and shoulders.
        if (p.LongHair && InEllipse(x, y, hx, hy + 0.15f * ry, 1.22f * rx, 1.08f * ry) && y > hy - 0.5f * ry) c = hair.Scale(0.9f);

        // Shoulders, neck, ears, head.
        if (InEllipse(x, y, hx, 1.10f, 0.40f, 0.26f)) c = p.Shirt;
        if (InRect(x, y, hx - 0.38f * rx, hy + 0.5f * ry, hx + 0.38f * rx, 0.9f)) c = p.Skin.Scale(0.88f);
        if (InEllipse(x, y, hx - rx, hy + 0.02f * ry, 0.16f * rx, 0.22f * ry) || InEllipse(x, y, hx + rx, hy + 0.02f * ry, 0.16f * rx, 0.22f * ry)) c = p.Skin.Scale(0.92f);
        if (InEllipse(x, y, hx, hy, rx, ry)) c = p.Skin;

        // Beard: jaw, chin and lower cheeks.
        if (p.Beard && InEllipse(x, y, hx, hy + 0.02f * ry, 1.03f * rx, 1.04f * ry) && y > hy + 0.22f * ry) c = p.BeardColor;

        // Nose and brows.
        if (InEllipse(x, y, hx, hy + 0.14f * ry, 0.09f * rx, 0.13f * ry)) c = p.Skin.Scale(0.82f);
        float eyeY = hy - 0.06f * ry, eyeDx = p.EyeSpacing * rx;
        for (int side = -1; side <= 1; side += 2)
        {
            float ex = hx + side * eyeDx;
            if (InRect(x, y, ex - 0.24f * rx, eyeY - 0.27f * ry, ex + 0.24f * rx, eyeY - 0.19f * ry)) c = p.BeardColor;
            if (InEllipse(x, y, ex, eyeY, 0.21f * rx, 0.11f * ry)) c = EyeWhite;
            if (InEllipse(x, y, ex, eyeY, 0.10f * rx, 0.10f * rx)) c = p.Iris;
            if (InEllipse(x, y, ex, eyeY, 0.045f * rx, 0.045f * rx)) c = Pupil;
        }

        // Mouth: a wide open grin with teeth, or a closed neutral line.
        float mouthY = hy + 0.46f * ry;
        if (p.Smiling)
        {
            float w = 0.52f * rx * p.MouthWidth;
            if (InEllipse(x, y, hx, mouthY - 0.05f * ry, w + 0.05f * rx, 0.25f * ry) && y > mouthY - 0.09f * ry) c = p.Lips;
            if (InEllipse(x, y, hx, mouthY - 0.05f * ry, w, 0.20f * ry) && y > mouthY - 0.05f * ry)
                c = y < mouthY + 0.04f * ry ? Teeth : MouthInside;
        }
        else
        {
            float w = 0.34f * rx * p.MouthWidth;
            if (InEllipse(x, y, hx, mouthY, w, 0.065f * ry)) c = p.Lips;
            if (InRect(x, y, hx - w * 0.85f, mouthY - 0.012f * ry, hx + w * 0.85f, mouthY + 0.012f * ry)) c = p.Lips.Scale(0.55f);
        }

        // Eyeglasses: two lenses with a tint, a bridge and temples.
        if (p.Eyeglasses)
        {
            float rOut = 0.38f * rx, rIn = 0.28f * rx;
            for (int side = -1; side <= 1; side += 2)
            {
                float ex = hx + side * eyeDx;
                bool outer, inner;
                if (p.RoundGlasses)
                {
                    outer = InEllipse(x, y, ex, eyeY, rOut, rOut * 0.9f);
                    inner = InEllipse(x, y, ex, eyeY, rIn, rIn * 0.86f);
                }
                else
                {
                    outer = InRect(x, y, ex - rOut, eyeY - rOut * 0.75f, ex + rOut, eyeY + rOut * 0.75f);
                    inner = InRect(x, y, ex - rIn, eyeY - rIn * 0.62f, ex + rIn, eyeY + rIn * 0.62f);
                }
                if (outer && !inner) c = p.FrameColor;
                else if (inner) c = Rgb.Lerp(c, new Rgb(0.75f, 0.85f, 0.95f), 0.25f);
                float tx0 = side < 0 ? hx - 1.02f * rx : ex + rOut, tx1 = side < 0 ? ex - rOut : hx + 1.02f * rx;
                if (InRect(x, y, tx0, eyeY - 0.035f * ry, tx1, eyeY + 0.005f * ry)) c = p.FrameColor;
            }
            if (InRect(x, y, hx - eyeDx + rOut * 0.9f, eyeY - 0.045f * ry, hx + eyeDx - rOut * 0.9f, eyeY + 0.01f * ry)) c = p.FrameColor;
        }

        // Hair on top of the head and at the temples.
        float hairline = hy - ry * (1f - p.HairlineDrop);
        if (InEllipse(x, y, hx, hy - 0.03f * ry, 1.09f * rx, 1.06f * ry)
            && (y < hairline || (MathF.Abs(x - hx) > 0.82f * rx && y < hy - 0.02f * ry)))
            c = hair;

        // Hat: a crown with a band, with or without a brim.
        if (p.Hat)
        {
            float bandY = hy - 0.50f * ry;
            if (InEllipse(x, y, hx, bandY, 1.06f * rx, 0.72f * ry) && y < bandY) c = y > bandY - 0.12f * ry ? p.HatColor.Scale(0.55f) : p.HatColor;
            if (p.HatHasBrim && InEllipse(x, y, hx, bandY, 1.45f * rx, 0.10f * ry)) c = p.HatColor.Scale(0.8f);
        }

        float light = 1f + p.Light * (x - 0.5f);
        return c.Scale(light);
    }

    /// <summary>A box (x0, y0, x1, y1, normalised) that contains every pixel the attribute can change.</summary>
    public static (float X0, float Y0, float X1, float Y1) Region(Portrait p, string attribute)
    {
        float hx = p.HeadX, hy = p.HeadY, rx = p.HeadRx, ry = p.HeadRy;
        float eyeY = hy - 0.06f * ry, mouthY = hy + 0.46f * ry;
        return attribute switch
        {
            PortraitAttributes.Smiling => (hx - 0.6f * rx * p.MouthWidth - 0.05f * rx, mouthY - 0.12f * ry, hx + 0.6f * rx * p.MouthWidth + 0.05f * rx, mouthY + 0.25f * ry),
            PortraitAttributes.WhiteHair => (hx - 1.25f * rx, hy - 1.1f * ry, hx + 1.25f * rx, hy + 1.25f * ry),
            PortraitAttributes.Eyeglasses => (hx - 1.03f * rx, eyeY - 0.4f * rx, hx + 1.03f * rx, eyeY + 0.4f * rx),
            PortraitAttributes.Hat => (hx - 1.46f * rx, hy - 1.23f * ry, hx + 1.46f * rx, hy - 0.39f * ry),
            PortraitAttributes.Beard => (hx - 1.04f * rx, hy + 0.2f * ry, hx + 1.04f * rx, hy + 1.07f * ry),
            _ => throw new ArgumentException($"Unknown portrait attribute '{attribute}'.", nameof(attribute)),
        };
    }
}
