using System.IO.Compression;

namespace Sdd.Ingest.Datasets;

/// <summary>
/// Stores an uploaded dataset zip (labels.csv and images/, at the root or in one top folder) under a prefix, without
/// trusting it: entry names are checked as object keys (no '..', no absolute paths); every entry is inflated as a stream
/// to a temporary file, counting the bytes actually inflated (a zip's declared sizes can lie) against the whole zip's
/// budget (SDD_MAX_ZIP_BYTES), one image's (SDD_MAX_INPUT_BYTES) and the compression ratio (SDD_MAX_ZIP_RATIO, per entry
/// and for the whole zip); every image's header is checked (format, pixels, aspect ratio) before it is stored. Memory
/// holds one buffer per upload in flight, never an entry. The caller deletes the prefix when this throws.
/// </summary>
public static class DatasetZip
{
    private const int Parallel = 4;
    /// <summary>Entries this small may compress as well as they like (a flat PNG, a short labels.csv).</summary>
    private const long RatioSlackBytes = 1 << 20;

    /// <summary>Validates, then uploads labels.csv and every file under images/; throws <see cref="InvalidDataException"/> on a bad zip.</summary>
    public static async Task<LabelsCsv> StoreAsync(Stream zipContent, ObjectStore store, string bucket, string prefix,
        IngestSettings limits, CancellationToken ct)
    {
        ZipArchive zip;
        long zipBytes = zipContent.CanSeek ? zipContent.Length : 0;
        try { zip = new ZipArchive(zipContent, ZipArchiveMode.Read, leaveOpen: true); }
        catch (Exception e) when (e is InvalidDataException or ArgumentOutOfRangeException or IOException)
        {
            throw new InvalidDataException("The file is not a zip archive."); // a stream shorter than a zip's end record cannot even be searched
        }
        using var _ = zip;
        if (zip.Entries.Count > limits.MaxZipEntries)
            throw new InvalidDataException($"The zip holds {zip.Entries.Count} entries; at most {limits.MaxZipEntries} are accepted (SDD_MAX_ZIP_ENTRIES).");
        long declared = zip.Entries.Sum(e => e.Length);
        if (declared > limits.MaxZipBytes)
            throw new InvalidDataException($"The zip declares {declared} bytes inflated; at most {limits.MaxZipBytes} are accepted (SDD_MAX_ZIP_BYTES).");

        var labelsEntry = zip.Entries
            .Select(e => (Entry: e, Name: Normalize(e.FullName)))
            .Where(x => x.Name is not null && (x.Name == LabelsCsv.FileName || x.Name.EndsWith("/" + LabelsCsv.FileName, StringComparison.Ordinal)))
            .OrderBy(x => x.Name!.Count(c => c == '/'))
            .FirstOrDefault();
        if (labelsEntry.Entry is null || labelsEntry.Name!.Count(c => c == '/') > 1)
            throw new InvalidDataException("The zip has no labels.csv at its root (or in its one top folder).");
        var root = labelsEntry.Name![..^LabelsCsv.FileName.Length];

        var inflated = new InflationBudget(limits, zipBytes);
        byte[] labelsBytes;
        await using (var labelsFile = await InflateAsync(labelsEntry.Entry, Math.Min(LabelsCsv.MaxBytes, limits.MaxInputBytes), inflated, ct))
        {
            labelsBytes = new byte[labelsFile.Length];
            await labelsFile.ReadExactlyAsync(labelsBytes, ct);
        }
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
        try
        {
            foreach (var (entry, relative) in images)
            {
                // Inflate one entry at a time (ZipArchive is not thread-safe) to a temporary file; keep a few uploads in flight.
                var file = await InflateAsync(entry, limits.MaxInputBytes, inflated, ct);
                try
                {
                    if (Jobs.ImageCheck.Check(file, $"images/{relative}", limits.MaxImagePixels, out var refusal) is null)
                        throw new InvalidDataException(refusal!.Detail);
                    file.Position = 0;
                }
                catch
                {
                    await file.DisposeAsync();
                    throw;
                }
                uploads.Add(UploadAsync(store, bucket, KeyLayout.DatasetImages(prefix) + relative, file, ct));
                if (uploads.Count >= Parallel)
                {
                    var done = await Task.WhenAny(uploads);
                    uploads.Remove(done);
                    await done;
                }
            }
        }
        finally
        {
            await Task.WhenAll(uploads.Select(t => t.ContinueWith(_ => { }, TaskScheduler.Default))); // none left writing when the caller cleans up
        }
        await Task.WhenAll(uploads);
        return labels;
    }

    private static async Task UploadAsync(ObjectStore store, string bucket, string key, FileStream file, CancellationToken ct)
    {
        await using (file) await store.PutAsync(bucket, key, file, ContentType(key), ct);
    }

    /// <summary>What the whole zip may still inflate to: the byte budget and, for a zip of known size, its ratio.</summary>
    private sealed class InflationBudget(IngestSettings limits, long zipBytes)
    {
        private long _total;

        public int Ratio => limits.MaxZipRatio;

        public void Add(long bytes, ZipArchiveEntry entry)
        {
            _total += bytes;
            if (_total > limits.MaxZipBytes)
                throw new InvalidDataException($"The zip inflates to more than {limits.MaxZipBytes} bytes (SDD_MAX_ZIP_BYTES), at entry '{Printable(entry.FullName)}'.");
            if (zipBytes > 0 && _total > RatioSlackBytes && _total > (long)limits.MaxZipRatio * zipBytes)
                throw new InvalidDataException($"The zip inflates to more than {limits.MaxZipRatio} times its size (SDD_MAX_ZIP_RATIO), at entry '{Printable(entry.FullName)}'.");
        }
    }

    /// <summary>The entry's bytes in a temporary file (deleted on dispose), counted as they inflate.</summary>
    private static async Task<FileStream> InflateAsync(ZipArchiveEntry entry, long entryLimit, InflationBudget budget, CancellationToken ct)
    {
        if (entry.Length > entryLimit)
            throw new InvalidDataException($"The zip entry '{Printable(entry.FullName)}' declares {entry.Length} bytes; at most {entryLimit} are accepted for one file.");
        long ratioLimit = Math.Max(RatioSlackBytes, entry.CompressedLength * budget.Ratio);
        var file = new FileStream(Path.GetTempFileName(), FileMode.Create, FileAccess.ReadWrite, FileShare.None, 1 << 16,
            FileOptions.DeleteOnClose | FileOptions.Asynchronous);
        try
        {
            await using var source = entry.Open();
            var chunk = new byte[81920];
            long written = 0;
            int read;
            while ((read = await source.ReadAsync(chunk, ct)) > 0)
            {
                written += read;
                if (written > entryLimit)
                    throw new InvalidDataException($"The zip entry '{Printable(entry.FullName)}' inflates beyond {entryLimit} bytes, the most one file may hold.");
                if (written > ratioLimit)
                    throw new InvalidDataException($"The zip entry '{Printable(entry.FullName)}' inflates to more than {budget.Ratio} times its compressed size (SDD_MAX_ZIP_RATIO: a zip bomb).");
                budget.Add(read, entry);
                await file.WriteAsync(chunk.AsMemory(0, read), ct);
            }
            file.Position = 0;
            return file;
        }
        catch
        {
            await file.DisposeAsync();
            throw;
        }
    }

    /// <summary>'/'-separated, relative and without '.'/'..' segments, else null.</summary>
    private static string? Normalize(string fullName)
    {
        var name = fullName.Replace('\\', '/');
        if (name.Length == 0 || name[0] == '/' || name.Contains(':') || name.Any(char.IsControl)) return null;
        var segments = name.Split('/');
        return segments.Any(s => s is "." or "..") ? null : name;
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
