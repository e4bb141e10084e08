global using TorchSharp;
global using TorchSharp.Modules;
global using static TorchSharp.torch;
global using F = TorchSharp.torch.nn.functional;
global using Sdd.Formats.Models;
global using Sdd.Formats.Runs;
