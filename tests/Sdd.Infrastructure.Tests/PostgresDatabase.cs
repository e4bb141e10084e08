using Npgsql;

namespace Sdd.Infrastructure.Tests;

/// <summary>A fresh database on the stack's PostgreSQL, dropped at the end.</summary>
public sealed class PostgresDatabase : IAsyncLifetime, IAsyncDisposable
{
    public string Name { get; } = Stack.UniqueName("sdd_test_");
    public string ConnectionString => Stack.Settings.Postgres.ConnectionString(Name);

    public Task InitializeAsync() => Task.CompletedTask; // created by what is under test

    Task IAsyncLifetime.DisposeAsync() => DropAsync();
    async ValueTask IAsyncDisposable.DisposeAsync() => await DropAsync();

    public async Task DropAsync()
    {
        NpgsqlConnection.ClearAllPools();
        await using var connection = new NpgsqlConnection(Stack.Settings.Postgres.ConnectionString("postgres"));
        await connection.OpenAsync();
        await using var drop = new NpgsqlCommand($"DROP DATABASE IF EXISTS \"{Name}\" WITH (FORCE)", connection);
        await drop.ExecuteNonQueryAsync();
    }
}
