namespace Sdd.Ml.Torch;

/// <summary>Layer constructors that fix TorchSharp defaults this project cannot live with.</summary>
public static class Layers
{
    /// <summary>
    /// TorchSharp 0.107's GroupNorm allocates weight and bias with torch.empty and never resets them
    /// (values up to 1e37, NaN from step 1). Every GroupNorm in the project comes from here.
    /// </summary>
    public static GroupNorm GroupNorm(int groups, int channels, double eps = 1e-5)
    {
        var gn = nn.GroupNorm(Math.Min(groups, channels), channels, eps);
        using (no_grad())
        {
            gn.weight!.fill_(1.0f);
            gn.bias!.zero_();
        }
        return gn;
    }

    public static Conv2d Conv3x3(int inCh, int outCh, int stride = 1) => nn.Conv2d(inCh, outCh, 3, stride: stride, padding: 1);

    /// <summary>A conv whose weights and bias start at zero (residual branches start as the identity).</summary>
    public static Conv2d ZeroConv(int inCh, int outCh, int kernel = 3)
    {
        var c = nn.Conv2d(inCh, outCh, kernel, padding: kernel / 2);
        using (no_grad())
        {
            c.weight!.zero_();
            c.bias!.zero_();
        }
        return c;
    }
}
