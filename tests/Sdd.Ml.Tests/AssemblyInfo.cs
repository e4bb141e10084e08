// Torch tests share two cores with other work: run them one at a time.
[assembly: CollectionBehavior(DisableTestParallelization = true)]
