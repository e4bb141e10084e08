global using Xunit;
global using Sdd.Configuration;
