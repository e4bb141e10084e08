namespace Sdd.Data.Entities;

/// <summary>A labeled image set in the datasets bucket (<c>&lt;name&gt;/images/</c>, <c>&lt;name&gt;/labels.csv</c>).</summary>
public class Dataset : IListed
{
    public Guid Id { get; set; }
    public required string Name { get; set; }
    public string? Description { get; set; }
    /// <summary>Attribute columns of labels.csv, in order.</summary>
    public List<string> AttributeNames { get; set; } = [];
    public int ImageCount { get; set; }
    public DateTimeOffset CreatedAt { get; set; }
    /// <summary>The API client that registered it.</summary>
    public string? Owner { get; set; }
    /// <summary>Where it lives: <c>&lt;Prefix&gt;labels.csv</c> and <c>&lt;Prefix&gt;images/&lt;file&gt;</c> in this bucket (null: the datasets bucket).</summary>
    public string? Bucket { get; set; }
    /// <summary>Key prefix, empty or ending with '/'; an uploaded zip is stored under <c>&lt;datasetId&gt;/</c>.</summary>
    public string? Prefix { get; set; }
}
