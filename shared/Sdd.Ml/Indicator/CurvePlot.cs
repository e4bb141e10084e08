using SixLabors.ImageSharp;
using SixLabors.ImageSharp.PixelFormats;

namespace Sdd.Ml.Indicator;

/// <summary>Draws the indicator curve as a PNG: HQS (black, with its spread), normalised norm (blue) and entropy (red), selected t shaded.</summary>
public static class CurvePlot
{
    // A 3x5 pixel font: enough for numbers and the legend.
    private static readonly Dictionary<char, string> Glyphs = new()
    {
        ['0'] = "111101101101111", ['1'] = "010110010010111", ['2'] = "111001111100111", ['3'] = "111001111001111",
        ['4'] = "101101111001001", ['5'] = "111100111001111", ['6'] = "111100111101111", ['7'] = "111001010010010",
        ['8'] = "111101111101111", ['9'] = "111101111001111", ['.'] = "000000000000010", ['-'] = "000000111000000",
        ['H'] = "101101111101101", ['Q'] = "111101101111001", ['S'] = "111100111001111", ['N'] = "101111111111101",
        ['O'] = "111101101101111", ['R'] = "110101110101101", ['M'] = "101111111101101", ['E'] = "111100111100111",
        ['T'] = "111010010010010", ['P'] = "111101111100100", ['Y'] = "101101010010010", ['t'] = "010111010010011",
        ['='] = "000111000111000", [' '] = "000000000000000", ['A'] = "010101111101101", ['L'] = "100100100100111",
        ['C'] = "111100100100111", ['D'] = "110101101101110", ['I'] = "111010010010111", ['B'] = "110101110101110",
        ['G'] = "111100101101111", ['U'] = "101101101101111", ['W'] = "101101111111101", ['K'] = "101101110101101",
        ['F'] = "111100111100100", ['V'] = "101101101101010", ['X'] = "101101010101101", ['Z'] = "111001010100111",
        ['_'] = "000000000000111", [':'] = "000010000010000", [','] = "000000000010100", ['/'] = "001001010100100",
    };

    private static void Text(Image<Rgb24> img, int x, int y, string s, Rgb24 c, int scale = 2)
    {
        foreach (var ch in s.ToUpperInvariant().Replace("T=", "t="))
        {
            if (Glyphs.TryGetValue(ch, out var g) || Glyphs.TryGetValue(char.ToUpperInvariant(ch), out g))
                for (int i = 0; i < 15; i++)
                    if (g[i] == '1')
                        for (int dy = 0; dy < scale; dy++) for (int dx = 0; dx < scale; dx++)
                            Set(img, x + (i % 3) * scale + dx, y + (i / 3) * scale + dy, c);
            x += 4 * scale;
        }
    }

    private static void Set(Image<Rgb24> img, int x, int y, Rgb24 c) { if (x >= 0 && y >= 0 && x < img.Width && y < img.Height) img[x, y] = c; }

    private static void Line(Image<Rgb24> img, int x0, int y0, int x1, int y1, Rgb24 c, int thick = 2)
    {
        int n = Math.Max(Math.Abs(x1 - x0), Math.Abs(y1 - y0)) + 1;
        for (int i = 0; i <= n; i++)
        {
            int x = x0 + (x1 - x0) * i / n, y = y0 + (y1 - y0) * i / n;
            for (int d = 0; d < thick; d++) { Set(img, x, y + d, c); Set(img, x + d, y, c); }
        }
    }

    public static void Save(IndicatorCurve curve, string path)
    {
        const int W = 720, H = 420, L = 60, R = 20, Top = 40, Bottom = 50;
        using var img = new Image<Rgb24>(W, H, new Rgb24(255, 255, 255));
        var pts = curve.Points;
        int tMin = pts.Min(p => p.T), tMax = pts.Max(p => p.T);
        int X(double t) => L + (int)((t - tMin) / Math.Max(1, tMax - tMin) * (W - L - R));
        int Y(double v, double lo, double hi) => Top + (int)((1 - (v - lo) / Math.Max(1e-12, hi - lo)) * (H - Top - Bottom));

        // Selected timesteps shaded.
        int half = pts.Count > 1 ? (X(pts[1].T) - X(pts[0].T)) / 2 : 10;
        foreach (var t in curve.Selected)
            for (int x = X(t) - half; x < X(t) + half; x++) for (int y = Top; y < H - Bottom; y++) Set(img, x, y, new Rgb24(255, 236, 179));

        var axis = new Rgb24(60, 60, 60);
        Line(img, L, H - Bottom, W - R, H - Bottom, axis, 1);
        Line(img, L, Top, L, H - Bottom, axis, 1);
        foreach (var p in pts.Where((_, i) => i % 2 == 0))
        {
            Line(img, X(p.T), H - Bottom, X(p.T), H - Bottom + 4, axis, 1);
            Text(img, X(p.T) - 10, H - Bottom + 8, p.T.ToString(), axis);
        }
        Text(img, W / 2 - 8, H - 18, "t", axis);

        double hLo = pts.Min(p => p.Hqs - p.HqsStd), hHi = pts.Max(p => p.Hqs + p.HqsStd);
        for (int k = 0; k <= 4; k++)
        {
            double v = hLo + (hHi - hLo) * k / 4;
            Text(img, 4, Y(v, hLo, hHi) - 4, v.ToString("0.00"), axis);
            Line(img, L - 4, Y(v, hLo, hHi), L, Y(v, hLo, hHi), axis, 1);
        }

        void Series(Func<IndicatorPoint, double> f, double lo, double hi, Rgb24 c)
        {
            for (int i = 1; i < pts.Count; i++) Line(img, X(pts[i - 1].T), Y(f(pts[i - 1]), lo, hi), X(pts[i].T), Y(f(pts[i]), lo, hi), c);
        }
        double nLo = pts.Min(p => p.Norm), nHi = pts.Max(p => p.Norm), eLo = pts.Min(p => p.Entropy), eHi = pts.Max(p => p.Entropy);
        Series(p => p.Norm, nLo, nHi, new Rgb24(66, 110, 220));
        Series(p => p.Entropy, eLo, eHi, new Rgb24(220, 70, 60));
        Series(p => p.Hqs + p.HqsStd, hLo, hHi, new Rgb24(170, 170, 170));
        Series(p => p.Hqs - p.HqsStd, hLo, hHi, new Rgb24(170, 170, 170));
        Series(p => p.Hqs, hLo, hHi, new Rgb24(0, 0, 0));

        Text(img, L, 8, $"HQS {curve.Attribute}  N={curve.Samples}  selected t={string.Join(",", curve.Selected)}", new Rgb24(0, 0, 0));
        Text(img, L, 24, "HQS", new Rgb24(0, 0, 0));
        Text(img, L + 40, 24, "NORM", new Rgb24(66, 110, 220));
        Text(img, L + 90, 24, "ENTROPY", new Rgb24(220, 70, 60));
        img.SaveAsPng(path);
    }
}
