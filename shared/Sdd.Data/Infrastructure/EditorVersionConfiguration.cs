using Microsoft.EntityFrameworkCore;
using Microsoft.EntityFrameworkCore.Metadata.Builders;
using Sdd.Data.Entities;

namespace Sdd.Data.Infrastructure;

public sealed class EditorVersionConfiguration : IEntityTypeConfiguration<EditorVersion>
{
    public void Configure(EntityTypeBuilder<EditorVersion> b)
    {
        b.ToTable("editor_versions");
        b.HasIndex(e => new { e.AttributeId, e.Version }).IsUnique();
        // At most one active editor per attribute.
        b.HasIndex(e => e.AttributeId).IsUnique().HasFilter("\"IsActive\"").HasDatabaseName("IX_editor_versions_active");
        b.Property(e => e.Status).HasConversion<string>().HasMaxLength(32);
        b.Property(e => e.SettingsJson).HasColumnType("jsonb");
        b.Property(e => e.MetricsJson).HasColumnType("jsonb");
        b.Property(e => e.WeightsKey).HasMaxLength(1024);
        b.HasOne(e => e.Attribute).WithMany().HasForeignKey(e => e.AttributeId).OnDelete(DeleteBehavior.Restrict);
        b.HasOne(e => e.Teacher).WithMany().HasForeignKey(e => e.TeacherId).OnDelete(DeleteBehavior.Restrict);
        b.HasMany(e => e.IndicatorPoints).WithOne().HasForeignKey(p => p.EditorVersionId).OnDelete(DeleteBehavior.Cascade);
    }
}
