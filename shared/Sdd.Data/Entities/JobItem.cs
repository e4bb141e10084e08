namespace Sdd.Data.Entities;

/// <summary>
/// Cancelled: the job was cancelled before the item was edited; workers skip it. Skipped: final, not edited because the
/// image is outside the editor's domain (its <see cref="JobItem.DomainScore"/> above the gate's threshold; the reason in Error).
/// </summary>
public enum ItemState { Pending, Done, Failed, Cancelled, Skipped }

/// <summary>One image of a job.</summary>
public class JobItem
{
    public Guid Id { get; set; }
    public Guid JobId { get; set; }
    /// <summary>Jobs-bucket key of the input (&lt;jobId&gt;/input/&lt;itemId&gt;.&lt;ext&gt;) or a key in <see cref="SourceBucket"/>.</summary>
    public required string SourceKey { get; set; }
    /// <summary>The bucket of <see cref="SourceKey"/> for a job submitted from a bucket prefix; null = the jobs bucket.</summary>
    public string? SourceBucket { get; set; }
    /// <summary>What the user calls the image: the uploaded file name, or the key below the submitted prefix.</summary>
    public string? Name { get; set; }
    /// <summary>When an EditBatch holding the item was last sent; null = not yet (the Ingest sweeper sends it).</summary>
    public DateTimeOffset? DispatchedAt { get; set; }
    public string? OutputKey { get; set; }
    public ItemState State { get; set; }
    public string? Error { get; set; }
    public int Attempts { get; set; }
    /// <summary>The editor's domain gate's score of the image (about 1 in the domain); null: not scored (an editor without a gate).</summary>
    public double? DomainScore { get; set; }
    /// <summary>The image scored outside the editor's domain: skipped, or edited anyway when the job asked for it.</summary>
    public bool OutsideDomain { get; set; }
    public DateTimeOffset? UpdatedAt { get; set; }
    public uint Version { get; set; }
}
