using Microsoft.EntityFrameworkCore;
using Microsoft.EntityFrameworkCore.Metadata.Builders;
using Sdd.Data.Entities;

namespace Sdd.Data.Infrastructure;

public sealed class WorkerReportConfiguration : IEntityTypeConfiguration<WorkerReport>
{
    public void Configure(EntityTypeBuilder<WorkerReport> b)
    {
        b.ToTable("workers");
        b.HasKey(w => w.Name);
        b.Property(w => w.Name).HasMaxLength(200);
        b.Property(w => w.Service).HasMaxLength(32);
        b.Property(w => w.Device).HasMaxLength(200);
        b.HasIndex(w => new { w.Service, w.HeartbeatAt });
    }
}
