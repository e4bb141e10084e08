using Microsoft.EntityFrameworkCore;
using Microsoft.EntityFrameworkCore.Metadata.Builders;
using Sdd.Data.Entities;

namespace Sdd.Data.Infrastructure;

public sealed class TrainingRunConfiguration : IEntityTypeConfiguration<TrainingRun>
{
    public void Configure(EntityTypeBuilder<TrainingRun> b)
    {
        b.Property(r => r.WebhookUrl).HasMaxLength(2048);
        b.Property(r => r.WebhookEvents).HasMaxLength(200);
        b.ToTable("training_runs");
        b.Property(r => r.Kind).HasConversion<string>().HasMaxLength(32);
        b.Property(r => r.State).HasConversion<string>().HasMaxLength(32);
        b.Property(r => r.Owner).HasMaxLength(200);
        b.Property(r => r.Worker).HasMaxLength(200);
        b.Property(r => r.CheckpointKey).HasMaxLength(1024);
        b.Property(r => r.Version).IsRowVersion(); // xmin
        b.HasIndex(r => r.State);
        b.HasOne<Teacher>().WithMany().HasForeignKey(r => r.TeacherId).OnDelete(DeleteBehavior.Restrict);
        b.HasOne<EditorVersion>().WithMany().HasForeignKey(r => r.EditorVersionId).OnDelete(DeleteBehavior.Restrict);
    }
}
