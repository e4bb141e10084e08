using Sdd.Storage;

namespace Sdd.Infrastructure.Tests;

public class ObjectKeyTests
{
    [Theory]
    [InlineData("a")]
    [InlineData("portraits/images/0001.png")]
    [InlineData("editors/smiling/3/weights.safetensors")]
    [InlineData("with space/ünïcödé.png")]
    [InlineData("a..b/c.d")]
    public void Ordinary_keys_are_accepted(string key) => Assert.Equal(key, ObjectKey.Validate(key));

    [Theory]
    [InlineData("", "empty")]
    [InlineData("/abs/key", "starts with '/'")]
    [InlineData("a//b", "empty segment")]
    [InlineData("a/b/", "empty segment")]
    [InlineData("a/../b", "'..' segment")]
    [InlineData("..", "'..' segment")]
    [InlineData("a/./b", "'.' segment")]
    [InlineData("a\nb", "control character")]
    [InlineData("a\u0000b", "control character")]
    public void Bad_keys_are_refused_with_the_reason(string key, string reason)
    {
        var e = Assert.Throws<ArgumentException>(() => ObjectKey.Validate(key));
        Assert.Contains(reason, e.Message);
        Assert.Equal("key", e.ParamName);
    }

    [Fact]
    public void Keys_longer_than_1024_utf8_bytes_are_refused()
    {
        Assert.Equal(1024, ObjectKey.Validate(new string('a', 1024)).Length);
        Assert.Throws<ArgumentException>(() => ObjectKey.Validate(new string('a', 1025)));
        Assert.Throws<ArgumentException>(() => ObjectKey.Validate(new string('é', 513))); // 1026 bytes
    }

    [Fact]
    public void Prefixes_may_be_empty_or_end_with_a_slash()
    {
        Assert.Equal("", ObjectKey.ValidatePrefix(""));
        Assert.Equal("job/input/", ObjectKey.ValidatePrefix("job/input/"));
        Assert.Throws<ArgumentException>(() => ObjectKey.ValidatePrefix("../x/"));
        Assert.Throws<ArgumentException>(() => ObjectKey.ValidatePrefix("x//"));
    }

    [Fact]
    public async Task The_store_refuses_a_bad_key_before_any_request()
    {
        // Nothing listens on this port: a request would fail differently.
        using var store = new ObjectStore(new S3Settings { Endpoint = new Uri("http://127.0.0.1:1") });
        await Assert.ThrowsAsync<ArgumentException>(() => store.PutAsync("b", "a/../etc/passwd", [1, 2, 3]));
        await Assert.ThrowsAsync<ArgumentException>(() => store.StatAsync("b", "/x"));
        await Assert.ThrowsAsync<ArgumentException>(() => store.PresignGetAsync("b", "a//b", TimeSpan.FromMinutes(1)));
    }
}
