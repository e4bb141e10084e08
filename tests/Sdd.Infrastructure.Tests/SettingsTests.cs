using System.Text.RegularExpressions;
using Microsoft.Extensions.Configuration;

namespace Sdd.Infrastructure.Tests;

public class SettingsTests
{
    [Fact]
    public void Defaults_are_those_of_deploy_local_env_sh()
    {
        var envSh = Path.Combine(RepositoryRoot(), "deploy", "local", "env.sh");
        var defaults = File.ReadLines(envSh)
            .Select(line => Regex.Match(line, @"^: ""\$\{(SDD_[A-Z0-9_]+):=([^}]*)\}"""))
            .Where(m => m.Success)
            .ToDictionary(m => m.Groups[1].Value, m => m.Groups[2].Value);

        var fromScript = SddSettings.From(new ConfigurationBuilder().AddInMemoryCollection(defaults!).Build());
        var builtIn = SddSettings.From(new ConfigurationBuilder().Build());

        Assert.Equal(builtIn, fromScript);
        Assert.Contains("SDD_POSTGRES_PASSWORD", defaults.Keys);
        Assert.Contains("SDD_S3_BUCKET_JOBS", defaults.Keys);
    }

    [Fact]
    public void Variables_override_defaults()
    {
        var config = new ConfigurationBuilder().AddInMemoryCollection(new Dictionary<string, string?>
        {
            ["SDD_POSTGRES_PORT"] = "6000",
            ["SDD_POSTGRES_DB"] = "other",
            ["SDD_S3_ENDPOINT"] = "https://minio.example:9443",
            ["SDD_S3_BUCKET_MODELS"] = "models-x",
            ["SDD_RABBITMQ_VHOST"] = "sdd",
        }).Build();

        var settings = SddSettings.From(config);

        Assert.Equal(6000, settings.Postgres.Port);
        Assert.Contains("Database=other", settings.Postgres.ConnectionString());
        Assert.Contains("Database=x", settings.Postgres.ConnectionString("x"));
        Assert.Equal("https", settings.S3.Endpoint.Scheme);
        Assert.Equal("models-x", settings.S3.ModelsBucket);
        Assert.Equal("sdd", settings.RabbitMq.VirtualHost);
        Assert.Equal("guest", settings.RabbitMq.User);
    }

    [Fact]
    public void A_port_that_is_not_a_number_is_refused_by_name()
    {
        var config = new ConfigurationBuilder().AddInMemoryCollection(new Dictionary<string, string?> { ["SDD_RABBITMQ_PORT"] = "amqp" }).Build();

        var e = Assert.Throws<FormatException>(() => SddSettings.From(config));
        Assert.Contains("SDD_RABBITMQ_PORT", e.Message);
    }

    internal static string RepositoryRoot()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
            if (File.Exists(Path.Combine(dir.FullName, "deploy", "local", "env.sh"))) return dir.FullName;
        throw new DirectoryNotFoundException("deploy/local/env.sh not found above " + AppContext.BaseDirectory);
    }
}
