using Microsoft.EntityFrameworkCore.Migrations;

#nullable disable

namespace Sdd.Data.Migrations
{
    /// <inheritdoc />
    public partial class PromptAttributes : Migration
    {
        /// <inheritdoc />
        protected override void Up(MigrationBuilder migrationBuilder)
        {
            migrationBuilder.AddColumn<string>(
                name: "Prompt",
                table: "attributes",
                type: "character varying(1000)",
                maxLength: 1000,
                nullable: true);

            migrationBuilder.AddColumn<string>(
                name: "SourcePrompt",
                table: "attributes",
                type: "character varying(1000)",
                maxLength: 1000,
                nullable: true);
        }

        /// <inheritdoc />
        protected override void Down(MigrationBuilder migrationBuilder)
        {
            migrationBuilder.DropColumn(
                name: "Prompt",
                table: "attributes");

            migrationBuilder.DropColumn(
                name: "SourcePrompt",
                table: "attributes");
        }
    }
}
