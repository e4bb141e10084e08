using TeacherRow = Sdd.Data.Entities.Teacher;

namespace Sdd.Distill.Training;

/// <summary>Everything a distillation chunk needs to know about its editor version; Settings are exactly what the API stored.</summary>
/// <remarks><see cref="Prompt"/> and <see cref="SourcePrompt"/>: a text-prompt attribute's, on a Stable Diffusion teacher.</remarks>
public sealed record DistillRequest(Guid EditorVersionId, string Attribute, int Version, TeacherRow Teacher, Guid? DatasetId, DistillSettings Settings, string Prefix,
    string? Prompt = null, string? SourcePrompt = null)
{
    public bool Prompted => Teacher.Kind == TeacherConfig.KindStableDiffusion;
}
