using Sdd.Data.Entities;
using Sdd.Ml.Diffusion;
using Sdd.Ml.Torch;
using TeacherRow = Sdd.Data.Entities.Teacher;
using TeacherModel = Sdd.Ml.Diffusion.Teacher;

namespace Sdd.Distill.Training;

/// <summary>
/// Teachers (and their judges) copied from the models bucket to the work folder once per process, and the
/// last used teacher kept loaded: the chunks of a run usually follow each other on the same worker.
/// </summary>
public sealed class ModelCache(ObjectStore store, DistillOptions options) : IDisposable
{
    private readonly SemaphoreSlim _gate = new(1, 1);
    private (Guid Id, TeacherModel Model)? _loaded;

    /// <summary>The models-bucket prefix of a teacher: the folder of its WeightsKey, else its folder in the key layout.</summary>
    public static string Prefix(TeacherRow teacher)
    {
        var key = teacher.WeightsKey;
        if (string.IsNullOrEmpty(key)) return KeyLayout.Teacher(teacher.IsBuiltin ? null : teacher.Owner, teacher.Id);
        if (key.EndsWith('/')) return key;
        return key.EndsWith(".safetensors", StringComparison.Ordinal) || key.EndsWith(".json", StringComparison.Ordinal)
            ? key[..(key.LastIndexOf('/') + 1)]
            : key + "/";
    }

    /// <summary>A local folder with the teacher's config.json and model.safetensors, and judge/ when it has one.</summary>
    public async Task<string> TeacherDirAsync(TeacherRow teacher, CancellationToken ct)
    {
        var dir = Path.Combine(options.WorkDir, "teachers", teacher.Id.ToString("N"));
        if (File.Exists(Path.Combine(dir, "ready"))) return dir;
        var prefix = Prefix(teacher);
        Directory.CreateDirectory(Path.Combine(dir, "judge"));
        foreach (var file in new[] { TeacherModel.ConfigFile, TeacherModel.WeightsFile })
        {
            try { await DownloadAsync(prefix + file, Path.Combine(dir, file), ct); }
            catch (FileNotFoundException) { throw new Runs.RunFailure($"Teacher '{teacher.Name}' has no {file} at s3://{store.ModelsBucket}/{prefix}{file}."); }
        }
        foreach (var file in new[] { TeacherModel.ConfigFile, TeacherModel.WeightsFile })
            if (await store.StatAsync(store.ModelsBucket, prefix + "judge/" + file, ct) is not null)
                await DownloadAsync(prefix + "judge/" + file, Path.Combine(dir, "judge", file), ct);
        if (TeacherModel.ReadConfig(dir).Kind == TeacherConfig.KindLatentDdpm) // a latent teacher's autoencoder, vae/ beside it
        {
            const string vae = TeacherConfig.DefaultAutoencoderFolder;
            Directory.CreateDirectory(Path.Combine(dir, vae));
            foreach (var file in new[] { ModelFolder.ConfigFile, AutoencoderConfig.WeightsFile })
            {
                try { await DownloadAsync($"{prefix}{vae}/{file}", Path.Combine(dir, vae, file), ct); }
                catch (FileNotFoundException) { throw new Runs.RunFailure($"Latent teacher '{teacher.Name}' has no {vae}/{file} at s3://{store.ModelsBucket}/{prefix}{vae}/{file}."); }
            }
        }
        if (teacher.Status == TeacherStatus.Ready) await File.WriteAllTextAsync(Path.Combine(dir, "ready"), "", ct);
        return dir;
    }

    public static string? JudgeDir(string teacherDir) =>
        File.Exists(Path.Combine(teacherDir, "judge", TeacherModel.WeightsFile)) ? Path.Combine(teacherDir, "judge") : null;

    /// <summary>The loaded teacher; valid until the next call (one run at a time per worker).</summary>
    public async Task<TeacherModel> TeacherAsync(TeacherRow teacher, CancellationToken ct)
    {
        await _gate.WaitAsync(ct);
        try
        {
            if (_loaded is { } l && l.Id == teacher.Id) return l.Model;
            var dir = await TeacherDirAsync(teacher, ct);
            _loaded?.Model.Dispose();
            _loaded = null;
            var model = TeacherModel.Load(dir, TorchRuntime.Device);
            _loaded = (teacher.Id, model);
            return model;
        }
        finally { _gate.Release(); }
    }

    private async Task DownloadAsync(string key, string path, CancellationToken ct)
    {
        var tmp = path + ".tmp";
        await using (var file = File.Create(tmp)) await store.GetAsync(store.ModelsBucket, key, file, ct);
        File.Move(tmp, path, overwrite: true);
    }

    public void Dispose()
    {
        _loaded?.Model.Dispose();
        _gate.Dispose();
    }
}
