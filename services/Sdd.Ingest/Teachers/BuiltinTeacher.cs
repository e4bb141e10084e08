using Npgsql;

namespace Sdd.Ingest.Teachers;

/// <summary>
/// Registers the teachers shipped in <c>shared/models</c> as builtin: uploads each one's files to
/// <c>teachers/&lt;id&gt;/</c> (its judge to <c>judge/</c>, a latent teacher's autoencoder to <c>vae/</c>) in the models
/// bucket and inserts its row. <c>builtin</c> is the 128 px latent teacher of <c>shared/models/latent128</c> (judge in its
/// <c>judge/</c>) when that is shipped, and the 32 px pixel teacher of <c>shared/models/teacher</c> (judge in
/// <c>shared/models/judge</c>) otherwise; with both shipped the pixel teacher is <c>builtin-32</c>. A registry made before
/// keeps its rows (a name already registered is left alone), so its editors keep their teacher: where <c>builtin</c> is
/// already the pixel teacher, the latent one is registered as <c>builtin-128</c>. Idempotent; two Ingest processes
/// starting together queue on an advisory lock.
/// </summary>
public sealed class BuiltinTeacher(SddDbContext db, ObjectStore store, IngestSettings settings, ILogger<BuiltinTeacher> log)
{
    public const string Name = "builtin";
    public const string PixelName = "builtin-32";
    /// <summary>The latent teacher's name on a registry whose <see cref="Name"/> was already the pixel teacher.</summary>
    public const string LatentName = "builtin-128";
    public const string LatentFolder = ShippedModels.LatentTeacherFolder;
    private const long LockKey = 0x5DD_0002;
    private static readonly string[] Files = [ModelFolder.ConfigFile, ModelFolder.WeightsFile];

    public async Task RegisterAsync(CancellationToken ct = default)
    {
        var home = FindHome(settings.Home);
        if (home is null)
        {
            log.LogWarning("Builtin teacher not registered: missing {Missing}", "shared/models (no SDD_HOME and no SDD.sln above the app)");
            return;
        }
        var latent = ShippedModels.LatentTeacher(home);
        var pixel = (Teacher: ShippedModels.PixelTeacher(home), Judge: ShippedModels.PixelJudge(home));
        if (File.Exists(Path.Combine(latent, ModelFolder.ConfigFile)))
        {
            // A registry made before the latent teacher shipped has the pixel teacher as builtin, with its editors: it keeps
            // that name, and the latent teacher comes in beside it as builtin-128.
            var existing = await db.Teachers.Where(t => t.IsBuiltin && t.Name == Name).Select(t => t.Kind).FirstOrDefaultAsync(ct);
            if (existing is not null && existing != TeacherConfig.KindLatentDdpm)
                await RegisterAsync(LatentName, latent, ShippedModels.JudgeOf(latent), ct);
            else
            {
                await RegisterAsync(Name, latent, ShippedModels.JudgeOf(latent), ct);
                await RegisterAsync(PixelName, pixel.Teacher, pixel.Judge, ct);
            }
        }
        else await RegisterAsync(Name, pixel.Teacher, pixel.Judge, ct);
    }

    private async Task RegisterAsync(string name, string teacherDir, string judgeDir, CancellationToken ct)
    {
        if (await db.Teachers.AnyAsync(t => t.IsBuiltin && t.Name == name, ct)) return;
        var missing = Files.Select(f => Path.Combine(teacherDir, f)).Concat(Files.Select(f => Path.Combine(judgeDir, f))).Where(p => !File.Exists(p)).ToList();
        if (missing.Count > 0)
        {
            log.LogWarning("Builtin teacher {Name} not registered: missing {Missing}", name, string.Join(", ", missing));
            return;
        }

        var configPath = Path.Combine(teacherDir, ModelFolder.ConfigFile);
        var configJson = await File.ReadAllTextAsync(configPath, ct);
        var config = ModelFolder.ParseConfig<TeacherConfig>(configJson, configPath); // the method's own reader of model folders
        var attributes = config.AttributeNames.ToList();
        var imageSize = config.Unet.ImageSize;
        var kind = config.Kind;
        // A latent teacher's autoencoder travels with it (vae/); its images are the latent's side times the downsampling.
        string[] vaeFiles = [];
        if (kind == TeacherConfig.KindLatentDdpm)
        {
            if ((config.Autoencoder ?? TeacherConfig.DefaultAutoencoderFolder) != TeacherConfig.DefaultAutoencoderFolder)
            {
                log.LogWarning("Builtin teacher {Name} not registered: its autoencoder must be in {Folder}/, not {Given}", name, TeacherConfig.DefaultAutoencoderFolder, config.Autoencoder);
                return;
            }
            var vaeDir = Path.Combine(teacherDir, TeacherConfig.DefaultAutoencoderFolder);
            vaeFiles = [ModelFolder.ConfigFile, AutoencoderConfig.WeightsFile];
            var absent = vaeFiles.Select(f => Path.Combine(vaeDir, f)).Where(p => !File.Exists(p)).ToList();
            if (absent.Count > 0)
            {
                log.LogWarning("Builtin teacher {Name} not registered: missing {Missing}", name, string.Join(", ", absent));
                return;
            }
            var vaeConfigPath = Path.Combine(vaeDir, ModelFolder.ConfigFile);
            imageSize *= ModelFolder.ParseConfig<AutoencoderConfig>(await File.ReadAllTextAsync(vaeConfigPath, ct), vaeConfigPath).Downsampling;
        }

        await using var tx = await db.Database.BeginTransactionAsync(ct);
        await db.Database.ExecuteSqlAsync($"SELECT pg_advisory_xact_lock({LockKey})", ct);
        if (await db.Teachers.AnyAsync(t => t.IsBuiltin && t.Name == name, ct)) return; // another process won the race
        var id = Guid.NewGuid();
        var prefix = KeyLayout.Teacher(owner: null, id);
        foreach (var file in Files)
        {
            await using (var f = File.OpenRead(Path.Combine(teacherDir, file))) await store.PutAsync(store.ModelsBucket, prefix + file, f, ContentType(file), ct);
            await using (var f = File.OpenRead(Path.Combine(judgeDir, file))) await store.PutAsync(store.ModelsBucket, prefix + "judge/" + file, f, ContentType(file), ct);
        }
        foreach (var file in vaeFiles)
            await using (var f = File.OpenRead(Path.Combine(teacherDir, TeacherConfig.DefaultAutoencoderFolder, file)))
                await store.PutAsync(store.ModelsBucket, prefix + TeacherConfig.DefaultAutoencoderFolder + "/" + file, f, ContentType(file), ct);
        db.Teachers.Add(new Teacher
        {
            Id = id, Name = name, Kind = kind, Resolution = imageSize, AttributeNames = attributes, SettingsJson = configJson,
            Status = TeacherStatus.Ready, WeightsKey = prefix, IsBuiltin = true, IsPublished = true, CreatedAt = DateTimeOffset.UtcNow,
        });
        try
        {
            await db.SaveChangesAsync(ct);
            await tx.CommitAsync(ct);
            log.LogInformation("Registered the builtin teacher {Name} {Id} ({Attributes}, {Size}px) from {Dir}", name, id, string.Join(", ", attributes), imageSize, teacherDir);
        }
        catch (DbUpdateException e) when (e.InnerException is PostgresException { SqlState: PostgresErrorCodes.UniqueViolation })
        {
            log.LogInformation("The builtin teacher {Name} was registered by another process", name);
        }
    }

    /// <summary>SDD_HOME, else the first folder above the app that holds SDD.sln.</summary>
    public static string? FindHome(string? configured)
    {
        if (!string.IsNullOrEmpty(configured)) return configured;
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
            if (File.Exists(Path.Combine(dir.FullName, "SDD.sln"))) return dir.FullName;
        return null;
    }

    private static string ContentType(string file) => file.EndsWith(".json", StringComparison.Ordinal) ? "application/json" : "application/octet-stream";
}
