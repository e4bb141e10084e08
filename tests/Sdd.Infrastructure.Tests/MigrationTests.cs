using Microsoft.EntityFrameworkCore;
using Npgsql;
using Sdd.Data;

namespace Sdd.Infrastructure.Tests;

/// <summary>Against the stack's real PostgreSQL, each test in a database of its own.</summary>
public class MigrationTests
{
    [Fact]
    public async Task Migrations_apply_to_an_empty_database_and_again()
    {
        await using var database = new PostgresDatabase();

        await SddDb.MigrateAsync(database.ConnectionString);
        var first = await AppliedMigrations(database.ConnectionString);
        await SddDb.MigrateAsync(database.ConnectionString);

        await using var db = new SddDbContext(SddDb.Options(database.ConnectionString));
        Assert.Equal(db.Database.GetMigrations(), first);
        Assert.Equal(first, await AppliedMigrations(database.ConnectionString));
        Assert.Empty(await db.Database.GetPendingMigrationsAsync());
        Assert.Equal(0, await db.EditJobs.CountAsync());
        Assert.True(await TableExists(database.ConnectionString, "job_items"));
    }

    [Fact]
    public async Task Concurrent_migrators_all_succeed_and_apply_each_migration_once()
    {
        await using var database = new PostgresDatabase();

        await Task.WhenAll(Enumerable.Range(0, 4).Select(_ => Task.Run(() => SddDb.MigrateAsync(database.ConnectionString))));

        await using var db = new SddDbContext(SddDb.Options(database.ConnectionString));
        Assert.Equal(db.Database.GetMigrations(), await AppliedMigrations(database.ConnectionString));
        Assert.True(await TableExists(database.ConnectionString, "editor_versions"));
    }

    private static async Task<List<string>> AppliedMigrations(string connectionString)
    {
        await using var connection = new NpgsqlConnection(connectionString);
        await connection.OpenAsync();
        await using var command = new NpgsqlCommand("SELECT \"MigrationId\" FROM \"__EFMigrationsHistory\" ORDER BY 1", connection);
        await using var reader = await command.ExecuteReaderAsync();
        var ids = new List<string>();
        while (await reader.ReadAsync()) ids.Add(reader.GetString(0));
        return ids;
    }

    private static async Task<bool> TableExists(string connectionString, string table)
    {
        await using var connection = new NpgsqlConnection(connectionString);
        await connection.OpenAsync();
        await using var command = new NpgsqlCommand("SELECT to_regclass(@t) IS NOT NULL", connection);
        command.Parameters.AddWithValue("t", table);
        return (bool)(await command.ExecuteScalarAsync())!;
    }
}
