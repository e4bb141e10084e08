using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.DependencyInjection;
using Npgsql;
using Sdd.Configuration;

namespace Sdd.Data;

/// <summary>Opening and migrating the SDD database.</summary>
public static class SddDb
{
    // Any fixed 64-bit number shared by every process that migrates this schema.
    private const long MigrationLockKey = 0x5DD_0001;

    public static DbContextOptions<SddDbContext> Options(string connectionString) =>
        new DbContextOptionsBuilder<SddDbContext>().UseNpgsql(connectionString).Options;

    /// <summary>
    /// Creates the database if it is missing and applies pending migrations. Safe to call from every
    /// service at start, also from several processes at once: they queue on a PostgreSQL advisory lock
    /// and all but the first find nothing to do.
    /// </summary>
    public static async Task MigrateAsync(string connectionString, CancellationToken ct = default)
    {
        await EnsureDatabaseAsync(connectionString, ct);
        await using var connection = new NpgsqlConnection(connectionString);
        await connection.OpenAsync(ct);
        await ExecuteAsync(connection, $"SELECT pg_advisory_lock({MigrationLockKey})", ct);
        try
        {
            var options = new DbContextOptionsBuilder<SddDbContext>().UseNpgsql(connection).Options;
            await using var db = new SddDbContext(options);
            await db.Database.MigrateAsync(ct);
        }
        finally
        {
            // Closing the session would release it too; unlock so a pooled connection never keeps it.
            await ExecuteAsync(connection, $"SELECT pg_advisory_unlock({MigrationLockKey})", CancellationToken.None);
        }
    }

    /// <summary>CREATE DATABASE unless it exists; a concurrent creator winning the race is fine.</summary>
    public static async Task EnsureDatabaseAsync(string connectionString, CancellationToken ct = default)
    {
        var target = new NpgsqlConnectionStringBuilder(connectionString);
        var name = target.Database ?? throw new ArgumentException("The connection string names no database", nameof(connectionString));
        var admin = new NpgsqlConnectionStringBuilder(connectionString) { Database = "postgres", Pooling = false };
        await using var connection = new NpgsqlConnection(admin.ConnectionString);
        await connection.OpenAsync(ct);
        await using (var exists = new NpgsqlCommand("SELECT 1 FROM pg_database WHERE datname = @name", connection))
        {
            exists.Parameters.AddWithValue("name", name);
            if (await exists.ExecuteScalarAsync(ct) is not null) return;
        }
        try
        {
            await ExecuteAsync(connection, $"CREATE DATABASE \"{name.Replace("\"", "\"\"")}\"", ct);
        }
        catch (PostgresException e) when (e.SqlState is PostgresErrorCodes.DuplicateDatabase or PostgresErrorCodes.UniqueViolation)
        {
        }
    }

    private static async Task ExecuteAsync(NpgsqlConnection connection, string sql, CancellationToken ct)
    {
        await using var command = new NpgsqlCommand(sql, connection);
        await command.ExecuteNonQueryAsync(ct);
    }
}
