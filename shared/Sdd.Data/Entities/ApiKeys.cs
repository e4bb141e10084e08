using System.Security.Cryptography;
using System.Text;

namespace Sdd.Data.Entities;

/// <summary>API keys: random, shown once, stored as a SHA-256 hash (keys are long and random, so no salt is needed).</summary>
public static class ApiKeys
{
    public static string NewKey() => Convert.ToBase64String(RandomNumberGenerator.GetBytes(32))
        .TrimEnd('=').Replace('+', '-').Replace('/', '_');

    public static string Hash(string key) => Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(key)));
}
