using Sdd.Ml.Data;

namespace Sdd.Distill.Runs;

/// <summary>A run cannot go on and retrying will not help (bad data set, unknown attribute, diverged training...).</summary>
public sealed class RunFailure(string message, Exception? inner = null) : Exception(message, inner)
{
    /// <summary>Errors that the same input will raise again: the run fails with the reason instead of being retried.</summary>
    public static bool IsPermanent(Exception e) => e switch
    {
        RunFailure or DatasetException or ImageDecodeException or FileNotFoundException or InvalidDataException
            or NotSupportedException or ArgumentException or FormatException or System.Text.Json.JsonException
            or Sdd.Ml.StableDiffusion.WeightsException => true,
        InvalidOperationException when e.Message.Contains("diverged", StringComparison.Ordinal) => true,
        AggregateException a when a.InnerExceptions.Count > 0 => a.InnerExceptions.All(IsPermanent),
        _ => false,
    };
}
