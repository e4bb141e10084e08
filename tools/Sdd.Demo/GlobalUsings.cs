global using System.Diagnostics;
global using System.Globalization;
global using System.Net.Http.Json;
global using System.Text.Json;
global using Sdd.Configuration;
global using Sdd.Storage;
