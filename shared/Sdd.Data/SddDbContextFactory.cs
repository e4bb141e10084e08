using Microsoft.EntityFrameworkCore.Design;
using Sdd.Configuration;

namespace Sdd.Data;

/// <summary>For dotnet-ef outside a host: the database from the SDD_POSTGRES_* variables.</summary>
public sealed class SddDbContextFactory : IDesignTimeDbContextFactory<SddDbContext>
{
    public SddDbContext CreateDbContext(string[] args) =>
        new(SddDb.Options(SddSettings.FromEnvironment().Postgres.ConnectionString()));
}
