using Microsoft.EntityFrameworkCore;
using Microsoft.EntityFrameworkCore.Metadata.Builders;
using Sdd.Data.Entities;

namespace Sdd.Data.Infrastructure;

public sealed class WebhookDeliveryConfiguration : IEntityTypeConfiguration<WebhookDelivery>
{
    public void Configure(EntityTypeBuilder<WebhookDelivery> b)
    {
        b.ToTable("webhook_deliveries");
        b.Property(d => d.Owner).HasMaxLength(200);
        b.Property(d => d.SubjectKind).HasMaxLength(16);
        b.Property(d => d.Event).HasMaxLength(32);
        b.Property(d => d.Url).HasMaxLength(2048);
        b.Property(d => d.State).HasConversion<string>().HasMaxLength(16);
        b.Property(d => d.Version).IsRowVersion(); // xmin
        b.HasIndex(d => new { d.SubjectId, d.Event }).IsUnique(); // one announcement per finish
        b.HasIndex(d => new { d.State, d.NextAttemptAt }); // what is due
    }
}
