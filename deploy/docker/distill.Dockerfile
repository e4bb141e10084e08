# syntax=docker/dockerfile:1.7
# Sdd.Distill worker. Build: docker build -f deploy/docker/distill.Dockerfile --build-arg SDD_TORCH_BACKEND=cuda -t sdd-distill .
# Built with the .NET 10 SDK, published self-contained, run on Debian 13 (trixie): its libstdc++ carries
# GLIBCXX_3.4.32, so LibTorchSharp loads without the weak-version patch the Debian 12 dev machines need.
# SDD_TORCH_BACKEND=cpu (default) or cuda (TorchSharp-cuda-linux: the host needs only the NVIDIA driver and
# the container toolkit; the device is chosen at run time, CUDA when available).
ARG SDD_TORCH_BACKEND=cpu

FROM mcr.microsoft.com/dotnet/sdk:10.0 AS build
ARG SDD_TORCH_BACKEND
WORKDIR /src
COPY Directory.Build.props Directory.Build.targets Directory.Packages.props ./
COPY build/ build/
COPY shared/ shared/
COPY services/Sdd.Distill/ services/Sdd.Distill/
RUN --mount=type=cache,target=/root/.nuget/packages \
    dotnet publish services/Sdd.Distill/Sdd.Distill.csproj -c Release -r linux-x64 --self-contained \
      -p:SddTorchBackend=${SDD_TORCH_BACKEND} -o /out

FROM debian:trixie-slim
# libgomp1: LibTorch's OpenMP runtime; ca-certificates: TLS to S3/RabbitMQ/PostgreSQL endpoints.
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates libgomp1 \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 --home-dir /app --shell /usr/sbin/nologin sdd \
 && mkdir -p /var/lib/sdd && chown sdd /var/lib/sdd
WORKDIR /app
COPY --from=build /out ./
# glibc: two malloc arenas, not eight per core: torch and the decoders allocate from many threads (an edit worker's
# peak RSS over 10,000 images: 2129 MB with the default, 1370 MB with 2; ./sdd bench pipeline).
# Blocks up to 512 MiB stay in the heap: 128 px activations were otherwise mapped and zeroed anew each step.
ENV DOTNET_gcServer=0 \
    MALLOC_ARENA_MAX=2 \
    MALLOC_MMAP_THRESHOLD_=536870912 \
    MALLOC_TRIM_THRESHOLD_=1073741824 \
    SDD_WORK_DIR=/var/lib/sdd
USER sdd
ENTRYPOINT ["./Sdd.Distill"]
