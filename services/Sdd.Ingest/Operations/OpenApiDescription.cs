using System.Text.Json.Nodes;
using Microsoft.AspNetCore.OpenApi;
using Microsoft.OpenApi;
using Sdd.Ingest.Apis;
using Sdd.Ingest.Webhooks;

namespace Sdd.Ingest.Operations;

/// <summary>
/// What the generated document cannot know from the handlers: the API key scheme, the multipart form of a job
/// submission, the values of each state string, and the problem answers every operation can give. The document is
/// linted in CI (deploy/local/openapi-lint.sh, Redocly).
/// </summary>
public static class OpenApiDescription
{
    public static void Describe(OpenApiOptions o)
    {
        o.AddDocumentTransformer((document, _, _) =>
        {
            document.Info.Title = "SDD Ingest API";
            document.Info.Version = "v1";
            document.Info.Description = "Datasets, teachers, attribute editors and batch edit jobs (Selective Diffusion Distillation).";
            document.Info.License = new OpenApiLicense { Name = "Proprietary", Identifier = "LicenseRef-SDD" };
            document.Servers = [new OpenApiServer { Url = "http://127.0.0.1:8080", Description = "The local stack" }];
            document.Components ??= new OpenApiComponents();
            document.Components.SecuritySchemes ??= new Dictionary<string, IOpenApiSecurityScheme>();
            document.Components.SecuritySchemes[ApiKeyAuthentication.SchemeName] = new OpenApiSecurityScheme
            {
                Type = SecuritySchemeType.ApiKey, In = ParameterLocation.Header, Name = ApiKeyAuthentication.Header,
                Description = "An API key (POST /v1/keys with the admin key creates one).",
            };
            document.Components.Schemas ??= new Dictionary<string, IOpenApiSchema>();
            document.Components.Schemas[ProblemSchema] = new OpenApiSchema
            {
                Type = JsonSchemaType.Object,
                Description = "RFC 9457 problem details: a title and a detail a person can act on.",
                Properties = new Dictionary<string, IOpenApiSchema>
                {
                    ["type"] = new OpenApiSchema { Type = JsonSchemaType.String },
                    ["title"] = new OpenApiSchema { Type = JsonSchemaType.String },
                    ["status"] = new OpenApiSchema { Type = JsonSchemaType.Integer, Format = "int32" },
                    ["detail"] = new OpenApiSchema { Type = JsonSchemaType.String },
                    ["instance"] = new OpenApiSchema { Type = JsonSchemaType.String },
                },
            };
            document.Security ??= [];
            document.Security.Add(new OpenApiSecurityRequirement { [new OpenApiSecuritySchemeReference(ApiKeyAuthentication.SchemeName, document)] = [] });
            document.Tags ??= new HashSet<OpenApiTag>();
            foreach (var (name, description) in Tags)
            {
                if (document.Tags.FirstOrDefault(t => t.Name == name) is { } tag) tag.Description = description;
                else document.Tags.Add(new OpenApiTag { Name = name, Description = description });
            }
            return Task.CompletedTask;
        });

        o.AddSchemaTransformer((schema, context, _) =>
        {
            var type = context.JsonTypeInfo.Type;
            if (type == typeof(JobStatusDto))
            {
                Enumerate(schema, "state", "queued", "running", "completed", "failed", "cancelled");
                Enumerate(schema, "outputFormat", "jpeg", "png", "webp");
            }
            else if (type == typeof(JobItemDto)) Enumerate(schema, "state", "pending", "done", "failed", "cancelled");
            else if (type == typeof(RunDto)) Enumerate(schema, "state", "queued", "running", "succeeded", "failed");
            else if (type == typeof(WebhookDeliveryDto))
            {
                Enumerate(schema, "state", "pending", "delivered", "failed", "skipped");
                Enumerate(schema, "event", [.. WebhookEvents.ForJobs, .. WebhookEvents.ForRuns]);
            }
            else if (type == typeof(SubmitJobFromBucket)) Enumerate(schema, "format", "jpeg", "png", "webp");
            return Task.CompletedTask;
        });

        o.AddOperationTransformer((operation, context, _) =>
        {
            var method = context.Description.HttpMethod ?? "GET";
            var path = "/" + (context.Description.RelativePath ?? "");
            if (operation.OperationId == "submitJob") AddMultipartForm(operation);
            operation.Responses ??= new OpenApiResponses();
            if (!path.StartsWith("/v1/", StringComparison.Ordinal)) return Task.CompletedTask;
            var document = context.Document;
            void Problem(int status, string description)
            {
                var code = status.ToString(System.Globalization.CultureInfo.InvariantCulture);
                if (operation.Responses.ContainsKey(code)) return;
                operation.Responses[code] = new OpenApiResponse
                {
                    Description = description,
                    Content = new Dictionary<string, OpenApiMediaType>
                    {
                        ["application/problem+json"] = new() { Schema = new OpenApiSchemaReference(ProblemSchema, document) },
                    },
                };
            }
            Problem(400, "Bad request: a parameter, cursor or body is malformed.");
            Problem(401, "Missing, unknown or revoked API key.");
            if (context.Description.ActionDescriptor.EndpointMetadata.OfType<Microsoft.AspNetCore.Authorization.IAuthorizeData>()
                    .Any(a => a.Policy == ApiKeyAuthentication.AdminPolicy))
                Problem(403, "Only an admin key may do this.");
            if (path.Contains('{')) Problem(404, "No such resource of yours (another owner's answers the same).");
            if (method == "POST" || method == "PUT")
            {
                Problem(409, "Conflict with the current state, a name taken, or the same Idempotency-Key still being answered.");
                Problem(413, "The body is larger than this server accepts.");
                Problem(415, "Unsupported content type.");
                Problem(422, "Well-formed but refused: what the detail says (limits, formats, a reused Idempotency-Key).");
            }
            Problem(429, "Too many requests or too much work in flight; see Retry-After.");
            Problem(500, "The server failed; it has been logged.");
            if (method == "POST")
            {
                operation.Parameters ??= [];
                if (!operation.Parameters.Any(p => p.Name == Idempotency.Header))
                    operation.Parameters.Add(new OpenApiParameter
                    {
                        Name = Idempotency.Header, In = ParameterLocation.Header, Required = false,
                        Description = "Retry-safe POST: the same key and request within 24 h get the first answer again (Idempotent-Replayed: true).",
                        Schema = new OpenApiSchema { Type = JsonSchemaType.String, MinLength = 1, MaxLength = 255 },
                    });
            }
            return Task.CompletedTask;
        });
    }

    private const string ProblemSchema = "Problem";

    private static readonly (string, string)[] Tags =
    [
        ("Keys", "API keys: who calls, and the secret that signs their webhooks."),
        ("Uploads", "Upload areas: presigned PUT URLs under your own prefix."),
        ("Grants", "Buckets an admin lets an owner read."),
        ("Datasets", "Labelled images a teacher is trained on."),
        ("Teachers", "Diffusion models editors are distilled from."),
        ("Runs", "Training and distillation runs."),
        ("Attributes", "Attribute editors, their versions and HQS curves."),
        ("Jobs", "Batch edits: submit, watch, download."),
    ];

    private static void Enumerate(OpenApiSchema schema, string property, params string[] values)
    {
        if (schema.Properties?.TryGetValue(property, out var p) == true && p is OpenApiSchema s)
            s.Enum = values.Select(v => (JsonNode)JsonValue.Create(v)).ToList();
    }

    /// <summary>The multipart form of POST /v1/jobs beside its JSON body.</summary>
    private static void AddMultipartForm(OpenApiOperation operation)
    {
        operation.RequestBody ??= new OpenApiRequestBody { Required = true };
        if (operation.RequestBody is not OpenApiRequestBody body) return;
        body.Content ??= new Dictionary<string, OpenApiMediaType>();
        body.Content["multipart/form-data"] = new OpenApiMediaType
        {
            Schema = new OpenApiSchema
            {
                Type = JsonSchemaType.Object,
                Required = new HashSet<string> { "attribute", "files" },
                Properties = new Dictionary<string, IOpenApiSchema>
                {
                    ["attribute"] = new OpenApiSchema { Type = JsonSchemaType.String, Description = "The attribute to apply (yours, else a published one)." },
                    ["files"] = new OpenApiSchema
                    {
                        Type = JsonSchemaType.Array, Description = "The images, one part each.",
                        Items = new OpenApiSchema { Type = JsonSchemaType.String, Format = "binary" },
                    },
                    ["format"] = new OpenApiSchema
                    {
                        Type = JsonSchemaType.String, Description = "Every output in this format (absent: each input's own).",
                        Enum = ["jpeg", "png", "webp"],
                    },
                    ["webhook"] = new OpenApiSchema { Type = JsonSchemaType.String, Format = "uri", Description = "Told (signed POST) when the job finishes." },
                    ["webhookEvents"] = new OpenApiSchema { Type = JsonSchemaType.String, Description = "Comma-separated: job.completed, job.failed, job.cancelled." },
                },
            },
        };
    }
}
