global using System.CommandLine;
global using System.Globalization;
global using System.Text.Json;
global using Sdd.Client;
global using Spectre.Console;
