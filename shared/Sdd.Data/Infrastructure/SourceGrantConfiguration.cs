using Microsoft.EntityFrameworkCore;
using Microsoft.EntityFrameworkCore.Metadata.Builders;
using Sdd.Data.Entities;

namespace Sdd.Data.Infrastructure;

public sealed class SourceGrantConfiguration : IEntityTypeConfiguration<SourceGrant>
{
    public void Configure(EntityTypeBuilder<SourceGrant> b)
    {
        b.ToTable("source_grants");
        b.Property(g => g.Owner).HasMaxLength(200);
        b.Property(g => g.Bucket).HasMaxLength(63);
        b.Property(g => g.Prefix).HasMaxLength(1024);
        b.HasIndex(g => g.Owner);
    }
}
