#!/usr/bin/env bash
# ./sdd test: stack up (installing what is missing), build once, every tests/*/*.csproj one after
# another, stack down again (unless it was already up before), and a last line
# "N passed, N failed[, N skipped]" summed over all test projects.
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

echo "[test] building SDD.sln" >&2
if ! dotnet build SDD.sln -v q --nologo -clp:ErrorsOnly; then
  stop_stack
  echo "build failed"
  exit 1
fi

passed=0 failed=0 skipped=0 rc=0
shopt -s nullglob
projects=(tests/*/*.csproj)
((${#projects[@]})) || { stop_stack; echo "no test projects under tests/"; exit 1; }
for proj in "${projects[@]}"; do
  name=$(basename "$proj" .csproj)
  echo "[test] $name" >&2
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
done

stop_stack
((failed == 0)) || rc=1
summary="$passed passed, $failed failed"
((skipped == 0)) || summary+=", $skipped skipped"
echo "$summary"
exit $rc
