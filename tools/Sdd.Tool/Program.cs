// sdd: the command line for people (./sdd login|datasets|teachers|attributes|jobs|runs, or `dotnet tool install` as `sdd`).
return await Sdd.Tool.SddTool.RunAsync(args, Sdd.Tool.ToolContext.FromProcess());
