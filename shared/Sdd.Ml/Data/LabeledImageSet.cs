using Sdd.Formats.Datasets;
using TorchSharp;
using static TorchSharp.torch;

namespace Sdd.Ml.Data;

/// <summary>A problem with a labeled data set, naming the file and line.</summary>
public sealed class DatasetException(string message, Exception? inner = null) : Exception(message, inner);

/// <summary>One row of a CelebA-style attribute table: an image name and +1/-1 per attribute.</summary>
public sealed record LabeledImage(string Name, sbyte[] Labels);

/// <summary>
/// A labeled image set in the CelebA layout: <c>labels.csv</c> (read by <see cref="LabelsCsv"/>: header
/// <c>image,attr1,attr2,...</c>; values 1 or -1, 0 for unknown) and the images under <c>images/</c>. Reads from a folder, or from any
/// source of named byte streams (object storage).
/// </summary>
public sealed class LabeledImageSet
{
    public IReadOnlyList<string> Attributes { get; }
    public IReadOnlyList<LabeledImage> Rows { get; }
    private readonly Func<string, byte[]> _readImage;

    private LabeledImageSet(IReadOnlyList<string> attributes, IReadOnlyList<LabeledImage> rows, Func<string, byte[]> readImage)
    {
        Attributes = attributes;
        Rows = rows;
        _readImage = readImage;
    }

    public int AttributeIndex(string attribute)
    {
        for (int i = 0; i < Attributes.Count; i++) if (Attributes[i] == attribute) return i;
        throw new DatasetException($"The data set has no attribute '{attribute}' (it has: {string.Join(", ", Attributes)}).");
    }

    public static LabeledImageSet OpenFolder(string dir)
    {
        if (!Directory.Exists(dir)) throw new DatasetException($"Data set folder '{dir}' does not exist.");
        var labels = Path.Combine(dir, LabelsCsv.FileName);
        if (!File.Exists(labels)) throw new DatasetException($"'{labels}' is missing: a data set needs labels.csv beside images/.");
        var imagesDir = Path.Combine(dir, "images");
        return Parse(File.ReadAllBytes(labels), labels, name =>
        {
            var path = Path.Combine(imagesDir, name);
            if (!File.Exists(path)) throw new DatasetException($"Image '{path}' listed in labels.csv is missing.");
            return File.ReadAllBytes(path);
        });
    }

    /// <summary>The most images a plain photo set is read with.</summary>
    public const int MaxPlainImages = 100_000;

    /// <summary>
    /// Plain photos for a text-prompt attribute: the images in the folder's <c>images/</c> (or in the folder itself when it
    /// has none), sorted by name, every one lacking <paramref name="attribute"/>; a labels.csv beside them is ignored.
    /// </summary>
    public static LabeledImageSet OpenPlainFolder(string dir, string attribute)
    {
        if (!Directory.Exists(dir)) throw new DatasetException($"Data set folder '{dir}' does not exist.");
        var imagesDir = Directory.Exists(Path.Combine(dir, "images")) ? Path.Combine(dir, "images") : dir;
        var names = Directory.EnumerateFiles(imagesDir).Where(ImageCodec.IsImageFile).Select(Path.GetFileName).Order(StringComparer.Ordinal).Take(MaxPlainImages + 1).ToList();
        if (names.Count == 0) throw new DatasetException($"'{imagesDir}' holds no images ({string.Join(", ", ImageCodec.ReadableExtensions)}).");
        if (names.Count > MaxPlainImages) throw new DatasetException($"'{imagesDir}' holds more than {MaxPlainImages} images.");
        return Plain(attribute, names!, name => File.ReadAllBytes(Path.Combine(imagesDir, name)));
    }

    /// <summary>The same images as a plain photo set for <paramref name="attribute"/>: every one lacking it, the labels not read.</summary>
    public LabeledImageSet AsPlain(string attribute) => Plain(attribute, Rows.Select(r => r.Name).ToList(), _readImage);

    /// <summary>Named images from any source, all lacking <paramref name="attribute"/> (a prompt attribute's photos).</summary>
    public static LabeledImageSet Plain(string attribute, IReadOnlyList<string> names, Func<string, byte[]> readImage) =>
        new([attribute], names.Select(n => new LabeledImage(n, [-1])).ToArray(), readImage);

    /// <summary>Parses labels.csv (<see cref="LabelsCsv"/>, the parser the API validates with); <paramref name="source"/> names it in errors.</summary>
    public static LabeledImageSet Parse(byte[] csv, string source, Func<string, byte[]> readImage)
    {
        LabelsCsv table;
        try { table = LabelsCsv.Parse(csv, source); }
        catch (InvalidDataException e) { throw new DatasetException(e.Message, e); }
        return new LabeledImageSet(table.Attributes, table.Rows.Select(r => new LabeledImage(r.Image, r.Labels)).ToArray(), readImage);
    }

    /// <summary>Parses labels.csv text (see the byte overload).</summary>
    public static LabeledImageSet Parse(string csv, string source, Func<string, byte[]> readImage) =>
        Parse(System.Text.Encoding.UTF8.GetBytes(csv), source, readImage);

    /// <summary>Reads one image, resized and centre-cropped to <paramref name="size"/>, as (3, S, S) in [-1, 1].</summary>
    public Tensor LoadImage(int row, int size)
    {
        var name = Rows[row].Name;
        try
        {
            using var img = ImageCodec.Decode(_readImage(name));
            ImageCodec.ResizeCenterCrop(img, size);
            return ImageCodec.ToTensor(img);
        }
        catch (ImageDecodeException e) { throw new DatasetException($"Image '{name}': {e.Message}", e); }
    }

    /// <summary>Loads rows into one tensor (N, 3, S, S) and labels (N, A) of +1/-1/0, in parallel.</summary>
    public (Tensor Images, Tensor Labels) Load(int size, IReadOnlyList<int>? rows = null)
    {
        rows ??= Enumerable.Range(0, Rows.Count).ToArray();
        var pixels = new byte[rows.Count][];
        try
        {
        Parallel.For(0, rows.Count, i =>
        {
            var name = Rows[rows[i]].Name;
            try
            {
                using var img = ImageCodec.Decode(_readImage(name));
                ImageCodec.ResizeCenterCrop(img, size);
                pixels[i] = ImageCodec.ToRgb24(img);
            }
            catch (ImageDecodeException e) { throw new DatasetException($"Image '{name}': {e.Message}", e); }
        });
        }
        catch (AggregateException e) when (e.InnerExceptions.FirstOrDefault() is DatasetException first)
        {
            throw new DatasetException(first.Message, first); // the first bad image, named
        }
        var flat = new byte[rows.Count * size * size * 3];
        for (int i = 0; i < rows.Count; i++) Buffer.BlockCopy(pixels[i], 0, flat, i * size * size * 3, size * size * 3);
        var labels = new float[rows.Count * Attributes.Count];
        for (int i = 0; i < rows.Count; i++)
            for (int a = 0; a < Attributes.Count; a++) labels[i * Attributes.Count + a] = Rows[rows[i]].Labels[a];

        using var scope = NewDisposeScope();
        var images = tensor(flat, [rows.Count, size, size, 3], ScalarType.Byte).permute(0, 3, 1, 2).to_type(ScalarType.Float32).div(127.5).sub(1.0).contiguous();
        var lab = tensor(labels, [rows.Count, Attributes.Count]);
        return (images.MoveToOuterDisposeScope(), lab.MoveToOuterDisposeScope());
    }

    /// <summary>
    /// The method's three disjoint splits: of every ten rows the tenth is test (the rows <see cref="Split"/> holds out),
    /// the ninth validation (every choice, e.g. the automatic guidance scale), the rest train.
    /// </summary>
    public (int[] Train, int[] Validation, int[] Test) Splits()
    {
        var train = new List<int>(); var validation = new List<int>(); var test = new List<int>();
        for (int i = 0; i < Rows.Count; i++) (i % 10 == 9 ? test : i % 10 == 8 ? validation : train).Add(i);
        return (train.ToArray(), validation.ToArray(), test.ToArray());
    }

    /// <summary>A deterministic split: every <paramref name="every"/>-th row is held out.</summary>
    public (int[] Train, int[] Held) Split(int every = 10)
    {
        var train = new List<int>(); var held = new List<int>();
        for (int i = 0; i < Rows.Count; i++) (i % every == every - 1 ? held : train).Add(i);
        return (train.ToArray(), held.ToArray());
    }
}
