using Microsoft.EntityFrameworkCore;
using Microsoft.EntityFrameworkCore.Metadata.Builders;
using Sdd.Data.Entities;

namespace Sdd.Data.Infrastructure;

public sealed class EditJobConfiguration : IEntityTypeConfiguration<EditJob>
{
    public void Configure(EntityTypeBuilder<EditJob> b)
    {
        b.ToTable("edit_jobs");
        b.Property(j => j.Owner).HasMaxLength(200);
        b.Property(j => j.State).HasConversion<string>().HasMaxLength(32);
        b.Property(j => j.Version).IsRowVersion(); // xmin
        b.Property(j => j.OutputFormat).HasMaxLength(8);
        b.Property(j => j.WebhookUrl).HasMaxLength(2048);
        b.Property(j => j.WebhookEvents).HasMaxLength(200);
        b.Property(j => j.OutOfDomain).HasMaxLength(8);
        b.HasIndex(j => new { j.Owner, j.CreatedAt }); // a client's jobs, newest first
        b.HasOne(j => j.Attribute).WithMany().HasForeignKey(j => j.AttributeId).OnDelete(DeleteBehavior.Restrict);
        b.HasOne(j => j.EditorVersion).WithMany().HasForeignKey(j => j.EditorVersionId).OnDelete(DeleteBehavior.Restrict);
        b.HasMany(j => j.Items).WithOne().HasForeignKey(i => i.JobId).OnDelete(DeleteBehavior.Cascade);
    }
}
