using Npgsql;

namespace Sdd.Ingest;

public static class DbErrors
{
    public static bool IsUniqueViolation(this DbUpdateException e) =>
        e.InnerException is PostgresException { SqlState: PostgresErrorCodes.UniqueViolation };
}
