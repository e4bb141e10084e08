namespace Sdd.Data.Entities;

/// <summary>A row the API lists page by page: ordered by creation, ties broken by id (the cursor holds both).</summary>
public interface IListed
{
    Guid Id { get; }
    DateTimeOffset CreatedAt { get; }
}
