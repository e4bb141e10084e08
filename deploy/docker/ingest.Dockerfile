# syntax=docker/dockerfile:1.7
# Sdd.Ingest (HTTP API). Build: docker build -f deploy/docker/ingest.Dockerfile -t sdd-ingest .
# Built with the .NET 10 SDK, published self-contained, run on Debian 13 (trixie) like the workers.
# The builtin teacher in shared/models (teacher/ and judge/) is copied into the image when present and
# registered at start-up (SDD_HOME=/opt/sdd); without it the API runs and says so in its log.
FROM mcr.microsoft.com/dotnet/sdk:10.0 AS build
WORKDIR /src
COPY Directory.Build.props Directory.Build.targets Directory.Packages.props ./
COPY build/ build/
COPY shared/ shared/
COPY services/Sdd.Ingest/ services/Sdd.Ingest/
RUN --mount=type=cache,target=/root/.nuget/packages \
    dotnet publish services/Sdd.Ingest/Sdd.Ingest.csproj -c Release -r linux-x64 --self-contained -o /out \
 && mkdir -p /src/shared/models

FROM debian:trixie-slim
# curl: the container health check (GET /healthz).
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates curl \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 --home-dir /app --shell /usr/sbin/nologin sdd
WORKDIR /app
COPY --from=build /out ./
COPY --from=build /src/shared/models /opt/sdd/shared/models
ENV DOTNET_gcServer=0 \
    SDD_HOME=/opt/sdd \
    SDD_INGEST_URL=http://0.0.0.0:8080
EXPOSE 8080
USER sdd
HEALTHCHECK --interval=10s --timeout=5s --start-period=30s --retries=6 CMD curl -fsS http://127.0.0.1:8080/healthz/ready || exit 1
ENTRYPOINT ["./Sdd.Ingest"]
