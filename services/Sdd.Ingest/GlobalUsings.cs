global using System.Security.Claims;
global using Microsoft.AspNetCore.Http.HttpResults;
global using Microsoft.EntityFrameworkCore;
global using Sdd.Configuration;
global using Sdd.Data;
global using Sdd.Data.Entities;
global using Sdd.Ingest.Auth;
global using Sdd.Storage;
