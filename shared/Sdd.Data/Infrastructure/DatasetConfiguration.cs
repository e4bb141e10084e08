using Microsoft.EntityFrameworkCore;
using Microsoft.EntityFrameworkCore.Metadata.Builders;
using Sdd.Data.Entities;

namespace Sdd.Data.Infrastructure;

public sealed class DatasetConfiguration : IEntityTypeConfiguration<Dataset>
{
    public void Configure(EntityTypeBuilder<Dataset> b)
    {
        b.ToTable("datasets");
        b.Property(d => d.Name).HasMaxLength(200);
        b.HasIndex(d => new { d.Owner, d.Name }).IsUnique(); // names are unique per owner
        b.Property(d => d.Owner).HasMaxLength(200);
        b.Property(d => d.Bucket).HasMaxLength(63);
        b.Property(d => d.Prefix).HasMaxLength(1024);
    }
}
