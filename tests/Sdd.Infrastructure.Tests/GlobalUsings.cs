global using Xunit;
global using Sdd.Configuration;
global using Sdd.Tests;
