namespace Sdd.Ml.Portraits;

/// <summary>The binary attributes the procedural portrait domain renders, in label-column order.</summary>
public static class PortraitAttributes
{
    public const string Smiling = "smiling";
    public const string WhiteHair = "white_hair";
    public const string Eyeglasses = "eyeglasses";
    public const string Hat = "hat";
    public const string Beard = "beard";

    public static readonly IReadOnlyList<string> All = [Smiling, WhiteHair, Eyeglasses, Hat, Beard];
}
