namespace Sdd.Data.Entities;

/// <summary>An editable attribute ("smiling"); editors are versioned per attribute.</summary>
public class ImageAttribute
{
    public Guid Id { get; set; }
    public required string Name { get; set; }
    public string? Description { get; set; }
    public DateTimeOffset CreatedAt { get; set; }
}
