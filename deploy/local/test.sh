#!/usr/bin/env bash
# ./sdd test: stack up (installing what is missing), build once, every tests/*/*.csproj one after
# another, the offline check of the deployment files (deploy/check-manifests.sh, counted as one test),
# stack down again (unless it was already up before), and a last line
# "N passed, N failed[, N skipped]" summed over all of them.
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
source "$HERE/env.sh"
cd "$SDD_ROOT"

started_stack=""
stop_stack() {
  if [[ -n $started_stack ]]; then started_stack=""; "$HERE/stack.sh" down >&2 || true; fi
}
trap stop_stack EXIT
trap 'exit 130' INT TERM

# A stack someone already runs (./sdd up) is used and left running; otherwise this run owns it.
if [[ -z $(SDD_ROOT=$SDD_ROOT "$HERE/stack.sh" status 2>/dev/null | awk 'NR > 1 && $2 != "running"') ]]; then
  echo "[test] using the running stack" >&2
else
  started_stack=1
  SDD_POSTGRES_FAST=1 "$HERE/stack.sh" up
fi

results="$SDD_STACK_DIR/test-results"
rm -rf "$results"; mkdir -p "$results"

# Numerics can differ by machine (LibTorch picks its kernels by CPU): say which one ran the tests.
echo "[test] cpu: $(lscpu 2>/dev/null | sed -n 's/^Model name: *//p' | head -1), $(nproc) cores, $(grep -o -w 'avx512f\|avx2\|amx_tile\|avx512_bf16' /proc/cpuinfo 2>/dev/null | sort -u | tr '\n' ' ')" >&2
echo "[test] building SDD.sln" >&2
if ! dotnet build SDD.sln -v q --nologo -clp:ErrorsOnly; then
  stop_stack
  echo "build failed"
  exit 1
fi

passed=0 failed=0 skipped=0 rc=0 timings=""
shopt -s nullglob
projects=(tests/*/*.csproj)
((${#projects[@]})) || { stop_stack; echo "no test projects under tests/"; exit 1; }
for proj in "${projects[@]}"; do
  name=$(basename "$proj" .csproj)
  echo "[test] $name" >&2
  started=$SECONDS
  if ! dotnet test "$proj" --no-build --nologo --logger "trx;LogFileName=$name.trx" \
       --logger "console;verbosity=normal" --results-directory "$results/$name"; then
    rc=1
  fi
  trx="$results/$name/$name.trx"
  if [[ -f $trx ]]; then
    counters=$(grep -o '<Counters [^>]*>' "$trx" | head -n1)
    get() { sed -n "s/.* $1=\"\([0-9]*\)\".*/\1/p" <<<"$counters"; }
    passed=$((passed + $(get passed))); failed=$((failed + $(get failed)))
    skipped=$((skipped + $(get notExecuted)))
  else
    echo "[test] $name left no results (crashed or did not start)" >&2
    failed=$((failed + 1)); rc=1
  fi
  timings+="  $name: $((SECONDS - started)) s"$'\n'
done

# Compose files and Kubernetes manifests, checked offline (no cluster, no Docker engine): one test.
echo "[test] deploy/check-manifests.sh" >&2
started=$SECONDS manifests_failed=""
if "$SDD_ROOT/deploy/check-manifests.sh" >"$results/check-manifests.log" 2>&1; then
  passed=$((passed + 1))
else
  failed=$((failed + 1)) rc=1 manifests_failed=1
fi
cat "$results/check-manifests.log" >&2
timings+="  check-manifests: $((SECONDS - started)) s"$'\n'

stop_stack
printf '[test] time per project (whole run %d s):\n%s' "$SECONDS" "$timings"
# CI shows only the end of what this prints: name every failed test there, with the start of its message.
if ((failed > 0)); then
  echo "[test] failed tests:"
  python3 - "$results" <<'PY' || true
import glob, sys, xml.etree.ElementTree as ET
ns = {"t": "http://microsoft.com/schemas/VisualStudio/TeamTest/2010"}
for trx in sorted(glob.glob(sys.argv[1] + "/*/*.trx")):
    for r in ET.parse(trx).getroot().iterfind(".//t:UnitTestResult", ns):
        if r.get("outcome") != "Failed":
            continue
        msg = r.findtext(".//t:Message", "", ns).strip().splitlines()
        trace = r.findtext(".//t:StackTrace", "", ns).strip().splitlines()
        print(f"  FAILED {r.get('testName')} ({r.get('duration')})")
        for line in msg[:6] + [l for l in trace if "/tests/" in l][:3]:
            print("    " + line.strip()[:300])
PY
  if [[ -n $manifests_failed ]]; then
    echo "  FAILED deploy/check-manifests.sh"
    grep -v '^\[manifests\] ok:' "$results/check-manifests.log" | head -n 20 | sed 's/^/    /'
  fi
fi
((failed == 0)) || rc=1
summary="$passed passed, $failed failed"
((skipped == 0)) || summary+=", $skipped skipped"
echo "$summary"
exit $rc
