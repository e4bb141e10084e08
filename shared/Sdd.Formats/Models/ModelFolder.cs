using System.Text.Json;
using System.Text.Json.Serialization;

namespace Sdd.Formats.Models;

/// <summary>
/// A model folder (teacher, judge or editor): <c>config.json</c> (snake_case JSON) beside <c>model.safetensors</c>.
/// The one reader and writer of those configs, for the method and for the API (which registers teachers from them).
/// </summary>
public static class ModelFolder
{
    public const string ConfigFile = "config.json";
    public const string WeightsFile = "model.safetensors";

    public static readonly JsonSerializerOptions Json = new()
    {
        WriteIndented = true,
        PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower,
        Converters = { new JsonStringEnumConverter(JsonNamingPolicy.SnakeCaseLower) },
    };

    /// <summary>Parses a config's JSON; throws <see cref="InvalidDataException"/> naming <paramref name="source"/> when it is not one.</summary>
    public static T ParseConfig<T>(string json, string source)
    {
        try { return JsonSerializer.Deserialize<T>(json, Json) ?? throw new InvalidDataException($"'{source}' is empty."); }
        catch (JsonException e) { throw new InvalidDataException($"'{source}' is not a valid config: {e.Message}", e); }
    }

    /// <summary>Reads <c>config.json</c> of the folder; <paramref name="what"/> ("teacher", "editor") names it when missing.</summary>
    public static T ReadConfig<T>(string dir, string what)
    {
        var path = Path.Combine(dir, ConfigFile);
        if (!File.Exists(path)) throw new FileNotFoundException($"No {what} at '{dir}': {ConfigFile} is missing.", path);
        return ParseConfig<T>(File.ReadAllText(path), path);
    }

    public static string Serialize<T>(T config) => JsonSerializer.Serialize(config, Json);

    public static TeacherConfig ReadTeacher(string dir) => ReadConfig<TeacherConfig>(dir, "teacher");
}
