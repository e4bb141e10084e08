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

    public static string Teacher => Path.Combine(Root, "shared", "models", "teacher");
    public static string Judge => Path.Combine(Root, "shared", "models", "judge");
}
