using Microsoft.EntityFrameworkCore;
using Microsoft.EntityFrameworkCore.Metadata.Builders;
using Sdd.Data.Entities;

namespace Sdd.Data.Infrastructure;

public sealed class ImageAttributeConfiguration : IEntityTypeConfiguration<ImageAttribute>
{
    public void Configure(EntityTypeBuilder<ImageAttribute> b)
    {
        b.ToTable("attributes");
        b.Property(a => a.Name).HasMaxLength(100);
        b.HasIndex(a => new { a.Owner, a.Name }).IsUnique(); // names are unique per owner
        b.HasIndex(a => a.Name).HasFilter("\"IsPublished\"").IsUnique(); // and among published attributes
        b.Property(a => a.Owner).HasMaxLength(200);
        b.Property(a => a.TargetAttribute).HasMaxLength(100);
        b.Property(a => a.Prompt).HasMaxLength(ImageAttribute.MaxPromptLength);
        b.Property(a => a.SourcePrompt).HasMaxLength(ImageAttribute.MaxPromptLength);
        b.HasOne<Teacher>().WithMany().HasForeignKey(a => a.TeacherId).OnDelete(DeleteBehavior.Restrict);
        b.HasOne<Dataset>().WithMany().HasForeignKey(a => a.DatasetId).OnDelete(DeleteBehavior.Restrict);
    }
}
