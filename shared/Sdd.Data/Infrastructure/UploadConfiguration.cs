using Microsoft.EntityFrameworkCore;
using Microsoft.EntityFrameworkCore.Metadata.Builders;
using Sdd.Data.Entities;

namespace Sdd.Data.Infrastructure;

public sealed class UploadConfiguration : IEntityTypeConfiguration<Upload>
{
    public void Configure(EntityTypeBuilder<Upload> b)
    {
        b.ToTable("uploads");
        b.Property(u => u.Owner).HasMaxLength(200);
        b.HasIndex(u => u.Owner);
    }
}
