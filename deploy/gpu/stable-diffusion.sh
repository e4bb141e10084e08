#!/usr/bin/env bash
# Stable Diffusion 1.5 as the teacher, on one CUDA GPU: the paper's setting with your own weights and photos.
#   1. sd probe on the real weights (the numerics files, for a comparison with diffusers where Python is at hand)
#   2. lab distill: one prompt attribute ("a photo of a smiling person" against "a photo of a person"), cfg at s = 100,
#      timesteps chosen by HQS over 200 photos, SDS through the VAE encoder at 512 px
#   3. bench speed: the editor against SDEdit under the same prompt, at 512² and 1024², model only and decode→encode
#   4. with SDD_GPU_API=1, the same through the services: ./sdd teachers import, attributes create --prompt, a job
# NOT RUN YET: no GPU and no SD weights exist on the machines this was written on, and the CUDA TorchSharp packages
# cannot be restored there. It needs: an NVIDIA GPU (16 GB or more), the .NET 10 SDK, NuGet access for
# TorchSharp-cuda-linux (or a warm cache), an SD 1.5 diffusers folder (safetensors; e.g. a local copy of
# stable-diffusion-v1-5/stable-diffusion-v1-5 with safe_serialization) and a folder of >= 200 photos of people.
#   deploy/gpu/stable-diffusion.sh SD15_DIR PHOTOS_DIR [OUT_DIR]
# Results go to OUT_DIR (default $OUT, else out/gpu-sd): logs, JSON, the editor, and gpu-sd-summary.txt.
# SDD_GPU_SD_STEPS (default 1000), SDD_GPU_SD_BATCH (default 1: docs/results/sd15-cpu-step.txt) size the run.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
SD="${1:?usage: deploy/gpu/stable-diffusion.sh SD15_DIR PHOTOS_DIR [OUT_DIR]}"
PHOTOS="${2:?usage: deploy/gpu/stable-diffusion.sh SD15_DIR PHOTOS_DIR [OUT_DIR]}"
OUT_DIR="${3:-${OUT:-out/gpu-sd}}"
STEPS="${SDD_GPU_SD_STEPS:-1000}"
BATCH="${SDD_GPU_SD_BATCH:-1}"
PROMPT="${SDD_GPU_SD_PROMPT:-a photo of a smiling person}"
SOURCE="${SDD_GPU_SD_SOURCE:-a photo of a person}"
mkdir -p "$OUT_DIR"
export SDD_TORCH_DEVICE="${SDD_TORCH_DEVICE:-cuda}"
LOG="$OUT_DIR/gpu-sd-summary.txt"
stamp() { date -u +%H:%M:%S; }
say() { echo "[$(stamp)] $*" | tee -a "$LOG"; }

say "host: $(nvidia-smi --query-gpu=name,memory.total --format=csv,noheader 2>/dev/null || echo 'no nvidia-smi'); $(nproc) cores"
say "build: CLI with the CUDA LibTorch (-p:SddTorchBackend=cuda)"
dotnet build tools/Sdd.Cli/Sdd.Cli.csproj -c Release -p:SddTorchBackend=cuda -v q --nologo -clp:ErrorsOnly
CLI=(dotnet tools/Sdd.Cli/bin/Release/net10.0/Sdd.Cli.dll)

timed() { # name, command...: runs it, logs its output, wall time and the GPU's peak memory use while it ran
  local name=$1; shift
  local t0=$SECONDS peak=0
  ( while sleep 1; do nvidia-smi --query-gpu=memory.used --format=csv,noheader,nounits 2>/dev/null | head -1; done ) > "$OUT_DIR/$name.gpumem" &
  local watcher=$!
  "$@" > "$OUT_DIR/$name.log" 2>&1 || { kill $watcher; say "$name FAILED (see $name.log)"; tail -20 "$OUT_DIR/$name.log"; exit 1; }
  kill $watcher 2>/dev/null || true
  peak=$(sort -n "$OUT_DIR/$name.gpumem" | tail -1)
  say "$name: $((SECONDS - t0)) s, GPU memory peak ${peak:-?} MiB — $(tail -1 "$OUT_DIR/$name.log")"
}

# 1. The numerics of the real weights at one timestep (random latents from the CLI's own generator, seed 1).
timed probe "${CLI[@]}" sd probe --teacher "$SD" --prompt "$PROMPT" --latents random:1,64,64 --timestep 500 --out "$OUT_DIR/probe"

# 2. One prompt attribute, as the paper distils it: cfg at scale 100, w(t) = 1 − ᾱ_t, HQS over 200 photos (5 best timesteps).
timed distill "${CLI[@]}" distill --teacher "$SD" --prompt "$PROMPT" --source-prompt "$SOURCE" --attribute smiling-sd \
  --dataset "$PHOTOS" --out "$OUT_DIR/editor-smiling-sd" --steps "$STEPS" --batch "$BATCH" --mode cfg --scale 100 \
  --timesteps hqs --samples 200 --k 5 --eval-images 100

# 3. Editing speed at 512² and 1024² beside SDEdit (t0 = 200) under the same prompt, in the same run.
timed speed "${CLI[@]}" bench speed --teacher "$SD" --prompt "$PROMPT" --editor "$OUT_DIR/editor-smiling-sd" --sizes 512,1024 --t0 200 \
  --json "$OUT_DIR/bench-speed-sd-gpu.json"

# 4. Through the services (CUDA workers): import, a prompt attribute, a job of the photos.
if [[ ${SDD_GPU_API:-0} == 1 ]]; then
  export SDD_TORCH_BACKEND=cuda SDD_API_URL=${SDD_API_URL:-http://127.0.0.1:8080}
  ./sdd up && ./sdd services start
  export SDD_API_KEY=${SDD_API_KEY:-sdd-admin-local}  # the local stack's admin key (SDD_STACK_MODE=local)
  timed import ./sdd teachers import "$SD" --name sd15 --wait
  # A data set registers labels.csv + images/: the photos with one placeholder column (a prompt attribute reads no labels).
  mkdir -p "$OUT_DIR/photos-set/images"; cp "$PHOTOS"/* "$OUT_DIR/photos-set/images/"
  { echo "image,photo"; for f in "$OUT_DIR/photos-set/images"/*; do echo "$(basename "$f"),1"; done; } > "$OUT_DIR/photos-set/labels.csv"
  timed dataset ./sdd datasets upload "$OUT_DIR/photos-set" --name photos
  timed attribute ./sdd attributes create smiling-sd --teacher sd15 --prompt "$PROMPT" --source-prompt "$SOURCE" --dataset photos \
    --steps "$STEPS" --scale 100 --wait
  timed job ./sdd jobs submit "$PHOTOS" --attribute smiling-sd --wait
fi
say "done; JSON: bench-speed-sd-gpu.json; editor: $OUT_DIR/editor-smiling-sd (its grid.png: sources and edits side by side)"
