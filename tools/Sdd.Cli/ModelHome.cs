using Sdd.Formats.Models;
using Sdd.Ml.Judging;

namespace Sdd.Cli;

/// <summary>Where the models shipped with the project live (<c>$SDD_HOME/shared/models</c>).</summary>
public static class ModelHome
{
    public static string Root
    {
        get
        {
            var env = Environment.GetEnvironmentVariable("SDD_HOME");
            if (!string.IsNullOrEmpty(env)) return env;
            for (var d = new DirectoryInfo(AppContext.BaseDirectory); d is not null; d = d.Parent)
                if (File.Exists(Path.Combine(d.FullName, "SDD.sln")) || File.Exists(Path.Combine(d.FullName, "sdd"))) return d.FullName;
            return Directory.GetCurrentDirectory();
        }
    }

    public static string Teacher => ShippedModels.PixelTeacher(Root);
    public static string Judge => ShippedModels.PixelJudge(Root);

    /// <summary>
    /// The judge for a teacher when none is named: the teacher's own (<c>TEACHER/judge</c>, trained at its size by
    /// <c>teacher train</c>; the 128 px latent teacher ships one), else the shipped <see cref="Judge"/> (32 px). The 32 px
    /// judge reads a 128 px teacher's samples scaled down and misjudges them (hat 74 % where the teacher's own judge says 91 %).
    /// </summary>
    public static string JudgeFor(string teacherDir)
    {
        var own = ShippedModels.JudgeOf(teacherDir);
        return File.Exists(Path.Combine(own, ModelFolder.ConfigFile)) ? own : Judge;
    }

    /// <summary>
    /// The judge for editors that work at <paramref name="size"/> px when none is named: the shipped judge of that size (the
    /// latent teacher's own at 128 px, <see cref="Judge"/> at 32 px), else <see cref="Judge"/>.
    /// </summary>
    public static string JudgeForSize(int size)
    {
        foreach (var dir in new[] { Judge, ShippedModels.JudgeOf(ShippedModels.LatentTeacher(Root)) })
            if (File.Exists(Path.Combine(dir, ModelFolder.ConfigFile)) && ModelFolder.ReadConfig<JudgeConfig>(dir, "judge").ImageSize == size) return dir;
        return Judge;
    }
}
