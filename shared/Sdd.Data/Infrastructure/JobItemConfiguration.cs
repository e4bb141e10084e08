using Microsoft.EntityFrameworkCore;
using Microsoft.EntityFrameworkCore.Metadata.Builders;
using Sdd.Data.Entities;

namespace Sdd.Data.Infrastructure;

public sealed class JobItemConfiguration : IEntityTypeConfiguration<JobItem>
{
    public void Configure(EntityTypeBuilder<JobItem> b)
    {
        b.ToTable("job_items");
        b.Property(i => i.SourceKey).HasMaxLength(1024);
        b.Property(i => i.OutputKey).HasMaxLength(1024);
        b.Property(i => i.State).HasConversion<string>().HasMaxLength(32);
        b.Property(i => i.Version).IsRowVersion(); // xmin
        b.HasIndex(i => new { i.JobId, i.State });
        b.Property(i => i.SourceBucket).HasMaxLength(63);
        b.Property(i => i.Name).HasMaxLength(1024);
        // The dispatch sweeper looks for pending items by when they were last sent.
        b.HasIndex(i => new { i.State, i.DispatchedAt });
    }
}
