#!/usr/bin/env bash
# The three SDD services on the local stack: Sdd.Ingest (HTTP API on $SDD_INGEST_URL), Sdd.Distill and Sdd.Edit,
# as background processes bound to 127.0.0.1, logs in $SDD_STACK_DIR/services/, pid files in $SDD_STACK_DIR/run/.
# Usage: services.sh start|stop|status   (settings: deploy/local/env.sh; the stack itself: ./sdd up)
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=env.sh
source "$HERE/env.sh"

: "${SDD_INGEST_URL:=http://127.0.0.1:8080}"
: "${SDD_WORK_DIR:=$SDD_STACK_DIR/work}"
export SDD_INGEST_URL SDD_WORK_DIR
export SDD_HOME="${SDD_HOME:-$SDD_ROOT}"
RUN="$SDD_STACK_DIR/run"
LOGS="$SDD_STACK_DIR/services"
SERVICES=(Sdd.Ingest Sdd.Distill Sdd.Edit)

log() { printf '[services] %s\n' "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }
alive() { local s; s=$(ps -o stat= -p "$1" 2>/dev/null) || return 1; [[ -n "$s" && "$s" != Z* ]]; }
pid_of() {  # the live pid of a service this script started, or fail (a stale pid file is removed)
  local f="$RUN/$1.pid" p=""
  [[ -s $f ]] && p=$(tr -dc '0-9' <"$f")
  # Only a process running this checkout's Release build counts: never a reused pid or someone else's run.
  if [[ -n $p ]] && alive "$p" && tr '\0' ' ' <"/proc/$p/cmdline" 2>/dev/null | grep -qF "$(dll "$1")"; then echo "$p"
  else rm -f "$f"; return 1; fi
}
dll() { echo "$SDD_ROOT/services/$1/bin/Release/net10.0/$1.dll"; }

# Build Release once, and again only when a source is newer than the output.
build() {
  local s stale=()
  for s in "${SERVICES[@]}"; do
    local out; out=$(dll "$s")
    if [[ ! -f $out ]] || [[ -n $(find "$SDD_ROOT/services/$s" "$SDD_ROOT/shared" "$SDD_ROOT"/Directory.*.props \
          \( -name bin -o -name obj -o -name models \) -prune -o -type f \( -name '*.cs' -o -name '*.csproj' -o -name '*.props' \) \
          -newer "$out" -print -quit 2>/dev/null) ]]; then stale+=("$s"); fi
  done
  for s in "${stale[@]}"; do
    log "building $s (Release)"
    local out; out=$(dotnet build "$SDD_ROOT/services/$s/$s.csproj" -c Release -p:SddTorchBackend="${SDD_TORCH_BACKEND:-cpu}" -v q --nologo -clp:ErrorsOnly 2>&1) || { echo "$out" >&2; die "build of $s failed"; }
  done
}

healthy() { [[ $(curl -s -o /dev/null -w '%{http_code}' "$SDD_INGEST_URL/healthz" || true) == 200 ]]; }

start_one() {
  local s=$1 pid
  if pid=$(pid_of "$s"); then log "$s already runs (pid $pid)"; return 0; fi
  mkdir -p "$LOGS" "$RUN"
  # setsid: its own process group, so stop reaches any child; fd 9 (the lock) closed.
  # MALLOC_ARENA_MAX=2: the workers allocate natively from many threads; 2 arenas keep their RSS a third lower.
  # Sdd.Distill trains at 128 px: blocks up to 512 MiB stay in its heap instead of being mapped anew each step (see ./sdd).
  local malloc=()
  [[ $s == Sdd.Distill ]] && malloc=(MALLOC_MMAP_THRESHOLD_="${MALLOC_MMAP_THRESHOLD_:-536870912}" MALLOC_TRIM_THRESHOLD_="${MALLOC_TRIM_THRESHOLD_:-1073741824}")
  env "${malloc[@]}" MALLOC_ARENA_MAX="${MALLOC_ARENA_MAX:-2}" setsid dotnet "$(dll "$s")" >>"$LOGS/$s.log" 2>&1 </dev/null 9>&- &
  echo $! >"$RUN/$s.pid"
  log "$s started (pid $!, log $LOGS/$s.log)"
}

cmd_start() {
  local t0=$SECONDS i
  curl --version >/dev/null 2>&1 || die "curl is missing (./sdd up installs it)"
  if ! pid_of Sdd.Ingest >/dev/null; then
    local hostport=${SDD_INGEST_URL#*://}; hostport=${hostport%%/*}
    (exec 3<>"/dev/tcp/${hostport%:*}/${hostport##*:}") 2>/dev/null && die "$SDD_INGEST_URL is taken by another program (set SDD_INGEST_URL)"
  fi
  build
  for s in "${SERVICES[@]}"; do start_one "$s"; done
  for ((i = 0; i < 480; i++)); do
    pid_of Sdd.Ingest >/dev/null && healthy && { log "up in $((SECONDS - t0))s; API $SDD_INGEST_URL (healthz 200)"; return 0; }
    pid_of Sdd.Ingest >/dev/null || { tail -n 30 "$LOGS/Sdd.Ingest.log" >&2; die "Sdd.Ingest exited during start"; }
    sleep 0.25
  done
  tail -n 30 "$LOGS/Sdd.Ingest.log" >&2
  die "Sdd.Ingest not healthy after 120s ($SDD_INGEST_URL/healthz)"
}

stop_one() {
  local s=$1 pid i
  pid=$(pid_of "$s") || return 0
  kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null || true
  # A distill worker finishes its chunk's checkpoint before it exits.
  for ((i = 0; i < 600; i++)); do alive "$pid" || break; sleep 0.1; done
  if alive "$pid"; then log "$s still running 60s after TERM, sending KILL"; kill -KILL -- "-$pid" 2>/dev/null || true; fi
  rm -f "$RUN/$s.pid"
  log "$s stopped"
}

cmd_stop() {
  local s
  for s in "${SERVICES[@]}"; do stop_one "$s" & done
  wait
}

cmd_status() {
  local s pid
  printf '%-12s %-8s %-8s %s\n' SERVICE STATE PID DETAIL
  for s in "${SERVICES[@]}"; do
    if pid=$(pid_of "$s"); then
      local detail="log $LOGS/$s.log"
      [[ $s == Sdd.Ingest ]] && detail="$SDD_INGEST_URL ($(healthy && echo healthy || echo 'not healthy')) $detail"
      printf '%-12s %-8s %-8s %s\n' "$s" running "$pid" "$detail"
    else printf '%-12s %-8s %-8s %s\n' "$s" stopped - -; fi
  done
}

mkdir -p "$SDD_STACK_DIR"
case "${1:-}" in
  start | stop | status)
    exec 9>"$SDD_STACK_DIR/services.lock"; flock 9
    "cmd_$1" ;;
  *) echo "usage: $0 start|stop|status" >&2; exit 2 ;;
esac
