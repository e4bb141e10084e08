namespace Sdd.EndToEnd.Tests;

/// <summary>
/// A published attribute serves other owners only while it is published: an unpublish reaches the jobs they had
/// already submitted (issue 31, point 5). The Edit worker re-checks, each time it picks a batch up, that the job's owner
/// may still use the attribute, by the API's own rule.
/// </summary>
[Collection(EndToEndCollection.Name)]
public sealed class PublishingTests(SddSystem system)
{
    [Fact]
    public async Task An_unpublished_attribute_fails_another_owners_accepted_job_with_the_reason_and_keeps_serving_its_owner()
    {
        await system.SmilingEditorAsync();
        using var admin = system.Client(system.AdminKey);
        var createdB = await admin.Keys.CreateAsync("tenant-publishing");
        using var b = system.Client(createdB.Key);
        await admin.Attributes.PublishAsync("smiling", system.Owner);
        try
        {
            // While published, B's job is edited.
            var first = (await b.Jobs.SubmitFilesAsync("smiling", SddSystem.Portraits(2, SddSystem.ImageSize, first: 940).ToUploads())).JobId;
            Assert.Equal(2, (await b.WaitForCompletedAsync(first, TimeSpan.FromMinutes(2), () => system.Edit.Tail())).Counts.Done);

            // Accepted while published, picked up after the unpublish: no worker until then.
            system.Edit.Kill();
            Guid later, own;
            try
            {
                later = (await b.Jobs.SubmitFilesAsync("smiling", SddSystem.Portraits(3, SddSystem.ImageSize, first: 950).ToUploads())).JobId;
                own = (await system.Api.Jobs.SubmitFilesAsync("smiling", SddSystem.Portraits(2, SddSystem.ImageSize, first: 960).ToUploads())).JobId;
                await admin.Attributes.UnpublishAsync("smiling", system.Owner);
            }
            finally { await system.RestartAsync(system.Edit); }

            var withdrawn = await b.WaitForJobAsync(later, j => j.IsFinished, TimeSpan.FromMinutes(2), () => system.Edit.Tail());
            Assert.Equal((JobState.Failed, 0, 3), (withdrawn.State, withdrawn.Counts.Done, withdrawn.Counts.Failed));
            Assert.All(await b.Jobs.ListAllItemsAsync(later).ToListAsync(), i => Assert.Contains("no longer published", i.Error));
            Assert.Empty(await system.ListAsync(system.Settings.S3.JobsBucket, Sdd.Storage.KeyLayout.Job(createdB.Id.ToString(), later) + "output/"));

            // The owner's own job, accepted at the same time, is edited as before.
            Assert.Equal(2, (await system.Api.WaitForCompletedAsync(own, TimeSpan.FromMinutes(2), () => system.Edit.Tail())).Counts.Done);
        }
        finally
        {
            try { await admin.Attributes.UnpublishAsync("smiling", system.Owner); } catch (SddApiException) { } // other tests expect it private
        }
    }

    [Fact]
    public async Task A_distillation_from_a_teacher_unpublished_after_it_was_accepted_fails_with_the_reason()
    {
        using var admin = system.Client(system.AdminKey);
        // Owner A's teacher (one step: its weights are not the point), published by the admin.
        var trained = await system.Api.Teachers.TrainAsync(new TrainTeacher(await system.DatasetAsync(), Steps: 1, ImageSize: SddSystem.ImageSize));
        Assert.Equal(RunState.Succeeded, (await system.Api.WaitForFinishedAsync(trained.RunId, TimeSpan.FromMinutes(3), () => system.Distill.Tail())).State);
        await admin.Teachers.PublishAsync(trained.TeacherId);
        var createdB = await admin.Keys.CreateAsync("tenant-teacher-user");
        using var b = system.Client(createdB.Key);

        // B's distillation is accepted while the teacher is published; no worker picks it up before the unpublish.
        system.Distill.Kill();
        AttributeAccepted accepted;
        try
        {
            accepted = await b.Attributes.CreateAsync(new CreateAttribute("borrowed", trained.TeacherId, "smiling", Settings: new DistillSettings(Steps: 4, Scale: 10)));
            await admin.Teachers.UnpublishAsync(trained.TeacherId);
        }
        finally { await system.RestartAsync(system.Distill); }

        var run = await b.WaitForFinishedAsync(accepted.RunId, TimeSpan.FromMinutes(3), () => system.Distill.Tail());
        Assert.Equal(RunState.Failed, run.State);
        Assert.Contains("no longer published", run.Error);
        var attribute = await b.Attributes.GetAsync("borrowed");
        Assert.Equal(EditorState.Failed, attribute.Versions.Single().State);
        Assert.Null(attribute.Active);
    }
}
