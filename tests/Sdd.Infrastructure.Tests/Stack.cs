namespace Sdd.Infrastructure.Tests;

/// <summary>The servers started by deploy/local/stack.sh (or docker-compose), found through the SDD_* variables.</summary>
public static class Stack
{
    public static SddSettings Settings { get; } = SddSettings.FromEnvironment();

    /// <summary>A short name unique to this test run, for databases, buckets and virtual hosts.</summary>
    public static string UniqueName(string prefix) => $"{prefix}{Guid.NewGuid():N}"[..(prefix.Length + 12)];
}
