global using Microsoft.EntityFrameworkCore;
global using Microsoft.Extensions.Logging;
global using Sdd.Configuration;
global using Sdd.Data;
global using Sdd.Storage;
global using TorchSharp;
global using static TorchSharp.torch;
global using F = TorchSharp.torch.nn.functional;
