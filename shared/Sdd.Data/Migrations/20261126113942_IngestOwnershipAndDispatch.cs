using System;
using System.Collections.Generic;
using Microsoft.EntityFrameworkCore.Migrations;

#nullable disable

namespace Sdd.Data.Migrations
{
    /// <inheritdoc />
    public partial class IngestOwnershipAndDispatch : Migration
    {
        /// <inheritdoc />
        protected override void Up(MigrationBuilder migrationBuilder)
        {
            migrationBuilder.AddColumn<DateTimeOffset>(
                name: "DispatchedAt",
                table: "training_runs",
                type: "timestamp with time zone",
                nullable: true);

            migrationBuilder.AddColumn<List<string>>(
                name: "AttributeNames",
                table: "teachers",
                type: "text[]",
                nullable: false,
                defaultValueSql: "'{}'::text[]"); // existing rows: no attributes known

            migrationBuilder.AddColumn<bool>(
                name: "IsBuiltin",
                table: "teachers",
                type: "boolean",
                nullable: false,
                defaultValue: false);

            migrationBuilder.AddColumn<string>(
                name: "Owner",
                table: "teachers",
                type: "character varying(200)",
                maxLength: 200,
                nullable: true);

            migrationBuilder.AddColumn<DateTimeOffset>(
                name: "DispatchedAt",
                table: "job_items",
                type: "timestamp with time zone",
                nullable: true);

            migrationBuilder.AddColumn<string>(
                name: "Name",
                table: "job_items",
                type: "character varying(1024)",
                maxLength: 1024,
                nullable: true);

            migrationBuilder.AddColumn<string>(
                name: "SourceBucket",
                table: "job_items",
                type: "character varying(63)",
                maxLength: 63,
                nullable: true);

            migrationBuilder.AddColumn<string>(
                name: "Bucket",
                table: "datasets",
                type: "character varying(63)",
                maxLength: 63,
                nullable: true);

            migrationBuilder.AddColumn<string>(
                name: "Owner",
                table: "datasets",
                type: "character varying(200)",
                maxLength: 200,
                nullable: true);

            migrationBuilder.AddColumn<string>(
                name: "Prefix",
                table: "datasets",
                type: "character varying(1024)",
                maxLength: 1024,
                nullable: true);

            migrationBuilder.AddColumn<Guid>(
                name: "DatasetId",
                table: "attributes",
                type: "uuid",
                nullable: true);

            migrationBuilder.AddColumn<string>(
                name: "Owner",
                table: "attributes",
                type: "character varying(200)",
                maxLength: 200,
                nullable: true);

            migrationBuilder.AddColumn<string>(
                name: "TargetAttribute",
                table: "attributes",
                type: "character varying(100)",
                maxLength: 100,
                nullable: true);

            migrationBuilder.AddColumn<Guid>(
                name: "TeacherId",
                table: "attributes",
                type: "uuid",
                nullable: true);

            migrationBuilder.CreateIndex(
                name: "IX_job_items_State_DispatchedAt",
                table: "job_items",
                columns: new[] { "State", "DispatchedAt" });

            migrationBuilder.CreateIndex(
                name: "IX_datasets_Owner",
                table: "datasets",
                column: "Owner");

            migrationBuilder.CreateIndex(
                name: "IX_attributes_DatasetId",
                table: "attributes",
                column: "DatasetId");

            migrationBuilder.CreateIndex(
                name: "IX_attributes_TeacherId",
                table: "attributes",
                column: "TeacherId");

            migrationBuilder.AddForeignKey(
                name: "FK_attributes_datasets_DatasetId",
                table: "attributes",
                column: "DatasetId",
                principalTable: "datasets",
                principalColumn: "Id",
                onDelete: ReferentialAction.Restrict);

            migrationBuilder.AddForeignKey(
                name: "FK_attributes_teachers_TeacherId",
                table: "attributes",
                column: "TeacherId",
                principalTable: "teachers",
                principalColumn: "Id",
                onDelete: ReferentialAction.Restrict);
        }

        /// <inheritdoc />
        protected override void Down(MigrationBuilder migrationBuilder)
        {
            migrationBuilder.DropForeignKey(
                name: "FK_attributes_datasets_DatasetId",
                table: "attributes");

            migrationBuilder.DropForeignKey(
                name: "FK_attributes_teachers_TeacherId",
                table: "attributes");

            migrationBuilder.DropIndex(
                name: "IX_job_items_State_DispatchedAt",
                table: "job_items");

            migrationBuilder.DropIndex(
                name: "IX_datasets_Owner",
                table: "datasets");

            migrationBuilder.DropIndex(
                name: "IX_attributes_DatasetId",
                table: "attributes");

            migrationBuilder.DropIndex(
                name: "IX_attributes_TeacherId",
                table: "attributes");

            migrationBuilder.DropColumn(
                name: "DispatchedAt",
                table: "training_runs");

            migrationBuilder.DropColumn(
                name: "AttributeNames",
                table: "teachers");

            migrationBuilder.DropColumn(
                name: "IsBuiltin",
                table: "teachers");

            migrationBuilder.DropColumn(
                name: "Owner",
                table: "teachers");

            migrationBuilder.DropColumn(
                name: "DispatchedAt",
                table: "job_items");

            migrationBuilder.DropColumn(
                name: "Name",
                table: "job_items");

            migrationBuilder.DropColumn(
                name: "SourceBucket",
                table: "job_items");

            migrationBuilder.DropColumn(
                name: "Bucket",
                table: "datasets");

            migrationBuilder.DropColumn(
                name: "Owner",
                table: "datasets");

            migrationBuilder.DropColumn(
                name: "Prefix",
                table: "datasets");

            migrationBuilder.DropColumn(
                name: "DatasetId",
                table: "attributes");

            migrationBuilder.DropColumn(
                name: "Owner",
                table: "attributes");

            migrationBuilder.DropColumn(
                name: "TargetAttribute",
                table: "attributes");

            migrationBuilder.DropColumn(
                name: "TeacherId",
                table: "attributes");
        }
    }
}
