using TeacherRow = Sdd.Data.Entities.Teacher;

namespace Sdd.Distill.Training;

/// <summary>Everything a distillation chunk needs to know about its editor version; Settings are exactly what the API stored.</summary>
public sealed record DistillRequest(Guid EditorVersionId, string Attribute, int Version, TeacherRow Teacher, Guid? DatasetId, DistillSettings Settings, string Prefix);
