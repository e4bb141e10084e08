using System.Text;
using Microsoft.Extensions.DependencyInjection;
using Sdd.Ingest.Teachers;

namespace Sdd.Ingest.Tests;

/// <summary>An SDD_HOME that ships the 128 px latent teacher (latent128/ with judge/ and vae/) beside the 32 px one.</summary>
public sealed class LatentHomeHost : IngestHost
{
    protected override void WriteMoreModels(string models) => WriteLatent(models);

    public static void WriteLatent(string models)
    {
        var dir = Path.Combine(models, BuiltinTeacher.LatentFolder);
        foreach (var sub in new[] { "", "judge", "vae" }) Directory.CreateDirectory(Path.Combine(dir, sub));
        File.WriteAllText(Path.Combine(dir, "config.json"), JsonSerializer.Serialize(new
        {
            kind = "latent-ddpm", attribute_names = TeacherAttributes, autoencoder = "vae",
            unet = new { image_size = 32, attributes = 3, in_channels = 4 },
        }));
        File.WriteAllBytes(Path.Combine(dir, "model.safetensors"), Encoding.ASCII.GetBytes("fake latent teacher weights"));
        File.WriteAllText(Path.Combine(dir, "judge", "config.json"), JsonSerializer.Serialize(new { attribute_names = TeacherAttributes, image_size = 128 }));
        File.WriteAllBytes(Path.Combine(dir, "judge", "model.safetensors"), Encoding.ASCII.GetBytes("fake judge weights"));
        // Three levels: latents a quarter of the image side.
        File.WriteAllText(Path.Combine(dir, "vae", "config.json"), JsonSerializer.Serialize(new { _class_name = "AutoencoderKL", block_out_channels = new[] { 32, 64, 64 }, latent_channels = 4 }));
        File.WriteAllBytes(Path.Combine(dir, "vae", "diffusion_pytorch_model.safetensors"), Encoding.ASCII.GetBytes("fake vae weights"));
    }
}

/// <summary>With the latent teacher shipped, it is <c>builtin</c> (128 px, with its autoencoder) and the 32 px teacher stays as <c>builtin-32</c>.</summary>
public class ShippedTeachersTests(LatentHomeHost host) : IClassFixture<LatentHomeHost>
{
    [Fact]
    public async Task The_latent_teacher_is_builtin_at_128_px_with_its_autoencoder_and_the_pixel_teacher_stays_registered()
    {
        var (_, key) = await host.NewKeyAsync();
        using var client = host.Client(key);
        var builtins = (await client.AllAsync("/v1/teachers")).Where(t => t.GetProperty("builtin").GetBoolean())
            .ToDictionary(t => t.GetProperty("name").GetString()!);

        Assert.Equal([BuiltinTeacher.Name, BuiltinTeacher.PixelName], builtins.Keys.Order());
        var latent = builtins[BuiltinTeacher.Name];
        Assert.Equal("latent-ddpm", latent.GetProperty("kind").GetString());
        Assert.Equal(128, latent.GetProperty("imageSize").GetInt32());
        var pixel = builtins[BuiltinTeacher.PixelName];
        Assert.Equal("attribute-ddpm", pixel.GetProperty("kind").GetString());
        Assert.Equal(32, pixel.GetProperty("imageSize").GetInt32());

        var latentPrefix = KeyLayout.Teacher(null, latent.GetProperty("id").GetGuid());
        foreach (var file in new[] { "config.json", "model.safetensors", "judge/config.json", "judge/model.safetensors", "vae/config.json", "vae/diffusion_pytorch_model.safetensors" })
            Assert.NotNull(await host.Store.StatAsync(host.ModelsBucket, latentPrefix + file));
        var pixelPrefix = KeyLayout.Teacher(null, pixel.GetProperty("id").GetGuid());
        Assert.Equal("fake judge weights", await ReadAsync(latentPrefix + "judge/model.safetensors"));
        Assert.Equal("fake judge weights", await ReadAsync(pixelPrefix + "judge/model.safetensors"));
        Assert.Equal("fake teacher weights", await ReadAsync(pixelPrefix + "model.safetensors"));
        Assert.Null(await host.Store.StatAsync(host.ModelsBucket, pixelPrefix + "vae/config.json"));

        // Starting again registers nothing new.
        await using (var scope = host.Factory.Services.CreateAsyncScope())
            await scope.ServiceProvider.GetRequiredService<BuiltinTeacher>().RegisterAsync();
        await using var db = host.Db();
        Assert.Equal(2, await db.Teachers.CountAsync(t => t.IsBuiltin));
    }

    [Fact]
    public async Task A_registry_whose_builtin_is_the_pixel_teacher_keeps_it_and_gets_the_latent_teacher_as_builtin_128()
    {
        // A stack started before the latent teacher shipped: builtin is the 32 px teacher.
        var old = new IngestHost();
        await old.InitializeAsync();
        try
        {
            Guid pixelId;
            await using (var db = old.Db())
                pixelId = (await db.Teachers.SingleAsync(t => t.IsBuiltin)).Id;
            // The next release ships latent128; Ingest starts again on the same registry.
            LatentHomeHost.WriteLatent(Path.Combine(old.Home, "shared", "models"));
            for (int start = 0; start < 2; start++)
                await using (var scope = old.Factory.Services.CreateAsyncScope())
                    await scope.ServiceProvider.GetRequiredService<BuiltinTeacher>().RegisterAsync();

            await using var after = old.Db();
            var builtins = await after.Teachers.Where(t => t.IsBuiltin).ToDictionaryAsync(t => t.Name);
            Assert.Equal([BuiltinTeacher.Name, BuiltinTeacher.LatentName], builtins.Keys.Order());
            Assert.Equal(pixelId, builtins[BuiltinTeacher.Name].Id);
            Assert.Equal("attribute-ddpm", builtins[BuiltinTeacher.Name].Kind);
            Assert.Equal(("latent-ddpm", 128), (builtins[BuiltinTeacher.LatentName].Kind, builtins[BuiltinTeacher.LatentName].Resolution));
            Assert.NotNull(await old.Store.StatAsync(old.ModelsBucket, KeyLayout.Teacher(null, builtins[BuiltinTeacher.LatentName].Id) + "vae/config.json"));
        }
        finally { await old.DisposeAsync(); }
    }

    private async Task<string> ReadAsync(string key)
    {
        using var buffer = new MemoryStream();
        await host.Store.GetAsync(host.ModelsBucket, key, buffer);
        return Encoding.ASCII.GetString(buffer.ToArray());
    }
}
