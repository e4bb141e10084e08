using System.Globalization;
using System.Text.Json;
using Sdd.Ml.Editors;
using Sdd.Ml.Guidance;
using TeacherRow = Sdd.Data.Entities.Teacher;

namespace Sdd.Distill.Training;

/// <summary>Everything a distillation chunk needs to know about its editor version.</summary>
public sealed record DistillRequest(Guid EditorVersionId, string Attribute, int Version, TeacherRow Teacher, Guid? DatasetId, DistillSettings Settings, string Prefix)
{
    /// <summary>
    /// The API's settings JSON ({ steps, mode, scale, lambda, timesteps, batch, lr, seed }, any casing) as distillation
    /// settings; the run's TotalSteps wins over steps.
    /// </summary>
    public static DistillSettings ParseSettings(string? json, int totalSteps)
    {
        var d = new DistillSettings();
        var o = new Dictionary<string, JsonElement>(StringComparer.OrdinalIgnoreCase);
        if (!string.IsNullOrWhiteSpace(json))
        {
            using var doc = JsonDocument.Parse(json);
            if (doc.RootElement.ValueKind == JsonValueKind.Object)
                foreach (var p in doc.RootElement.EnumerateObject()) o[p.Name.Replace("_", "")] = p.Value.Clone();
        }
        double Num(string name, double fallback) => o.TryGetValue(name, out var v) && v.ValueKind != JsonValueKind.Null
            ? v.ValueKind == JsonValueKind.Number ? v.GetDouble()
              : double.TryParse(v.GetString(), NumberStyles.Float, CultureInfo.InvariantCulture, out var x) ? x
              : throw new ArgumentException($"Setting '{name}' must be a number, got {v}.")
            : fallback;
        string? Str(string name) => o.TryGetValue(name, out var v) && v.ValueKind == JsonValueKind.String ? v.GetString() : null;

        var mode = (Str("mode") ?? "delta").ToLowerInvariant() switch
        {
            "delta" => GuidanceMode.Delta,
            "sds" => GuidanceMode.Sds,
            var m => throw new ArgumentException($"Setting 'mode' must be delta or sds, got '{m}'."),
        };
        int steps = totalSteps > 0 ? totalSteps : (int)Num("steps", 300);
        if (steps < 1) throw new ArgumentException("Setting 'steps' must be at least 1.");
        var s = new DistillSettings
        {
            Steps = steps,
            BatchSize = Math.Clamp((int)Num(o.ContainsKey("batchSize") ? "batchSize" : "batch", d.BatchSize), 1, 1024),
            LearningRate = Num(o.ContainsKey("learningRate") ? "learningRate" : "lr", d.LearningRate),
            WeightDecay = Num("weightDecay", d.WeightDecay),
            Lambda = Num("lambda", d.Lambda),
            Guidance = new GuidanceSettings { Mode = mode, Scale = Num("scale", mode == GuidanceMode.Delta ? 10 : 30), TopK = (int)Num("topk", 0) },
            Timesteps = Str("timesteps") ?? "hqs",
            CheckpointEvery = int.MaxValue,
            Seed = (long)Num("seed", d.Seed),
        };
        if (s.Timesteps != "hqs") TimestepSampler.Parse(s.Timesteps, 1000); // a bad rule fails now, with its reason
        return s;
    }
}
