namespace Sdd.Ingest.Jobs;

/// <summary>TEMPORARY until the codec's format type lands: the output formats a job may ask for.</summary>
public static class OutputFormats
{
    public static readonly string[] Names = ["jpeg", "png", "webp"];

    public static bool TryParse(string text, out string format)
    {
        format = text.Trim().ToLowerInvariant() switch { "jpg" => "jpeg", var s => s };
        return Names.Contains(format);
    }
}
