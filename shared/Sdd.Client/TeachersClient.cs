namespace Sdd.Client;

public enum TeacherState { Pending, Training, Ready, Failed }

/// <summary><see cref="Shared"/>: another owner's (or the service's) published teacher; <see cref="DatasetId"/> only on one's own.</summary>
public sealed record Teacher(Guid Id, string Name, string Kind, IReadOnlyList<string> Attributes, int ImageSize, TeacherState State, Guid? DatasetId,
    bool Builtin, bool Published, bool Shared);

/// <summary>Train a teacher on one of the caller's data sets; <see cref="Webhook"/> hears of the run's end (<see cref="WebhookEvents"/>).</summary>
public sealed record TrainTeacher(Guid DatasetId, int? Steps = null, int? ImageSize = null, string? Webhook = null, IReadOnlyList<string>? WebhookEvents = null);

public sealed record TeacherAccepted(Guid TeacherId, Guid RunId);

/// <summary><c>/v1/teachers</c>: the diffusion models editors are distilled from.</summary>
public sealed class TeachersClient
{
    private readonly ApiTransport _api;
    internal TeachersClient(ApiTransport api) => _api = api;

    public Task<TeacherAccepted> TrainAsync(TrainTeacher request, CancellationToken ct = default) =>
        _api.SendJsonAsync<TrainTeacher, TeacherAccepted>(HttpMethod.Post, "/v1/teachers", request, ct);

    public Task<Teacher> GetAsync(Guid id, CancellationToken ct = default) => _api.GetAsync<Teacher>($"/v1/teachers/{id}", ct);

    public Task<Page<Teacher>> ListAsync(string? cursor = null, int? limit = null, CancellationToken ct = default) =>
        _api.GetPageAsync<Teacher>("/v1/teachers", cursor, limit, ct);

    public IAsyncEnumerable<Teacher> ListAllAsync(CancellationToken ct = default) => Pages.AllAsync((c, t) => ListAsync(c, null, t), ct);

    /// <summary>Admin: every key may then distil editors from it.</summary>
    public Task<Teacher> PublishAsync(Guid id, CancellationToken ct = default) => _api.SendAsync<Teacher>(HttpMethod.Post, $"/v1/teachers/{id}/publish", ct);

    public Task<Teacher> UnpublishAsync(Guid id, CancellationToken ct = default) =>
        _api.SendAsync<Teacher>(HttpMethod.Delete, $"/v1/teachers/{id}/publish", ct);
}
