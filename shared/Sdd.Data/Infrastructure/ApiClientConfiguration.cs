using Microsoft.EntityFrameworkCore;
using Microsoft.EntityFrameworkCore.Metadata.Builders;
using Sdd.Data.Entities;

namespace Sdd.Data.Infrastructure;

public sealed class ApiClientConfiguration : IEntityTypeConfiguration<ApiClient>
{
    public void Configure(EntityTypeBuilder<ApiClient> b)
    {
        b.ToTable("api_clients");
        b.Property(c => c.Name).HasMaxLength(200);
        b.HasIndex(c => c.Name).IsUnique();
        b.Property(c => c.KeyHash).HasMaxLength(64);
        b.Property(c => c.WebhookSecret).HasMaxLength(64);
        b.HasIndex(c => c.KeyHash).IsUnique();
    }
}
