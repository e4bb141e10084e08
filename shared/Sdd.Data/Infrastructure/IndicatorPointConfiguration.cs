using Microsoft.EntityFrameworkCore;
using Microsoft.EntityFrameworkCore.Metadata.Builders;
using Sdd.Data.Entities;

namespace Sdd.Data.Infrastructure;

public sealed class IndicatorPointConfiguration : IEntityTypeConfiguration<IndicatorPoint>
{
    public void Configure(EntityTypeBuilder<IndicatorPoint> b)
    {
        b.ToTable("indicator_points");
        b.HasIndex(p => new { p.EditorVersionId, p.T }).IsUnique();
    }
}
