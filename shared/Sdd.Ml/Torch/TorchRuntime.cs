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

    /// <summary>
    /// Sets the intra-op thread count explicitly and flushes denormal floats to zero (call once at process start,
    /// before any parallel torch work, so that LibTorch's worker threads inherit the setting).
    /// </summary>
    public static int ConfigureThreads(int? threads = null)
    {
        var env = Environment.GetEnvironmentVariable("SDD_TORCH_THREADS");
        int n = threads ?? (int.TryParse(env, out var e) && e > 0 ? e : Environment.ProcessorCount);
        set_num_threads(n);
        FlushDenormals = SetFlushDenormal(true);
        return n;
    }

    /// <summary>Whether denormal flushing is on for this process.</summary>
    public static bool FlushDenormals { get; private set; }

    /// <summary>
    /// Tiny weights and Adam moments become denormal floats during training and make CPU steps several times
    /// slower. TorchSharp has no set_flush_denormal, so LibTorch's at::globalContext().setFlushDenormal is called
    /// directly (Itanium C++ ABI: the context is passed as the first argument). Returns false where unavailable.
    /// </summary>
    public static unsafe bool SetFlushDenormal(bool on)
    {
        if (!OperatingSystem.IsLinux()) return false;
        try
        {
            _ = get_num_threads(); // make sure LibTorch is loaded
            var dir = Path.GetDirectoryName(typeof(torch).Assembly.Location)!;
            string[] candidates = [Path.Combine(dir, "runtimes", "linux-x64", "native", "libtorch_cpu.so"), Path.Combine(dir, "libtorch_cpu.so"), "libtorch_cpu.so"];
            foreach (var c in candidates)
            {
                if (!System.Runtime.InteropServices.NativeLibrary.TryLoad(c, out var lib)) continue;
                if (!System.Runtime.InteropServices.NativeLibrary.TryGetExport(lib, "_ZN2at13globalContextEv", out var ctxFn)) continue;
                if (!System.Runtime.InteropServices.NativeLibrary.TryGetExport(lib, "_ZN2at7Context16setFlushDenormalEb", out var setFn)) continue;
                var context = ((delegate* unmanaged<IntPtr>)ctxFn)();
                return ((delegate* unmanaged<IntPtr, byte, byte>)setFn)(context, on ? (byte)1 : (byte)0) != 0;
            }
        }
        catch (Exception) { /* no LibTorch symbol: leave denormals as they are */ }
        return false;
    }

    /// <summary>
    /// Hands the native heap's free pages back to the system (glibc <c>malloc_trim(0)</c>; a no-op elsewhere). LibTorch
    /// frees a forward pass's tensors into glibc's arenas, which keep them: a long-running process's RSS then creeps up
    /// to the worst overlap of its allocations rather than staying at its working set. Costs a walk of the free lists
    /// (milliseconds), so call it between units of work, not inside them. Returns whether memory was released.
    /// </summary>
    public static bool TrimNativeHeap()
    {
        if (!OperatingSystem.IsLinux()) return false;
        try { return MallocTrim(0) != 0; }
        catch (Exception e) when (e is DllNotFoundException or EntryPointNotFoundException) { return false; } // not glibc (musl)
    }

    [System.Runtime.InteropServices.DllImport("libc", EntryPoint = "malloc_trim")]
    private static extern int MallocTrim(nuint pad);

    public static void Seed(long seed)
    {
        random.manual_seed(seed);
        manual_seed(seed);
    }
}
