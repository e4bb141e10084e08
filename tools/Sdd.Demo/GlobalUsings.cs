global using System.Diagnostics;
global using System.Globalization;
global using System.Text.Json;
global using Sdd.Client;
global using Sdd.Configuration;
global using Sdd.Storage;
