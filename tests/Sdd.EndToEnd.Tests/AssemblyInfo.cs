// One set of service processes serves every class; tests run one after another (torch on 2 cores, one queue set).
[assembly: CollectionBehavior(DisableTestParallelization = true)]
