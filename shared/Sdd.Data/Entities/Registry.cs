namespace Sdd.Data.Entities;

/// <summary>A labeled image set in the datasets bucket (<c>&lt;name&gt;/images/</c>, <c>&lt;name&gt;/labels.csv</c>).</summary>
public class Dataset
{
    public Guid Id { get; set; }
    public required string Name { get; set; }
    public string? Description { get; set; }
    /// <summary>Attribute columns of labels.csv, in order.</summary>
    public List<string> AttributeNames { get; set; } = [];
    public int ImageCount { get; set; }
    public DateTimeOffset CreatedAt { get; set; }
}

public enum TeacherStatus { Pending, Training, Ready, Failed }

/// <summary>A diffusion model used only as the teacher of editors.</summary>
public class Teacher
{
    public Guid Id { get; set; }
    public required string Name { get; set; }
    /// <summary>"attribute-ddpm" or "stable-diffusion".</summary>
    public required string Kind { get; set; }
    public Guid? DatasetId { get; set; }
    public Dataset? Dataset { get; set; }
    public int Resolution { get; set; }
    /// <summary>Architecture and training settings (JSON).</summary>
    public string SettingsJson { get; set; } = "{}";
    public TeacherStatus Status { get; set; }
    /// <summary>Key in the models bucket (teachers/&lt;id&gt;/...) once trained.</summary>
    public string? WeightsKey { get; set; }
    public DateTimeOffset CreatedAt { get; set; }
}

/// <summary>An editable attribute ("smiling"); editors are versioned per attribute.</summary>
public class ImageAttribute
{
    public Guid Id { get; set; }
    public required string Name { get; set; }
    public string? Description { get; set; }
    public DateTimeOffset CreatedAt { get; set; }
}

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
