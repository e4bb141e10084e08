using Sdd.Data.Entities;
using Sdd.Ml.Editors;
using Sdd.Ml.Torch;
using TeacherModel = Sdd.Ml.Diffusion.Teacher;

namespace Sdd.Edit.Editing;

/// <summary>An editor version that cannot be used: the items of its batches fail with this reason.</summary>
public sealed class EditorUnavailableException(string message, Exception? inner = null) : Exception(message, inner);

/// <summary>
/// Loaded editors by version, least recently used evicted beyond the capacity (SDD_EDITOR_CACHE). A lease keeps an
/// evicted editor alive until the batches using it finish; concurrent first uses load it once.
/// </summary>
public sealed class EditorCache(ObjectStore store, IDbContextFactory<SddDbContext> databases, EditOptions options, EditMetrics metrics, ILogger<EditorCache> log) : IDisposable
{
    /// <summary>The largest editor weights file read (editors are about 1 M parameters, 4 MB).</summary>
    public const long MaxEditorBytes = 256L << 20;

    internal sealed class Entry(Guid id, Task<Editor> loading)
    {
        public Guid Id { get; } = id;
        public Task<Editor> Loading { get; } = loading;
        public int Users;
        public bool Evicted;
    }

    private readonly object _gate = new();
    private readonly LinkedList<Entry> _recent = new(); // most recent first
    private readonly Dictionary<Guid, LinkedListNode<Entry>> _byId = [];

    /// <summary>The use of a loaded editor; dispose it when the batch is done.</summary>
    public sealed class Lease : IDisposable
    {
        private readonly EditorCache _cache;
        private readonly Entry _entry;
        private int _released;

        internal Lease(EditorCache cache, Entry entry, Editor editor) { _cache = cache; _entry = entry; Editor = editor; }

        public Editor Editor { get; }
        public void Dispose() { if (Interlocked.Exchange(ref _released, 1) == 0) _cache.Release(_entry); }
    }

    public int Count { get { lock (_gate) return _byId.Count; } }

    public async Task<Lease> AcquireAsync(Guid versionId, CancellationToken ct)
    {
        Entry entry;
        lock (_gate)
        {
            if (_byId.TryGetValue(versionId, out var node))
            {
                _recent.Remove(node);
                _recent.AddFirst(node);
                entry = node.Value;
                metrics.Editor(hit: true);
            }
            else
            {
                entry = new Entry(versionId, LoadAsync(versionId));
                metrics.Editor(hit: false);
                _byId[versionId] = _recent.AddFirst(entry);
                while (_byId.Count > options.EditorCache && _recent.Last is { } last && last != _recent.First) Evict(last.Value);
            }
            entry.Users++;
        }
        try
        {
            return new Lease(this, entry, await entry.Loading.WaitAsync(ct));
        }
        catch
        {
            lock (_gate)
            {
                // A failed load is not cached: the next batch tries again.
                if (_byId.TryGetValue(versionId, out var node) && node.Value == entry && entry.Loading.IsFaulted) { _byId.Remove(versionId); _recent.Remove(node); }
            }
            Release(entry);
            throw;
        }
    }

    private void Evict(Entry entry)
    {
        _recent.Remove(_byId[entry.Id]);
        _byId.Remove(entry.Id);
        entry.Evicted = true;
        if (entry.Users == 0) DisposeLoaded(entry);
    }

    private void Release(Entry entry)
    {
        lock (_gate)
        {
            entry.Users--;
            if (entry.Evicted && entry.Users == 0) DisposeLoaded(entry);
        }
    }

    private static void DisposeLoaded(Entry entry)
    {
        if (entry.Loading.IsCompletedSuccessfully) entry.Loading.Result.Dispose();
        else entry.Loading.ContinueWith(t => { if (t.IsCompletedSuccessfully) t.Result.Dispose(); }, TaskScheduler.Default);
    }

    private async Task<Editor> LoadAsync(Guid versionId)
    {
        await Task.Yield();
        await using var db = await databases.CreateDbContextAsync();
        var version = await db.EditorVersions.AsNoTracking().Where(e => e.Id == versionId)
            .Select(e => new { e.Version, e.Status, e.WeightsKey, Attribute = e.Attribute!.Name }).SingleOrDefaultAsync()
            ?? throw new EditorUnavailableException($"Editor version {versionId} does not exist.");
        if (version.Status != EditorStatus.Ready || string.IsNullOrEmpty(version.WeightsKey))
            throw new EditorUnavailableException($"Editor version {version.Version} of '{version.Attribute}' is not ready (it is {version.Status.ToString().ToLowerInvariant()}).");
        var prefix = version.WeightsKey.EndsWith('/') ? version.WeightsKey : version.WeightsKey + "/";
        string config;
        byte[] weights;
        byte[]? domain = null;
        try
        {
            config = System.Text.Encoding.UTF8.GetString(await store.GetBytesAsync(store.ModelsBucket, prefix + TeacherModel.ConfigFile, ObjectStore.MaxSmallObjectBytes));
            weights = await store.GetBytesAsync(store.ModelsBucket, prefix + TeacherModel.WeightsFile, MaxEditorBytes);
            // The domain gate's statistics, when the config names a gate (an editor made before the gate has none).
            if (Editor.ReadsDomain(config))
                domain = await store.GetBytesAsync(store.ModelsBucket, prefix + DomainGate.WeightsFile, MaxEditorBytes);
        }
        catch (ObjectTooLargeException e)
        {
            throw new EditorUnavailableException($"Editor version {version.Version} of '{version.Attribute}': its files are larger than an editor's ({e.Message})");
        }
        catch (FileNotFoundException e)
        {
            throw new EditorUnavailableException($"Editor version {version.Version} of '{version.Attribute}' has no files at s3://{store.ModelsBucket}/{prefix}: {e.Message}", e);
        }
        var editor = Editor.Load(config, weights, TorchRuntime.Device, domain);
        log.LogInformation("Loaded editor {Attribute} v{Version} ({Parameters:N0} parameters, {Size}px) on {Device}; domain gate {Gate}",
            version.Attribute, version.Version, editor.ParameterCount, editor.Size, editor.Device,
            editor.Domain is { } g ? $"threshold {g.Config.Threshold} ({g.Config.CalibrationPassRate:P1} of {g.Config.CalibrationImages} {g.Config.CalibratedOn} images pass)" : "none (an editor made before the gate: nothing is refused)");
        return editor;
    }

    public void Dispose()
    {
        lock (_gate)
        {
            foreach (var e in _recent) if (e.Users == 0) DisposeLoaded(e);
            _recent.Clear();
            _byId.Clear();
        }
    }
}
