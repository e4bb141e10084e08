namespace Sdd.Data.Entities;

public enum EditorStatus { Pending, Selecting, Distilling, Ready, Failed, Retired }

/// <summary>One distilled editor for an attribute; at most one version per attribute is active.</summary>
public class EditorVersion
{
    public Guid Id { get; set; }
    public Guid AttributeId { get; set; }
    public ImageAttribute? Attribute { get; set; }
    public Guid TeacherId { get; set; }
    public Teacher? Teacher { get; set; }
    /// <summary>1, 2, ... per attribute.</summary>
    public int Version { get; set; }
    /// <summary>Distillation settings (CFG scale, λ, gradient kind, steps...) as JSON.</summary>
    public string SettingsJson { get; set; } = "{}";
    /// <summary>The HQS threshold ξ that chose <see cref="SelectedTimesteps"/>.</summary>
    public double? Threshold { get; set; }
    public List<int> SelectedTimesteps { get; set; } = [];
    /// <summary>Evaluation (editability, PSNR, FD, images/s...) as JSON.</summary>
    public string? MetricsJson { get; set; }
    public EditorStatus Status { get; set; }
    public bool IsActive { get; set; }
    /// <summary>Key prefix in the models bucket (editors/&lt;attribute&gt;/&lt;version&gt;/).</summary>
    public string? WeightsKey { get; set; }
    public DateTimeOffset CreatedAt { get; set; }
    public List<IndicatorPoint> IndicatorPoints { get; set; } = [];
}
