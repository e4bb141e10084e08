namespace Sdd.Ml.Torch;

/// <summary>
/// The one place that picks the torch device and thread count. Device: <c>SDD_TORCH_DEVICE</c> (cpu, cuda,
/// cuda:N) or CUDA when available, else CPU. Threads: <c>SDD_TORCH_THREADS</c> or the processor count.
/// </summary>
public static class TorchRuntime
{
    private static readonly object Gate = new();
    private static Device? _device;

    public static Device Device
    {
        get
        {
            lock (Gate) return _device ??= Choose(Environment.GetEnvironmentVariable("SDD_TORCH_DEVICE"));
        }
    }

    public static Device Choose(string? wanted)
    {
        if (!string.IsNullOrWhiteSpace(wanted) && wanted != "auto")
        {
            var d = new Device(wanted);
            if (d.type == DeviceType.CUDA && !cuda.is_available())
                throw new InvalidOperationException($"SDD_TORCH_DEVICE={wanted} but CUDA is not available in this build or on this host.");
            return d;
        }
        return cuda.is_available() ? CUDA : CPU;
    }

    /// <summary>Sets the intra-op thread count explicitly (call once at process start).</summary>
    public static int ConfigureThreads(int? threads = null)
    {
        var env = Environment.GetEnvironmentVariable("SDD_TORCH_THREADS");
        int n = threads ?? (int.TryParse(env, out var e) && e > 0 ? e : Environment.ProcessorCount);
        set_num_threads(n);
        return n;
    }

    public static void Seed(long seed)
    {
        random.manual_seed(seed);
        manual_seed(seed);
    }
}
