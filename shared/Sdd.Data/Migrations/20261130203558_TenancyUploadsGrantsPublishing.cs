using System;
using Microsoft.EntityFrameworkCore.Migrations;

#nullable disable

namespace Sdd.Data.Migrations
{
    /// <inheritdoc />
    public partial class TenancyUploadsGrantsPublishing : Migration
    {
        /// <inheritdoc />
        protected override void Up(MigrationBuilder migrationBuilder)
        {
            migrationBuilder.DropIndex(
                name: "IX_teachers_Name",
                table: "teachers");

            migrationBuilder.DropIndex(
                name: "IX_datasets_Name",
                table: "datasets");

            migrationBuilder.DropIndex(
                name: "IX_datasets_Owner",
                table: "datasets");

            migrationBuilder.DropIndex(
                name: "IX_attributes_Name",
                table: "attributes");

            migrationBuilder.AddColumn<bool>(
                name: "IsPublished",
                table: "teachers",
                type: "boolean",
                nullable: false,
                defaultValue: false);

            migrationBuilder.AddColumn<bool>(
                name: "IsPublished",
                table: "attributes",
                type: "boolean",
                nullable: false,
                defaultValue: false);

            migrationBuilder.AddColumn<DateTimeOffset>(
                name: "LastUsedAt",
                table: "api_clients",
                type: "timestamp with time zone",
                nullable: true);

            migrationBuilder.AddColumn<DateTimeOffset>(
                name: "RevokedAt",
                table: "api_clients",
                type: "timestamp with time zone",
                nullable: true);

            // Builtin teachers were visible to every key before publishing existed: they stay so.
            migrationBuilder.Sql("UPDATE teachers SET \"IsPublished\" = TRUE WHERE \"IsBuiltin\";");

            migrationBuilder.CreateTable(
                name: "source_grants",
                columns: table => new
                {
                    Id = table.Column<Guid>(type: "uuid", nullable: false),
                    Owner = table.Column<string>(type: "character varying(200)", maxLength: 200, nullable: false),
                    Bucket = table.Column<string>(type: "character varying(63)", maxLength: 63, nullable: false),
                    Prefix = table.Column<string>(type: "character varying(1024)", maxLength: 1024, nullable: false),
                    CreatedAt = table.Column<DateTimeOffset>(type: "timestamp with time zone", nullable: false),
                    RevokedAt = table.Column<DateTimeOffset>(type: "timestamp with time zone", nullable: true)
                },
                constraints: table =>
                {
                    table.PrimaryKey("PK_source_grants", x => x.Id);
                });

            migrationBuilder.CreateTable(
                name: "uploads",
                columns: table => new
                {
                    Id = table.Column<Guid>(type: "uuid", nullable: false),
                    Owner = table.Column<string>(type: "character varying(200)", maxLength: 200, nullable: false),
                    CreatedAt = table.Column<DateTimeOffset>(type: "timestamp with time zone", nullable: false),
                    ExpiresAt = table.Column<DateTimeOffset>(type: "timestamp with time zone", nullable: false)
                },
                constraints: table =>
                {
                    table.PrimaryKey("PK_uploads", x => x.Id);
                });

            migrationBuilder.CreateIndex(
                name: "IX_teachers_Owner_Name",
                table: "teachers",
                columns: new[] { "Owner", "Name" },
                unique: true);

            migrationBuilder.CreateIndex(
                name: "IX_datasets_Owner_Name",
                table: "datasets",
                columns: new[] { "Owner", "Name" },
                unique: true);

            migrationBuilder.CreateIndex(
                name: "IX_attributes_Name",
                table: "attributes",
                column: "Name",
                unique: true,
                filter: "\"IsPublished\"");

            migrationBuilder.CreateIndex(
                name: "IX_attributes_Owner_Name",
                table: "attributes",
                columns: new[] { "Owner", "Name" },
                unique: true);

            migrationBuilder.CreateIndex(
                name: "IX_source_grants_Owner",
                table: "source_grants",
                column: "Owner");

            migrationBuilder.CreateIndex(
                name: "IX_uploads_Owner",
                table: "uploads",
                column: "Owner");
        }

        /// <inheritdoc />
        protected override void Down(MigrationBuilder migrationBuilder)
        {
            migrationBuilder.DropTable(
                name: "source_grants");

            migrationBuilder.DropTable(
                name: "uploads");

            migrationBuilder.DropIndex(
                name: "IX_teachers_Owner_Name",
                table: "teachers");

            migrationBuilder.DropIndex(
                name: "IX_datasets_Owner_Name",
                table: "datasets");

            migrationBuilder.DropIndex(
                name: "IX_attributes_Name",
                table: "attributes");

            migrationBuilder.DropIndex(
                name: "IX_attributes_Owner_Name",
                table: "attributes");

            migrationBuilder.DropColumn(
                name: "IsPublished",
                table: "teachers");

            migrationBuilder.DropColumn(
                name: "IsPublished",
                table: "attributes");

            migrationBuilder.DropColumn(
                name: "LastUsedAt",
                table: "api_clients");

            migrationBuilder.DropColumn(
                name: "RevokedAt",
                table: "api_clients");

            migrationBuilder.CreateIndex(
                name: "IX_teachers_Name",
                table: "teachers",
                column: "Name",
                unique: true);

            migrationBuilder.CreateIndex(
                name: "IX_datasets_Name",
                table: "datasets",
                column: "Name",
                unique: true);

            migrationBuilder.CreateIndex(
                name: "IX_datasets_Owner",
                table: "datasets",
                column: "Owner");

            migrationBuilder.CreateIndex(
                name: "IX_attributes_Name",
                table: "attributes",
                column: "Name",
                unique: true);
        }
    }
}
