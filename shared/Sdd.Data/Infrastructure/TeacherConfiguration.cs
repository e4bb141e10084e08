using Microsoft.EntityFrameworkCore;
using Microsoft.EntityFrameworkCore.Metadata.Builders;
using Sdd.Data.Entities;

namespace Sdd.Data.Infrastructure;

public sealed class TeacherConfiguration : IEntityTypeConfiguration<Teacher>
{
    public void Configure(EntityTypeBuilder<Teacher> b)
    {
        b.ToTable("teachers");
        b.Property(t => t.Name).HasMaxLength(200);
        b.HasIndex(t => new { t.Owner, t.Name }).IsUnique(); // names are unique per owner
        b.Property(t => t.Kind).HasMaxLength(64);
        b.Property(t => t.Status).HasConversion<string>().HasMaxLength(32);
        b.Property(t => t.SettingsJson).HasColumnType("jsonb");
        b.Property(t => t.WeightsKey).HasMaxLength(1024);
        b.Property(t => t.Owner).HasMaxLength(200);
        b.HasOne(t => t.Dataset).WithMany().HasForeignKey(t => t.DatasetId).OnDelete(DeleteBehavior.Restrict);
    }
}
