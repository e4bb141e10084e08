using System.Text.RegularExpressions;
using Sdd.Configuration;

namespace Sdd.Storage;

/// <summary>
/// Every object key the services write, in one place. What a tenant can see lives under its owner's prefix
/// <c>tenants/&lt;owner&gt;/</c> in each bucket, so a prefix of one owner never holds another owner's data:
/// <list type="bullet">
/// <item>datasets bucket: <c>tenants/&lt;owner&gt;/uploads/&lt;uploadId&gt;/&lt;file&gt;</c> (presigned PUTs the API grants),
/// <c>tenants/&lt;owner&gt;/datasets/&lt;datasetId&gt;/{labels.csv,images/…}</c> (uploaded zips)</item>
/// <item>jobs bucket: <c>tenants/&lt;owner&gt;/jobs/&lt;jobId&gt;/{input,output}/&lt;itemId&gt;.&lt;ext&gt;</c></item>
/// <item>models bucket: <c>tenants/&lt;owner&gt;/teachers/&lt;teacherId&gt;/</c>, <c>tenants/&lt;owner&gt;/editors/&lt;attribute&gt;/&lt;version&gt;/</c>;
/// the builtin teachers, the service's own, under <c>teachers/&lt;teacherId&gt;/</c>. In each model's folder, the published
/// files (config.json, model.safetensors, …) at the top, the training checkpoints as generations
/// <c>train/chunk-&lt;n&gt;-&lt;tag&gt;/</c> and the marker <c>train/progress.json</c> naming the current one</item>
/// </list>
/// </summary>
public static partial class KeyLayout
{
    public const string TenantsRoot = "tenants/";
    public const string LabelsFile = "labels.csv";
    public const string ImagesFolder = "images/";

    /// <summary><c>tenants/&lt;owner&gt;/</c>; an owner is an API client id (or "admin"), one safe key segment.</summary>
    public static string Tenant(string owner) =>
        OwnerPattern().IsMatch(owner) ? $"{TenantsRoot}{owner}/" : throw new ArgumentException($"'{owner}' is not an owner id", nameof(owner));

    /// <summary>The owner's whole upload area in the datasets bucket.</summary>
    public static string Uploads(string owner) => Tenant(owner) + "uploads/";

    public static string Upload(string owner, Guid uploadId) => $"{Uploads(owner)}{uploadId:D}/";

    /// <summary>Where an uploaded dataset zip is unpacked (labels.csv and images/ below it).</summary>
    public static string Dataset(string owner, Guid datasetId) => $"{Tenant(owner)}datasets/{datasetId:D}/";

    public static string Job(string owner, Guid jobId) => $"{Tenant(owner)}jobs/{jobId:D}/";

    public static string JobInput(string owner, Guid jobId, Guid itemId, string extension) => $"{Job(owner, jobId)}input/{itemId:D}.{extension}";

    /// <summary>
    /// The edited image of an item, with its format's extension: depends only on the item (its format is the job's or its
    /// input's), so a redelivered batch overwrites rather than duplicates.
    /// </summary>
    public static string JobOutput(string owner, Guid jobId, Guid itemId, OutputFormat format) => $"{Job(owner, jobId)}output/{itemId:D}.{format.Extension}";

    /// <summary>A teacher's folder in the models bucket; a builtin teacher (no owner) is the service's own.</summary>
    public static string Teacher(string? owner, Guid teacherId) =>
        owner is null ? $"teachers/{teacherId:D}/" : $"{Tenant(owner)}teachers/{teacherId:D}/";

    /// <summary>An editor version's folder in the models bucket (attribute names are unique per owner).</summary>
    public static string Editor(string owner, string attribute, int version) => $"{Tenant(owner)}editors/{attribute}/{version}/";

    /// <summary>The training folder of a run's checkpoints under a teacher's or editor version's folder.</summary>
    public const string CheckpointsFolder = "train/";

    /// <summary>The small marker naming the checkpoint generation to resume from; written last, it is the switch.</summary>
    public static string CheckpointMarker(string modelPrefix) => modelPrefix + CheckpointsFolder + "progress.json";

    /// <summary>
    /// A checkpoint generation, relative to the model's folder: <c>train/chunk-&lt;n&gt;-&lt;tag&gt;/</c>, new for every
    /// chunk attempt (the tag), so an upload never overwrites the generation the marker names.
    /// </summary>
    public static string CheckpointGeneration(int chunk, string tag) =>
        GenerationTag().IsMatch(tag) && chunk >= 0 ? $"{CheckpointsFolder}chunk-{chunk:D5}-{tag}/" : throw new ArgumentException($"bad checkpoint generation {chunk}/{tag}");

    /// <summary>True for a key of a checkpoint generation (<c>&lt;modelPrefix&gt;train/chunk-…/…</c>).</summary>
    public static bool IsCheckpointGeneration(string modelPrefix, string key) =>
        key.StartsWith(modelPrefix + CheckpointsFolder + "chunk-", StringComparison.Ordinal);

    /// <summary>A data set's label table under its prefix (CelebA layout: <c>labels.csv</c> beside <c>images/</c>).</summary>
    public static string DatasetLabels(string datasetPrefix) => datasetPrefix + LabelsFile;

    /// <summary>The folder of a data set's images under its prefix.</summary>
    public static string DatasetImages(string datasetPrefix) => datasetPrefix + ImagesFolder;

    /// <summary>True when <paramref name="prefix"/> lies inside <paramref name="area"/> (an area ends with '/').</summary>
    public static bool IsWithin(string prefix, string area) =>
        area.Length == 0 || prefix.StartsWith(area, StringComparison.Ordinal);

    [GeneratedRegex("^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")]
    private static partial Regex OwnerPattern();

    [GeneratedRegex("^[a-z0-9]{1,32}$")]
    private static partial Regex GenerationTag();
}
