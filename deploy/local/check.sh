#!/usr/bin/env bash
# ./sdd check faults|hostile: the fault or hostile suite at full size against the local stack, with the services as
# processes (tests/Sdd.EndToEnd.Tests, SDD_FAULTS_SIZE=full), then the table of case -> answer. The same cases run at a
# small size inside ./sdd test. The fault suite kills and restarts the stack's servers: run nothing else meanwhile.
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
source "$HERE/env.sh"
cd "$SDD_ROOT"

suite=${1:-}
case "$suite" in
  faults) filter="FullyQualifiedName~FaultTests|FullyQualifiedName~RunLeaseTests|FullyQualifiedName~WorkerCrashTests" ;;
  hostile) filter="FullyQualifiedName~HostileItemsTests|FullyQualifiedName~TenancyTests|FullyQualifiedName~OutboundTests" ;;
  *) echo "usage: ./sdd check faults|hostile" >&2; exit 2 ;;
esac

"$HERE/stack.sh" up
echo "[check] building SDD.sln" >&2
dotnet build SDD.sln -v q --nologo -clp:ErrorsOnly >&2
mkdir -p "$SDD_STACK_DIR/check"
report="$SDD_STACK_DIR/check/$suite.md"
printf '| case | answer | memory |\n| --- | --- | --- |\n' >"$report"
export SDD_FAULTS_SIZE=full SDD_CHECK_REPORT=$report
rc=0
dotnet test tests/Sdd.EndToEnd.Tests --no-build --nologo --filter "$filter" --logger "console;verbosity=normal" || rc=$?
if [[ $suite == hostile ]]; then
  dotnet test tests/Sdd.Ingest.Tests --no-build --nologo --filter "FullyQualifiedName~BoundsTests|FullyQualifiedName~TenancyTests" \
    --logger "console;verbosity=normal" || rc=$?
fi
echo
cat "$report"
exit $rc
