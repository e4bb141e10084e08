namespace Sdd.Client;

/// <summary>
/// An <see cref="IProgress{T}"/> that calls its action at once, on the reporting thread, in order — what progress bars
/// over this client's uploads and waits want (<see cref="Progress{T}"/> posts each report to the thread pool, out of order).
/// </summary>
public sealed class InlineProgress<T>(Action<T> report) : IProgress<T>
{
    public void Report(T value) => report(value);
}
