namespace Sdd.Contracts;

/// <summary>
/// The receive endpoints commands are sent to (<c>queue:&lt;name&gt;</c>): the Distill worker listens on
/// <see cref="Distill"/> (TrainTeacher, DistillEditor and its own chunks), the Edit workers on <see cref="Edit"/> (EditBatch).
/// </summary>
public static class Queues
{
    public const string Distill = "distill";
    public const string Edit = "edit";

    public static Uri Address(string queue) => new($"queue:{queue}");
}
