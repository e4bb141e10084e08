using System.Net;
using System.Text.RegularExpressions;

namespace Sdd.EndToEnd.Tests;

/// <summary>
/// What an operator sees of a job: its trace across the three processes (exported by OTLP, as to a collector) and the
/// workers' Prometheus metrics and health endpoints.
/// </summary>
[Collection(EndToEndCollection.Name)]
public sealed partial class ObservabilityTests(SddSystem system, ITestOutputHelper output)
{
    [GeneratedRegex(@"worker \S+ on (http://127\.0\.0\.1:\d+)")]
    private static partial Regex WorkerUrl();

    [Fact]
    public async Task A_jobs_request_message_consumer_and_its_database_and_storage_calls_are_one_trace_tree()
    {
        await system.SmilingEditorAsync();
        var upload = await system.Api.Uploads.UploadAsync(SddSystem.Portraits(3, SddSystem.ImageSize, first: 300).ToList().ToUploads());
        var submitted = DateTimeOffset.UtcNow.AddSeconds(-1); // the tests of this collection run one at a time: no other job is posted after this
        var accepted = await system.Api.Jobs.SubmitAsync(new SubmitJob("smiling", JobSource.FromUpload(upload.Id)));
        var job = await system.Api.WaitForCompletedAsync(accepted.JobId, TimeSpan.FromMinutes(2), () => system.Edit.Tail());
        Assert.Equal(3, job.Counts.Done);

        // The request that created the job: the root of its trace (the test's client sends no trace context).
        List<ExportedSpan> trace = [];
        ExportedSpan? request = null, send = null, consume = null;
        var deadline = DateTime.UtcNow.AddSeconds(40); // exporters send every 200 ms; the worker's last spans end after the job row
        bool Under(ExportedSpan span, ExportedSpan ancestor)
        {
            var byId = trace.ToDictionary(s => s.SpanId);
            for (var parent = span.ParentSpanId; byId.TryGetValue(parent, out var p); parent = p.ParentSpanId)
                if (p.SpanId == ancestor.SpanId) return true;
            return false;
        }
        List<ExportedSpan> Storage() => trace.Where(s => consume is not null && s.Service == "sdd-edit" && s.Kind == ExportedSpan.Client
            && s.Number("server.port") == system.Settings.S3.Endpoint.Port && Under(s, consume)).ToList();
        while (true)
        {
            var all = system.Traces.Spans;
            // This test's job: the one POST /v1/jobs since it submitted.
            request = all.Where(s => s.Service == "sdd-ingest" && s.Kind == ExportedSpan.Server && s.Text("http.request.method") == "POST"
                && s.Text("http.route")?.TrimEnd('/') == "/v1/jobs" && s.Start >= submitted).OrderBy(s => s.Start).FirstOrDefault();
            if (request is not null)
            {
                trace = all.Where(s => s.TraceId == request.TraceId).ToList();
                var sends = trace.Where(s => s.Service == "sdd-ingest" && s.Scope == "MassTransit" && s.Kind == ExportedSpan.Producer && Under(s, request)).ToList();
                consume = trace.FirstOrDefault(s => s.Service == "sdd-edit" && s.Scope == "MassTransit" && s.Kind == ExportedSpan.Consumer && sends.Any(x => Under(s, x)));
                send = consume is null ? sends.FirstOrDefault() : sends.First(x => Under(consume, x));
                var storage = Storage();
                if (consume is not null && trace.Any(s => s.Service == "sdd-edit" && s.Scope == "Npgsql" && Under(s, consume))
                    && storage.Any(s => s.Text("http.request.method") == "GET") && storage.Any(s => s.Text("http.request.method") == "PUT")) break;
            }
            if (DateTime.UtcNow > deadline) break;
            await Task.Delay(250);
        }
        foreach (var s in trace) output.WriteLine(s.ToString());
        Assert.True(system.Traces.Requests > 0, "no OTLP export reached the receiver");
        Assert.True(request is not null, $"no POST /v1/jobs since {submitted:O} among {system.Traces.Spans.Count} spans:\n"
            + string.Join("\n", system.Traces.Spans.GroupBy(s => (s.Service, s.Scope, s.Kind, s.Name)).Select(g => $"{g.Count()} x {g.Key}").Take(60))
            + "\nPOST: " + string.Join("\n", system.Traces.Spans.Where(s => s.Kind == ExportedSpan.Server && s.Name.StartsWith("POST")).Take(5)
                .Select(s => s + " " + string.Join(", ", s.Attributes.Select(a => $"{a.Key}={a.Value}")))));
        Assert.True(send is not null, "no MassTransit send under the request");
        Assert.True(consume is not null, "no edit worker consumer span under the send");
        Assert.Contains(trace, s => s.Service == "sdd-ingest" && s.Scope == "Npgsql" && Under(s, request!)); // the request's own rows
        Assert.Contains(trace, s => s.Service == "sdd-edit" && s.Scope == "Npgsql" && Under(s, consume!)); // the batch's rows
        Assert.Contains(Storage(), s => s.Text("http.request.method") == "GET"); // inputs downloaded
        Assert.Contains(Storage(), s => s.Text("http.request.method") == "PUT"); // outputs uploaded
        // Probes are not traced.
        Assert.DoesNotContain(system.Traces.Spans, s => s.Kind == ExportedSpan.Server && (s.Text("url.path") ?? "").StartsWith("/healthz"));
    }

    [Fact]
    public async Task The_workers_serve_metrics_and_split_health()
    {
        await system.SmilingEditorAsync(); // the distill worker has run chunks, the edit worker may have edited
        var upload = await system.Api.Uploads.UploadAsync(SddSystem.Portraits(4, SddSystem.ImageSize, first: 320).ToList().ToUploads());
        var accepted = await system.Api.Jobs.SubmitAsync(new SubmitJob("smiling", JobSource.FromUpload(upload.Id)));
        await system.Api.WaitForCompletedAsync(accepted.JobId, TimeSpan.FromMinutes(2), () => system.Edit.Tail());

        using var http = new HttpClient { Timeout = TimeSpan.FromSeconds(10) };
        foreach (var (worker, series) in new[]
                 {
                     (system.Edit, new[] { "sdd_edit_items_total{outcome=\"done\"}", "sdd_edit_batch_seconds_count", "sdd_edit_batch_images_sum",
                         "sdd_edit_stage_seconds_sum{stage=\"decode\"}", "sdd_edit_stage_seconds_sum{stage=\"upload\"}", "sdd_editor_cache_total{result=\"load\"}",
                         "sdd_edit_job_latency_seconds_count", "process_working_set_bytes" }),
                     (system.Distill, new[] { "sdd_distill_steps_total{kind=\"distill\"}", "sdd_distill_chunk_seconds_count{kind=\"distill\"}",
                         "sdd_distill_runs_finished_total{kind=\"distill\",outcome=\"completed\"}" }),
                 })
        {
            var url = worker.Lines.Select(l => WorkerUrl().Match(l)).LastOrDefault(m => m.Success)?.Groups[1].Value;
            Assert.True(url is not null, $"{worker.Name} logged no URL:\n{worker.Tail()}");
            var metrics = await http.GetStringAsync(url + "/metrics");
            foreach (var name in series)
            {
                var line = metrics.Split('\n').FirstOrDefault(l => l.StartsWith(name + " ", StringComparison.Ordinal));
                Assert.True(line is not null, $"{worker.Name}: no {name} in /metrics");
                // The edit worker edited this test's job: its series count it. The distill worker may have been restarted
                // by earlier tests of the collection since it last trained: its series are there, at zero or more.
                var value = double.Parse(line!.Split(' ')[1], System.Globalization.CultureInfo.InvariantCulture);
                Assert.True(worker == system.Edit ? value > 0 : value >= 0, $"{worker.Name}: {line}");
                output.WriteLine($"{worker.Name}: {line}");
            }
            Assert.Equal(HttpStatusCode.OK, (await http.GetAsync(url + "/healthz/live")).StatusCode);
            var ready = await http.GetAsync(url + "/healthz/ready");
            var body = await ready.Content.ReadAsStringAsync();
            Assert.True(ready.StatusCode == HttpStatusCode.OK, body);
            Assert.Contains("\"rabbitmq\"", body);
            Assert.Contains("\"postgresql\"", body);
        }
    }
}
