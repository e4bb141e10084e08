global using System.Net.Http.Json;
global using System.Text.Json;
global using Xunit;
global using Xunit.Abstractions;
global using Sdd.Client;
global using Sdd.Configuration;
global using Sdd.Storage;
global using Sdd.Formats.Models;
