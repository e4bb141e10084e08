using System.IO.Compression;

namespace Sdd.Ingest.Datasets;

/// <summary>
/// Stores an uploaded dataset zip (labels.csv and images/, at the root or in one top folder) under a
/// prefix, without trusting it: entry names are checked as object keys (no '..', no absolute paths),
/// and the bytes actually inflated are counted against SDD_MAX_ZIP_BYTES (a zip's declared sizes can lie).
/// </summary>
public static class DatasetZip
{
    private const int Parallel = 8;

    /// <summary>Validates, then uploads labels.csv and every file under images/; throws <see cref="InvalidDataException"/> on a bad zip.</summary>
    public static async Task<LabelsCsv> StoreAsync(Stream zipContent, ObjectStore store, string bucket, string prefix,
        IngestSettings limits, CancellationToken ct)
    {
        ZipArchive zip;
        try { zip = new ZipArchive(zipContent, ZipArchiveMode.Read, leaveOpen: true); }
        catch (Exception e) when (e is InvalidDataException or ArgumentOutOfRangeException or IOException)
        {
            throw new InvalidDataException("The file is not a zip archive."); // a stream shorter than a zip's end record cannot even be searched
        }
        using var _ = zip;
        if (zip.Entries.Count > limits.MaxZipEntries)
            throw new InvalidDataException($"The zip holds {zip.Entries.Count} entries; at most {limits.MaxZipEntries} are accepted.");

        var labelsEntry = zip.Entries
            .Select(e => (Entry: e, Name: Normalize(e.FullName)))
            .Where(x => x.Name is not null && (x.Name == LabelsCsv.FileName || x.Name.EndsWith("/" + LabelsCsv.FileName, StringComparison.Ordinal)))
            .OrderBy(x => x.Name!.Count(c => c == '/'))
            .FirstOrDefault();
        if (labelsEntry.Entry is null || labelsEntry.Name!.Count(c => c == '/') > 1)
            throw new InvalidDataException("The zip has no labels.csv at its root (or in its one top folder).");
        var root = labelsEntry.Name![..^LabelsCsv.FileName.Length];

        long budget = limits.MaxZipBytes;
        var labelsBytes = await ReadBoundedAsync(labelsEntry.Entry, Math.Min(budget, LabelsCsv.MaxBytes), ct);
        budget -= labelsBytes.Length;
        var labels = LabelsCsv.Parse(labelsBytes);

        var images = new List<(ZipArchiveEntry Entry, string Relative)>();
        foreach (var entry in zip.Entries)
        {
            var name = Normalize(entry.FullName) ?? throw new InvalidDataException($"The zip entry '{Printable(entry.FullName)}' has an unsafe path.");
            if (!name.StartsWith(root + KeyLayout.ImagesFolder, StringComparison.Ordinal) || name.EndsWith('/')) continue;
            var relative = name[(root.Length + KeyLayout.ImagesFolder.Length)..];
            try { ObjectKey.Validate(KeyLayout.DatasetImages(prefix) + relative); }
            catch (ArgumentException e) { throw new InvalidDataException($"The zip entry '{Printable(entry.FullName)}' cannot be stored: {e.Message}"); }
            images.Add((entry, relative));
        }
        if (labels.Missing(images.Select(i => i.Relative).ToHashSet(StringComparer.Ordinal)) is { } missing)
            throw new InvalidDataException(missing);

        await store.PutAsync(bucket, KeyLayout.DatasetLabels(prefix), labelsBytes, "text/csv", ct);
        var uploads = new List<Task>();
        foreach (var (entry, relative) in images)
        {
            // Inflate one entry at a time (ZipArchive is not thread-safe); keep a few uploads in flight.
            var bytes = await ReadBoundedAsync(entry, budget, ct);
            budget -= bytes.Length;
            uploads.Add(store.PutAsync(bucket, KeyLayout.DatasetImages(prefix) + relative, bytes, ContentType(relative), ct));
            if (uploads.Count >= Parallel)
            {
                var done = await Task.WhenAny(uploads);
                uploads.Remove(done);
                await done;
            }
        }
        await Task.WhenAll(uploads);
        return labels;
    }

    /// <summary>'/'-separated, relative and without '.'/'..' segments, else null.</summary>
    private static string? Normalize(string fullName)
    {
        var name = fullName.Replace('\\', '/');
        if (name.Length == 0 || name[0] == '/' || name.Contains(':') || name.Any(char.IsControl)) return null;
        var segments = name.Split('/');
        return segments.Any(s => s is "." or "..") ? null : name;
    }

    private static async Task<byte[]> ReadBoundedAsync(ZipArchiveEntry entry, long limit, CancellationToken ct)
    {
        if (entry.Length > limit)
            throw new InvalidDataException($"The zip expands beyond the accepted size (entry '{Printable(entry.FullName)}').");
        await using var source = entry.Open();
        using var buffer = new MemoryStream();
        var chunk = new byte[81920];
        int read;
        while ((read = await source.ReadAsync(chunk, ct)) > 0)
        {
            if (buffer.Length + read > limit)
                throw new InvalidDataException($"The zip expands beyond the accepted size (entry '{Printable(entry.FullName)}').");
            buffer.Write(chunk, 0, read);
        }
        return buffer.ToArray();
    }

    public static string ContentType(string name) => Path.GetExtension(name).ToLowerInvariant() switch
    {
        ".png" => "image/png",
        ".jpg" or ".jpeg" => "image/jpeg",
        ".bmp" => "image/bmp",
        ".gif" => "image/gif",
        ".webp" => "image/webp",
        ".tif" or ".tiff" => "image/tiff",
        _ => "application/octet-stream",
    };

    private static string Printable(string s) => new(s.Take(120).Select(c => char.IsControl(c) ? '?' : c).ToArray());
}
