namespace Sdd.Data.Entities;

/// <summary>One timestep of an editor's HQS curve, with the raw terms kept beside the score.</summary>
public class IndicatorPoint
{
    public long Id { get; set; }
    public Guid EditorVersionId { get; set; }
    public int T { get; set; }
    public double Entropy { get; set; }
    public double Norm { get; set; }
    public double Hqs { get; set; }
    /// <summary>Standard deviations across the sample images.</summary>
    public double EntropySpread { get; set; }
    public double NormSpread { get; set; }
    public double HqsSpread { get; set; }
}
