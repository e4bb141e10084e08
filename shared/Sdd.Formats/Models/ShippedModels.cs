namespace Sdd.Formats.Models;

/// <summary>
/// Where the models the project ships live under its home (<c>shared/models</c>): the 32 px pixel teacher and its judge,
/// and the 128 px latent teacher with its own judge and autoencoder. The one home of these folder names, for the CLI's
/// defaults and the API's builtin teachers.
/// </summary>
public static class ShippedModels
{
    public const string PixelTeacherFolder = "teacher";
    public const string PixelJudgeFolder = "judge";
    public const string LatentTeacherFolder = "latent128";
    /// <summary>A teacher's own judge, inside its folder (as <c>teacher train</c> writes it).</summary>
    public const string TeacherJudgeFolder = "judge";

    public static string Root(string home) => Path.Combine(home, "shared", "models");
    public static string PixelTeacher(string home) => Path.Combine(Root(home), PixelTeacherFolder);
    public static string PixelJudge(string home) => Path.Combine(Root(home), PixelJudgeFolder);
    public static string LatentTeacher(string home) => Path.Combine(Root(home), LatentTeacherFolder);
    public static string JudgeOf(string teacherDir) => Path.Combine(teacherDir, TeacherJudgeFolder);
}
