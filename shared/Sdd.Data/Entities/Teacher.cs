namespace Sdd.Data.Entities;

public enum TeacherStatus { Pending, Training, Ready, Failed }

/// <summary>A diffusion model used only as the teacher of editors.</summary>
public class Teacher : IListed
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
    /// <summary>The attributes it is conditioned on, in order (config.json attribute_names, or the dataset's columns).</summary>
    public List<string> AttributeNames { get; set; } = [];
    /// <summary>The API client that asked for it; null for a builtin teacher.</summary>
    public string? Owner { get; set; }
    /// <summary>Shipped with the product (shared/models), registered at Ingest start-up, visible to every client.</summary>
    public bool IsBuiltin { get; set; }
    /// <summary>Published by an admin: every key may distil editors from it (builtin teachers are published).</summary>
    public bool IsPublished { get; set; }
}
