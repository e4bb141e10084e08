namespace Sdd.Data.Entities;

/// <summary>An editable attribute ("smiling"); editors are versioned per attribute.</summary>
public class ImageAttribute
{
    public Guid Id { get; set; }
    public required string Name { get; set; }
    public string? Description { get; set; }
    public DateTimeOffset CreatedAt { get; set; }
    /// <summary>The API client that owns it.</summary>
    public string? Owner { get; set; }
    /// <summary>The teacher its editors are distilled from.</summary>
    public Guid? TeacherId { get; set; }
    /// <summary>The teacher attribute an editor turns on ("smiling"), one of the teacher's AttributeNames.</summary>
    public string? TargetAttribute { get; set; }
    /// <summary>Source images for distillation; null = the teacher's portrait domain, rendered by the worker.</summary>
    public Guid? DatasetId { get; set; }
    /// <summary>A text-prompt attribute (a Stable Diffusion teacher): the text an editor adds ("a photo of a smiling person").</summary>
    public string? Prompt { get; set; }
    /// <summary>The longest prompt stored (CLIP reads 75 tokens; the rest is cut off).</summary>
    public const int MaxPromptLength = 1000;
    /// <summary>The text the source photos stand for ("a photo of a person"): delta guidance's reference; null, the empty prompt.</summary>
    public string? SourcePrompt { get; set; }
    /// <summary>Published by an admin: every key may submit jobs with it (read-only: no versions, no pinning).</summary>
    public bool IsPublished { get; set; }
}
