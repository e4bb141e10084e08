using Microsoft.EntityFrameworkCore.Migrations;

#nullable disable

namespace Sdd.Data.Migrations
{
    /// <inheritdoc />
    public partial class DomainGate : Migration
    {
        /// <inheritdoc />
        protected override void Up(MigrationBuilder migrationBuilder)
        {
            migrationBuilder.AddColumn<double>(
                name: "DomainScore",
                table: "job_items",
                type: "double precision",
                nullable: true);

            migrationBuilder.AddColumn<bool>(
                name: "OutsideDomain",
                table: "job_items",
                type: "boolean",
                nullable: false,
                defaultValue: false);

            migrationBuilder.AddColumn<string>(
                name: "OutOfDomain",
                table: "edit_jobs",
                type: "character varying(8)",
                maxLength: 8,
                nullable: true);
        }

        /// <inheritdoc />
        protected override void Down(MigrationBuilder migrationBuilder)
        {
            migrationBuilder.DropColumn(
                name: "DomainScore",
                table: "job_items");

            migrationBuilder.DropColumn(
                name: "OutsideDomain",
                table: "job_items");

            migrationBuilder.DropColumn(
                name: "OutOfDomain",
                table: "edit_jobs");
        }
    }
}
