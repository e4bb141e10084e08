using System.Text.Json;
using System.Text.Json.Serialization;

namespace Sdd.Ml.Torch;

/// <summary>
/// What a resumable training run saves besides weights: the step, the random generator's state and the smoothed loss,
/// which is NaN until the first step (a chunk whose budget ended before it trained one still checkpoints) and written
/// as the string "NaN" then; JSON has no other way to hold it.
/// </summary>
public sealed record TrainingState(int Step, string GeneratorState,
    [property: JsonNumberHandling(JsonNumberHandling.AllowNamedFloatingPointLiterals)] double SmoothedLoss)
{
    public static TrainingState Capture(int step, Generator generator, double smoothedLoss)
    {
        using var s = generator.get_state();
        return new TrainingState(step, Convert.ToBase64String(s.data<byte>().ToArray()), smoothedLoss);
    }

    public void Restore(Generator generator)
    {
        var bytes = Convert.FromBase64String(GeneratorState);
        using var s = tensor(bytes, ScalarType.Byte);
        generator.set_state(s);
    }

    public void Save(string path) => File.WriteAllText(path, JsonSerializer.Serialize(this));

    public static TrainingState Load(string path) =>
        JsonSerializer.Deserialize<TrainingState>(File.ReadAllText(path)) ?? throw new InvalidDataException($"'{path}' is empty.");
}

/// <summary>One report from a training loop.</summary>
public readonly record struct TrainingProgress(int Step, int TotalSteps, double Loss, double StepsPerSecond)
{
    public TimeSpan Eta => StepsPerSecond > 0 ? TimeSpan.FromSeconds((TotalSteps - Step) / StepsPerSecond) : TimeSpan.Zero;
}
