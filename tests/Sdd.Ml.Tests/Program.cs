using Sdd.Ml.Portraits;

namespace Sdd.Ml.Tests;

/// <summary>
/// Entry point used only by <see cref="PortraitTests"/>: <c>portrait-fingerprint SEED COUNT</c> prints what the
/// generator makes in a fresh process, so a test can compare it with the test process.
/// </summary>
public static class Program
{
    public static int Main(string[] args)
    {
        if (args.Length == 3 && args[0] == "portrait-fingerprint")
        {
            Console.WriteLine(PortraitTests.Fingerprint(int.Parse(args[1]), int.Parse(args[2])));
            return 0;
        }
        Console.Error.WriteLine("usage: portrait-fingerprint SEED COUNT");
        return 2;
    }
}
