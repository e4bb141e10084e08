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
