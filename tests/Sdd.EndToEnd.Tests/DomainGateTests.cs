namespace Sdd.EndToEnd.Tests;

/// <summary>
/// The domain gate through the whole system: the editor the Distill worker made carries a gate fitted on its training
/// portraits; the Edit worker scores every decoded image, skips the ones outside with the score and the reason (no
/// output, the job still completes), and edits them anyway when the job asks.
/// </summary>
[Collection(EndToEndCollection.Name)]
public sealed class DomainGateTests(SddSystem system, ITestOutputHelper output)
{
    [Fact]
    public async Task Images_outside_the_editors_domain_are_skipped_with_their_score_unless_the_job_asks_to_edit_them()
    {
        await system.SmilingEditorAsync();
        var portraits = SddSystem.Portraits(6, SddSystem.ImageSize, first: 900).ToList();
        var houses = SddSystem.Houses(3, seed: 5);

        // The default: skipped.
        var upload = await system.Api.Uploads.UploadAsync(portraits.Concat(houses).ToUploads());
        var jobId = (await system.Api.Jobs.SubmitAsync(new SubmitJob("smiling", JobSource.FromUpload(upload.Id)))).JobId;
        var job = await system.Api.WaitForCompletedAsync(jobId, TimeSpan.FromMinutes(2), () => system.Edit.Tail());
        var items = (await system.Api.Jobs.ListAllItemsAsync(jobId).ToListAsync()).ToDictionary(i => i.Name);
        foreach (var i in items.Values) output.WriteLine($"{i.Name}: {i.State} score {i.DomainScore} outside {i.OutsideDomain} {i.Error}");
        Assert.Equal(JobState.Completed, job.State);
        Assert.Equal((6, 3, 0), (job.Counts.Done, job.Counts.Skipped, job.Counts.Failed));
        Assert.False(job.Succeeded, "a job with skipped images did not edit every image");
        foreach (var (name, _) in portraits)
        {
            Assert.Equal(ItemState.Done, items[name].State);
            Assert.NotNull(items[name].DomainScore);
            Assert.False(items[name].OutsideDomain);
        }
        foreach (var (name, _) in houses)
        {
            var item = items[name];
            Assert.Equal(ItemState.Skipped, item.State);
            Assert.True(item.OutsideDomain);
            Assert.StartsWith("outside the editor's domain (score ", item.Error);
            Assert.True(item.DomainScore > items.Values.Where(i => i.State == ItemState.Done).Max(i => i.DomainScore), "a house scores below a portrait");
            Assert.Null(item.OutputKey);
        }
        Assert.Equal(6, (await system.JobOutputsAsync(jobId)).Count); // nothing written for a skipped image
        Assert.Equal(3, (await system.Api.Jobs.ListAllItemsAsync(jobId, ItemState.Skipped).ToListAsync()).Count);

        // Only houses: the job completes with nothing edited (it is not "failed": nothing went wrong).
        var onlyHouses = await system.Api.Jobs.SubmitFilesAsync("smiling", houses.Select(h => UploadFile.FromBytes(h.Name, h.Bytes)).ToList());
        var skipped = await system.Api.WaitForCompletedAsync(onlyHouses.JobId, TimeSpan.FromMinutes(2), () => system.Edit.Tail());
        Assert.Equal((JobState.Completed, 0, 3), (skipped.State, skipped.Counts.Done, skipped.Counts.Skipped));

        // Asked to edit them anyway: done, each with its score and marked outside.
        var anyway = await system.Api.Jobs.SubmitFilesAsync("smiling", houses.Select(h => UploadFile.FromBytes(h.Name, h.Bytes)).ToList(),
            new JobOptions(EditOutsideDomain: true));
        var edited = await system.Api.WaitForCompletedAsync(anyway.JobId, TimeSpan.FromMinutes(2), () => system.Edit.Tail());
        Assert.Equal((3, 0), (edited.Counts.Done, edited.Counts.Skipped));
        Assert.All(await system.Api.Jobs.ListAllItemsAsync(anyway.JobId).ToListAsync(), i =>
        {
            Assert.True(i.OutsideDomain, $"{i.Name} not marked outside");
            Assert.NotNull(i.OutputKey);
            Assert.Null(i.Error);
        });

        // A policy the API does not know is refused before anything is stored.
        var refused = await Assert.ThrowsAsync<SddApiException>(() =>
            system.Api.Jobs.SubmitAsync(new SubmitJob("smiling", JobSource.FromUpload(upload.Id), OutOfDomain: "maybe")));
        Assert.Equal(422, refused.Status);
        Assert.Contains("outOfDomain", refused.Body);
    }
}
