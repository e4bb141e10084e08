namespace Sdd.Tool;

/// <summary>
/// What <c>sdd jobs submit</c> edits: one s3://bucket/prefix read in place, or local files — a folder's images
/// (recursively, named by their path inside it; several folders each under its own name) and files named one by one.
/// </summary>
internal sealed record JobInputs(JobSource? Source, IReadOnlyList<UploadFile> Files)
{
    /// <summary>Sets up to this size go in one multipart request; larger ones through an upload area.</summary>
    public const int MultipartMaxFiles = 50;
    public const long MultipartMaxBytes = 32L << 20;

    public long Bytes => Files.Sum(f => f.Length);

    /// <summary>
    /// Small enough for one multipart request, and flat: the multipart route keeps only file names, so a set with
    /// sub-folders goes through an upload area, whose item names (and the results zip's) keep the folders.
    /// </summary>
    public bool FitsOneRequest => Files.Count <= MultipartMaxFiles && Bytes <= MultipartMaxBytes && Files.All(f => !f.Name.Contains('/'));

    public static JobInputs Resolve(IReadOnlyList<string> inputs)
    {
        var s3 = inputs.Where(i => i.StartsWith("s3://", StringComparison.OrdinalIgnoreCase)).ToList();
        if (s3.Count > 0)
        {
            if (inputs.Count > 1) throw new ToolException("An s3://bucket/prefix source is read in place; give it alone, without local files.");
            try { return new JobInputs(JobSource.FromS3Url(s3[0]), []); }
            catch (FormatException e) { throw new ToolException(e.Message); }
        }
        var folders = inputs.Count(Directory.Exists);
        var files = new List<UploadFile>();
        foreach (var input in inputs)
        {
            if (Directory.Exists(input))
            {
                var under = folders > 1 ? Path.GetFileName(Path.TrimEndingDirectorySeparator(Path.GetFullPath(input))) + "/" : "";
                var found = UploadFile.FromDirectory(input, MediaTypes.IsImage);
                if (found.Count == 0) throw new ToolException($"{input} holds no image (JPEG, PNG, WebP, BMP, GIF, TIFF).");
                files.AddRange(found.Select(f => f with { Name = under + f.Name }));
            }
            else if (File.Exists(input)) files.Add(UploadFile.FromPath(input));
            else throw new ToolException($"{input}: no such file or folder.");
        }
        var twice = files.GroupBy(f => f.Name, StringComparer.Ordinal).FirstOrDefault(g => g.Count() > 1);
        if (twice is not null) throw new ToolException($"Two inputs are both named '{twice.Key}'; results are named after inputs, so rename one or submit a folder.");
        return new JobInputs(null, files);
    }
}
