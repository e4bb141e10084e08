using Microsoft.Extensions.Configuration;

namespace Sdd.Edit;

/// <summary>How the edit worker sizes its work; read from SDD_* variables like the rest of the settings.</summary>
public sealed record EditOptions
{
    /// <summary>
    /// Batches in flight, and messages prefetched (SDD_EDIT_CONCURRENCY, default 3): one in its forward pass, the others
    /// downloading, decoding, encoding or uploading around it.
    /// </summary>
    public int Concurrency { get; init; } = 3;
    /// <summary>Editors kept loaded, least recently used evicted first (SDD_EDITOR_CACHE, default 4).</summary>
    public int EditorCache { get; init; } = 4;
    /// <summary>Most images in one forward pass; a larger group of one size is split (SDD_EDIT_MAX_BATCH, default 64).</summary>
    public int MaxBatch { get; init; } = 64;
    /// <summary>Concurrent downloads/uploads per batch (SDD_EDIT_IO_PARALLELISM, default 8).</summary>
    public int IoParallelism { get; init; } = 8;
    /// <summary>Images above this many pixels fail their item (SDD_MAX_IMAGE_PIXELS, default 40 M, checked from the header).</summary>
    public long MaxImagePixels { get; init; } = Limits.MaxImagePixels;
    /// <summary>Largest input object, checked before it is downloaded (SDD_MAX_INPUT_BYTES, default 256 MiB).</summary>
    public long MaxInputBytes { get; init; } = Limits.MaxInputBytes;
    /// <summary>Working memory for images in flight (SDD_EDIT_MEMORY_MB, default 4096): bounds the pixels of one forward pass.</summary>
    public long MemoryMegabytes { get; init; } = 4096;
    /// <summary>
    /// Seconds between hand-backs of the native heap's free pages while batches keep coming (SDD_EDIT_TRIM_SECONDS, default
    /// 10; 0 = only when the worker goes idle). Each trim costs the batches after it page faults to take the memory back,
    /// so trimming at most once a second cost the worker 15 % more CPU at 256 px: 190.6 core-seconds for 10,000 images,
    /// against 166.3 trimming every 10 s and 164.3 not trimming.
    /// </summary>
    public long TrimSeconds { get; init; } = 10;

    public static EditOptions From(IConfiguration c)
    {
        var d = new EditOptions();
        return new EditOptions
        {
            Concurrency = (int)Number(c, "SDD_EDIT_CONCURRENCY", d.Concurrency, 1),
            EditorCache = (int)Number(c, "SDD_EDITOR_CACHE", d.EditorCache, 1),
            MaxBatch = (int)Number(c, "SDD_EDIT_MAX_BATCH", d.MaxBatch, 1),
            IoParallelism = (int)Number(c, "SDD_EDIT_IO_PARALLELISM", d.IoParallelism, 1),
            MaxImagePixels = Number(c, "SDD_MAX_IMAGE_PIXELS", d.MaxImagePixels, 1),
            MaxInputBytes = Number(c, "SDD_MAX_INPUT_BYTES", d.MaxInputBytes, 1),
            MemoryMegabytes = Number(c, "SDD_EDIT_MEMORY_MB", d.MemoryMegabytes, 64),
            TrimSeconds = Number(c, "SDD_EDIT_TRIM_SECONDS", d.TrimSeconds, 0),
        };
    }

    private static long Number(IConfiguration c, string name, long fallback, long min) =>
        c[name] is { Length: > 0 } v
            ? long.TryParse(v, out var x) && x >= min ? x : throw new FormatException($"{name}='{v}' must be a whole number of at least {min}")
            : fallback;
}
