global using TorchSharp;
global using static TorchSharp.torch;
global using Sdd.Formats.Models;
global using Sdd.Formats.Runs;
