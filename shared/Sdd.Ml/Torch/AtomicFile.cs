namespace Sdd.Ml.Torch;

/// <summary>Writes a checkpoint file through a temporary name and a rename, so a crash never leaves half a file.</summary>
public static class AtomicFile
{
    public static void Write(string path, Action<string> write)
    {
        var tmp = path + ".tmp";
        write(tmp);
        File.Move(tmp, path, overwrite: true);
    }
}
