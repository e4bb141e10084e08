using Sdd.Data.Entities;
using Sdd.Ml.Diffusion;
using Sdd.Ml.StableDiffusion;
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
    private (Guid Id, string? Prompt, string? SourcePrompt, TeacherModel Model)? _loaded;

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
        if (teacher.Kind == TeacherConfig.KindStableDiffusion)
        {
            // An imported pipeline: every file the import copied, as it lay (a diffusers folder, or one .safetensors with tokenizer/).
            var found = false;
            await foreach (var o in store.ListAsync(store.ModelsBucket, prefix, ct))
            {
                var relative = o.Key[prefix.Length..];
                if (relative.StartsWith(KeyLayout.CheckpointsFolder, StringComparison.Ordinal)) continue;
                var path = Path.GetFullPath(Path.Combine(dir, relative));
                if (!path.StartsWith(Path.GetFullPath(dir) + Path.DirectorySeparatorChar, StringComparison.Ordinal)) continue;
                Directory.CreateDirectory(Path.GetDirectoryName(path)!);
                await DownloadAsync(o.Key, path, ct);
                found = true;
            }
            if (!found) throw new Runs.RunFailure($"Teacher '{teacher.Name}' has no files at s3://{store.ModelsBucket}/{prefix}; import it again.");
            if (teacher.Status == TeacherStatus.Ready) await File.WriteAllTextAsync(Path.Combine(dir, "ready"), "", ct);
            return dir;
        }
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
    /// <summary>
    /// The loaded teacher; valid until the next call (one run at a time per worker). A Stable Diffusion teacher is loaded
    /// for one prompt attribute: <paramref name="attribute"/>, <paramref name="prompt"/> and <paramref name="sourcePrompt"/>.
    /// </summary>
    public async Task<TeacherModel> TeacherAsync(TeacherRow teacher, CancellationToken ct, string? attribute = null, string? prompt = null, string? sourcePrompt = null)
    {
        await _gate.WaitAsync(ct);
        try
        {
            if (_loaded is { } l && l.Id == teacher.Id && l.Prompt == prompt && l.SourcePrompt == sourcePrompt) return l.Model;
            var dir = await TeacherDirAsync(teacher, ct);
            _loaded?.Model.Dispose();
            _loaded = null;
            TeacherModel model;
            if (teacher.Kind == TeacherConfig.KindStableDiffusion)
            {
                if (string.IsNullOrWhiteSpace(prompt) || attribute is null) throw new Runs.RunFailure($"Teacher '{teacher.Name}' is a Stable Diffusion teacher: its attribute needs a prompt.");
                model = StableDiffusionModel.LoadTeacher(PipelinePath(dir), attribute, prompt, sourcePrompt, configDir: dir, device: TorchRuntime.Device);
            }
            else model = TeacherModel.Load(dir, TorchRuntime.Device);
            _loaded = (teacher.Id, prompt, sourcePrompt, model);
            return model;
        }
        finally { _gate.Release(); }
    }

    /// <summary>An imported pipeline's folder (diffusers), or its one top-level .safetensors (an original single file).</summary>
    private static string PipelinePath(string dir) =>
        File.Exists(Path.Combine(dir, "model_index.json")) ? dir
        : Directory.EnumerateFiles(dir, "*.safetensors").SingleOrDefault() ?? throw new Runs.RunFailure($"{dir}: neither model_index.json nor one .safetensors file.");

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
