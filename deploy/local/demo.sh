#!/usr/bin/env bash
# ./sdd demo: on a fresh machine, the whole product end to end on the local stack:
# stack up -> services up -> 2000 synthetic portraits registered as a data set -> a "smiling" editor
# distilled from the builtin teacher (HQS timesteps; 150 steps at 128 px, 300 at 32 px) -> a job of 200 held-out portraits ->
# ./out/contact-sheet.png and ./out/summary.md.
# Options go to the driver (tools/Sdd.Demo): --steps N --count N --images N --attribute A --out DIR
#   --teacher NAME (builtin: the 128 px latent teacher; builtin-32: the 32 px one; builtin-128 on a stack made before) --scale S (guidance)
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=env.sh
source "$HERE/env.sh"
cd "$SDD_ROOT"
t0=$SECONDS
say() { printf '[demo] %s\n' "$*" >&2; }

out="out" attribute="smiling"
args=("$@")
for ((i = 0; i < ${#args[@]}; i++)); do
  [[ ${args[i]} == --out ]] && out=${args[i + 1]}
  [[ ${args[i]} == --attribute ]] && attribute=${args[i + 1]}
done

[[ -f shared/models/latent128/model.safetensors && -f shared/models/latent128/judge/model.safetensors ]] ||
  [[ -f shared/models/teacher/model.safetensors && -f shared/models/judge/model.safetensors ]] || [[ -n ${SDD_HOME:-} ]] ||
  say "warning: neither shared/models/latent128 (with judge/) nor shared/models/teacher with shared/models/judge is there; Sdd.Ingest will not register a builtin teacher"

say "stack (RabbitMQ, PostgreSQL, S3) on 127.0.0.1"
"$HERE/stack.sh" up
# Chunks short enough that the distillation's progress is seen moving (the default is 120 s).
export SDD_DISTILL_CHUNK_SECONDS="${SDD_DISTILL_CHUNK_SECONDS:-20}"
say "services (Sdd.Ingest, Sdd.Distill, Sdd.Edit)"
"$HERE/services.sh" start
: "${SDD_INGEST_URL:=http://127.0.0.1:8080}"
export SDD_INGEST_URL

DEMO_DLL="$SDD_ROOT/tools/Sdd.Demo/bin/Release/net10.0/Sdd.Demo.dll"
if [[ ! -f $DEMO_DLL ]] || [[ -n $(find "$SDD_ROOT/tools/Sdd.Demo" "$SDD_ROOT/shared" \( -name bin -o -name obj -o -name models \) -prune -o \
      -type f \( -name '*.cs' -o -name '*.csproj' \) -newer "$DEMO_DLL" -print -quit) ]]; then
  say "building the demo driver"
  build_log=$(dotnet build "$SDD_ROOT/tools/Sdd.Demo/Sdd.Demo.csproj" -c Release -v q --nologo -clp:ErrorsOnly 2>&1) || { echo "$build_log" >&2; exit 1; }
fi
ready=$((SECONDS - t0))
say "stack and services ready in ${ready}s"

demo_t0=$SECONDS
dotnet "$DEMO_DLL" "$@"
say "demo finished in $((SECONDS - demo_t0))s after the stack and services were ready (${ready}s); total $((SECONDS - t0))s"
out_dir=$(cd "$out" && pwd)
cat >&2 <<EOT

  Results        $out_dir/contact-sheet.png   (before/after pairs)
                 $out_dir/summary.md          (counts, timings, images/s, HQS timesteps, editor metrics)
                 $out_dir/results/            (every edited image)
  Your API key   $SDD_STACK_DIR/demo.key   (owner-only file; a re-run reuses it; the '$attribute' editor is this key's, published to every key)
  Next           edit your own photos: README.md, section "Edit your own photos"
  API            $SDD_INGEST_URL  (OpenAPI: $SDD_INGEST_URL/scalar; admin key \$SDD_ADMIN_KEY, default sdd-admin-local)
  Services       ./sdd services status      logs in $SDD_STACK_DIR/services/
  Stop           ./sdd down   (the services, then the stack; ./sdd services stop keeps the stack)
EOT
