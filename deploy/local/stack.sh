#!/usr/bin/env bash
# The SDD local stack without Docker: RabbitMQ (+ management), PostgreSQL 15 and s3rver (S3),
# every listener on 127.0.0.1 only, state under $SDD_STACK_DIR (.stack/, git-ignored).
# Usage: stack.sh up|down|status      (settings: deploy/local/env.sh)
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=env.sh
source "$HERE/env.sh"

RUN="$SDD_STACK_DIR/run"                  # pid files
RABBIT_BIN=/usr/lib/rabbitmq/bin          # not /usr/sbin/rabbitmq*: those switch user and HOME
PG_BIN=/usr/lib/postgresql/15/bin
S3RVER_JS="$HERE/node_modules/s3rver/bin/s3rver.js"
RD="$SDD_STACK_DIR/rabbitmq"
S3_HOSTPORT=${SDD_S3_ENDPOINT#*://}; S3_HOSTPORT=${S3_HOSTPORT%%/*}
S3_HOST=${S3_HOSTPORT%:*}; S3_PORT=${S3_HOSTPORT##*:}
LOOPBACK_DIST='-kernel inet_dist_use_interface {127,0,0,1}'

log() { printf '[stack] %s\n' "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

# --- processes ---------------------------------------------------------------------------------
# A process left behind can stay a zombie for a while and kill -0 calls it alive: read its state.
alive() { local s; s=$(ps -o stat= -p "$1" 2>/dev/null) || return 1; [[ -n "$s" && "$s" != Z* ]]; }
# The pid recorded in a pid file if that process is alive; a stale file is removed.
live_pid() {
  local p=""; [[ -s "$1" ]] && p=$(head -n1 "$1" | tr -dc '0-9')
  if [[ -n "$p" ]] && alive "$p"; then echo "$p"; else rm -f "$1"; return 1; fi
}
# Every server is started with setsid, so its pid is also its process group: members outlive a
# killed leader (beam's helpers, postgres backends) and are found and stopped through the group.
group_alive() { ps -eo pgid=,stat= | awk -v g="$1" '$1 == g && $2 !~ /^Z/ { n++ } END { exit n ? 0 : 1 }'; }
kill_group() {  # pgid name [seconds to wait after TERM]
  local g=$1 name=$2 wait=${3:-20} i
  group_alive "$g" || return 0
  kill -TERM -- "-$g" 2>/dev/null || true
  for ((i = 0; i < wait * 10; i++)); do group_alive "$g" || return 0; sleep 0.1; done
  log "$name: still running ${wait}s after TERM, sending KILL"
  kill -KILL -- "-$g" 2>/dev/null || true
  for ((i = 0; i < 50; i++)); do group_alive "$g" || return 0; sleep 0.1; done
}
port_open() { (exec 3<>"/dev/tcp/$1/$2") 2>/dev/null; }
# Listening addresses of every process in a group, as ss sees them.
listeners() {
  local pids p out=""
  pids=$(ps -eo pid=,pgid= | awk -v g="$1" '$2 == g { print $1 }')
  for p in $pids; do
    out+=$(ss -ltnpH 2>/dev/null | awk -v p="pid=$p," 'index($0, p) { printf "%s ", $4 }')
  done
  echo "${out% }"
}
wait_for() {  # seconds description command...
  local secs=$1 what=$2 i; shift 2
  for ((i = 0; i < secs * 4; i++)); do "$@" && return 0; sleep 0.25; done
  die "$what not ready after ${secs}s"
}

# --- install -----------------------------------------------------------------------------------
install_missing() {
  local pkgs=() blocker=""
  [[ -x $RABBIT_BIN/rabbitmq-server ]] || pkgs+=(rabbitmq-server)
  [[ -d $PG_BIN ]] || pkgs+=(postgresql-15)
  command -v node >/dev/null && command -v npm >/dev/null || pkgs+=(nodejs npm)
  command -v curl >/dev/null || pkgs+=(curl)
  # The dashboard tests drive Debian's Chromium through Playwright (no browser download); it needs a font.
  [[ -x /usr/bin/chromium ]] || pkgs+=(chromium fonts-dejavu-core)
  if ((${#pkgs[@]})); then
    log "installing ${pkgs[*]} (apt)"
    # Keep the packages from starting system-wide servers on the default ports.
    if [[ ! -e /usr/sbin/policy-rc.d ]]; then
      printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d && chmod +x /usr/sbin/policy-rc.d && blocker=1
    fi
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${pkgs[@]}" >/dev/null
    [[ -z $blocker ]] || rm -f /usr/sbin/policy-rc.d
  fi
  if [[ ! -f $S3RVER_JS || $HERE/package-lock.json -nt $HERE/node_modules/.package-lock.json ]]; then
    log "installing s3rver (npm ci)"
    (cd "$HERE" && npm ci --no-audit --no-fund --loglevel=error >/dev/null)
  fi
  node "$HERE/patch-s3rver.js"
}

# --- RabbitMQ ----------------------------------------------------------------------------------
# The one environment shared by the broker and its CLI (same HOME, so the same Erlang cookie).
rabbit_env() {
  RABBIT_ENV=(HOME="$RD/home" LANG=C.UTF-8
    RABBITMQ_NODENAME=sdd@localhost
    RABBITMQ_NODE_IP_ADDRESS=127.0.0.1 RABBITMQ_NODE_PORT="$SDD_RABBITMQ_PORT"
    RABBITMQ_DIST_PORT="$SDD_RABBITMQ_DIST_PORT"
    ERL_EPMD_ADDRESS=127.0.0.1 ERL_EPMD_PORT="$SDD_RABBITMQ_EPMD_PORT"
    RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS="$LOOPBACK_DIST" RABBITMQ_CTL_ERL_ARGS="$LOOPBACK_DIST"
    RABBITMQ_MNESIA_BASE="$RD/mnesia" RABBITMQ_LOG_BASE="$RD/log" RABBITMQ_PID_FILE="$RD/rabbit.pid"
    RABBITMQ_CONFIG_FILE="$RD/rabbitmq.conf" RABBITMQ_ENABLED_PLUGINS_FILE="$RD/enabled_plugins"
    RABBITMQ_CONF_ENV_FILE="$RD/rabbitmq-env.conf" RABBITMQ_ADVANCED_CONFIG_FILE="$RD/advanced.config")
}
rabbit_env
rabbit() { env "${RABBIT_ENV[@]}" "$RABBIT_BIN/$1" "${@:2}"; }
rabbit_ready() { port_open 127.0.0.1 "$SDD_RABBITMQ_PORT" && rabbit rabbitmq-diagnostics -q check_running >/dev/null 2>&1; }

epmd_up() {  # 0 if it had to be started
  local pid epmd
  pid=$(live_pid "$RUN/epmd.pid") && return 1
  if port_open 127.0.0.1 "$SDD_RABBITMQ_EPMD_PORT"; then
    # Someone else's epmd (another checkout's stack): register with it, never stop it.
    pid=$(ss -ltnpH "sport = :$SDD_RABBITMQ_EPMD_PORT" | grep -o 'pid=[0-9]*' | head -n1 | cut -d= -f2)
    [[ -n $pid && $(ps -o comm= -p "$pid") == epmd ]] || die "port $SDD_RABBITMQ_EPMD_PORT is taken by another program"
    log "epmd: using the one already on port $SDD_RABBITMQ_EPMD_PORT (pid $pid), not started here"
    return 1
  fi
  epmd=$(command -v epmd || ls /usr/lib/erlang/erts-*/bin/epmd | head -n1)
  setsid "$epmd" -address 127.0.0.1 -port "$SDD_RABBITMQ_EPMD_PORT" >>"$RD/log/epmd.log" 2>&1 </dev/null 9>&- &
  echo $! >"$RUN/epmd.pid"
  wait_for 10 epmd port_open 127.0.0.1 "$SDD_RABBITMQ_EPMD_PORT"
  return 0
}

rabbit_up() {
  local pid="" epmd_new=""
  mkdir -p "$RD/home" "$RD/mnesia" "$RD/log"
  epmd_up && epmd_new=1
  if pid=$(live_pid "$RUN/rabbitmq.pid") && [[ -z $epmd_new ]]; then
    rabbit_wait "$pid"; return 0
  elif [[ -n $pid ]]; then
    # A broker that outlived its epmd is registered nowhere and the CLI cannot find it: restart it.
    log "rabbitmq: epmd was restarted, restarting the broker"
    rabbit_stop
  elif [[ -s $RD/pgid ]]; then
    kill_group "$(cat "$RD/pgid")" rabbitmq 5   # helpers left by a killed broker
  fi
  {
    echo "listeners.tcp.default = 127.0.0.1:$SDD_RABBITMQ_PORT"
    echo "management.tcp.ip = 127.0.0.1"
    echo "management.tcp.port = $SDD_RABBITMQ_MANAGEMENT_PORT"
    echo "default_user = $SDD_RABBITMQ_USER"
    echo "default_pass = $SDD_RABBITMQ_PASSWORD"
    echo "consumer_timeout = 1800000"
  } >"$RD/rabbitmq.conf"
  echo '[rabbitmq_management].' >"$RD/enabled_plugins"
  : >"$RD/rabbitmq-env.conf"
  setsid env "${RABBIT_ENV[@]}" "$RABBIT_BIN/rabbitmq-server" >>"$RD/log/startup.log" 2>&1 </dev/null 9>&- &
  pid=$!
  echo "$pid" >"$RUN/rabbitmq.pid"; echo "$pid" >"$RD/pgid"
  rabbit_wait "$pid"
}

# Ready means the AMQP port is open and check_running passes (ping passes too early); the
# management listener follows. Usually 6-8 s after start, sometimes 13-19 s: wait up to 120 s.
rabbit_wait() {
  local pid=$1 i
  for ((i = 0; i < 480; i++)); do
    alive "$pid" || { tail -n 30 "$RD/log/startup.log" >&2; die "rabbitmq exited during start (log: $RD/log)"; }
    if rabbit_ready; then wait_for 30 "rabbitmq management" port_open 127.0.0.1 "$SDD_RABBITMQ_MANAGEMENT_PORT"; return 0; fi
    sleep 0.25
  done
  die "rabbitmq not ready after 120s (log: $RD/log)"
}

rabbit_stop() {
  local pid i
  if pid=$(live_pid "$RUN/rabbitmq.pid"); then
    kill -TERM "$pid" 2>/dev/null || true   # the server script's pid: TERM stops the VM cleanly
    for ((i = 0; i < 300; i++)); do alive "$pid" || break; sleep 0.1; done
  fi
  [[ -s $RD/pgid ]] && kill_group "$(cat "$RD/pgid")" rabbitmq 10
  rm -f "$RUN/rabbitmq.pid" "$RD/pgid"
}

epmd_stop() {
  local pid
  if pid=$(live_pid "$RUN/epmd.pid"); then kill_group "$pid" epmd 5; fi
  rm -f "$RUN/epmd.pid"
}

# --- PostgreSQL --------------------------------------------------------------------------------
# initdb/pg_ctl refuse root and postgres must be able to reach its data folder; where the project
# lies under a folder postgres cannot enter (e.g. /root), the data goes to /var/tmp instead.
pg_dir() {
  if runuser -u postgres -- test -x "$SDD_STACK_DIR" 2>/dev/null; then echo "$SDD_STACK_DIR/postgres"
  else echo "/var/tmp/sdd-stack-$(printf %s "$SDD_STACK_DIR" | md5sum | cut -c1-12)/postgres"; fi
}
PD=""; PGDATA_DIR=""
pg_paths() { [[ -n $PD ]] || { PD=$(pg_dir); PGDATA_DIR="$PD/data"; }; }
pg_pid() {  # the postmaster's pid if it runs
  local p=""; [[ -s $PGDATA_DIR/postmaster.pid ]] && p=$(head -n1 "$PGDATA_DIR/postmaster.pid" | tr -dc '0-9')
  [[ -n $p ]] && alive "$p" && [[ $(ps -o comm= -p "$p") == postgres ]] && echo "$p"
}
psql_local() { "$PG_BIN/psql" -X -q -v ON_ERROR_STOP=1 -h "$PD/run" -p "$SDD_POSTGRES_PORT" -U postgres -d postgres "$@"; }
sql_literal() { printf "'%s'" "${1//\'/\'\'}"; }

pg_up() {
  local pid opts
  pg_paths
  id postgres >/dev/null 2>&1 || useradd --system --home-dir /var/lib/postgresql --shell /bin/bash postgres
  mkdir -p "$PD/run"; chown postgres: "$PD" "$PD/run"
  if pid=$(pg_pid); then :; else
    [[ -s $PD/pgid ]] && kill_group "$(cat "$PD/pgid")" postgres 5   # backends of a killed postmaster
    # A killed postmaster leaves its pid and socket lock files; postgres itself would trust them
    # while the old pid is still a zombie.
    rm -f "$PGDATA_DIR/postmaster.pid" "$PD/pgid" "$PD"/run/.s.PGSQL.*
    if [[ ! -s $PGDATA_DIR/PG_VERSION ]]; then
      rm -rf "$PGDATA_DIR"
      runuser -u postgres -- "$PG_BIN/initdb" -D "$PGDATA_DIR" -U postgres --auth-local=trust \
        --auth-host=scram-sha-256 -E UTF8 --locale=C.UTF-8 -N >"$PD/initdb.log" 2>&1 \
        || { cat "$PD/initdb.log" >&2; die "initdb failed"; }
    fi
    opts="-c listen_addresses=127.0.0.1 -p $SDD_POSTGRES_PORT -k $PD/run"
    # Durability off for throw-away test data (set by test.sh).
    [[ ${SDD_POSTGRES_FAST:-0} == 1 ]] && opts+=" -c fsync=off -c synchronous_commit=off -c full_page_writes=off"
    touch "$PD/postgres.log"; chown postgres: "$PD/postgres.log"
    setsid runuser -u postgres -- "$PG_BIN/pg_ctl" -D "$PGDATA_DIR" -l "$PD/postgres.log" -w -t 60 -o "$opts" start >/dev/null 9>&- \
      || { tail -n 30 "$PD/postgres.log" >&2; die "postgres did not start"; }
    pid=$(pg_pid) || die "postgres started but its pid is unknown"
    ps -o pgid= -p "$pid" | tr -d ' ' >"$PD/pgid"
  fi
  wait_for 30 postgres "$PG_BIN/pg_isready" -q -h 127.0.0.1 -p "$SDD_POSTGRES_PORT"
  # The role and password used over TCP (scram), and the database: both idempotent.
  if [[ -z $(psql_local -tAc "SELECT 1 FROM pg_roles WHERE rolname = $(sql_literal "$SDD_POSTGRES_USER")") ]]; then
    psql_local -c "CREATE ROLE \"$SDD_POSTGRES_USER\" LOGIN SUPERUSER"
  fi
  psql_local -c "ALTER ROLE \"$SDD_POSTGRES_USER\" PASSWORD $(sql_literal "$SDD_POSTGRES_PASSWORD")"
  if [[ -z $(psql_local -tAc "SELECT 1 FROM pg_database WHERE datname = $(sql_literal "$SDD_POSTGRES_DB")") ]]; then
    psql_local -c "CREATE DATABASE \"$SDD_POSTGRES_DB\" OWNER \"$SDD_POSTGRES_USER\""
  fi
}

pg_stop() {
  pg_paths
  [[ -d $PGDATA_DIR ]] || return 0
  if pg_pid >/dev/null; then
    runuser -u postgres -- "$PG_BIN/pg_ctl" -D "$PGDATA_DIR" -m fast -w -t 30 stop >/dev/null 2>&1 || true
  fi
  [[ -s $PD/pgid ]] && kill_group "$(cat "$PD/pgid")" postgres 5
  pg_pid >/dev/null || rm -f "$PGDATA_DIR/postmaster.pid"
  rm -f "$PD/pgid"
}

# --- s3rver ------------------------------------------------------------------------------------
s3_ready() { [[ $(curl -s -o /dev/null -w '%{http_code}' "http://$S3_HOSTPORT/" || true) != 000 ]]; }
s3_up() {
  local pid
  mkdir -p "$SDD_STACK_DIR/s3/data"
  if live_pid "$RUN/s3rver.pid" >/dev/null; then wait_for 30 s3rver s3_ready; return 0; fi
  [[ -s $SDD_STACK_DIR/s3/pgid ]] && kill_group "$(cat "$SDD_STACK_DIR/s3/pgid")" s3rver 5
  port_open "$S3_HOST" "$S3_PORT" && die "port $S3_PORT is taken by another program"
  setsid node "$S3RVER_JS" -d "$SDD_STACK_DIR/s3/data" -a "$S3_HOST" -p "$S3_PORT" --silent \
    >>"$SDD_STACK_DIR/s3/s3rver.log" 2>&1 </dev/null 9>&- &
  pid=$!
  echo "$pid" >"$RUN/s3rver.pid"; echo "$pid" >"$SDD_STACK_DIR/s3/pgid"
  wait_for 30 s3rver s3_ready
}
s3_stop() {
  [[ -s $SDD_STACK_DIR/s3/pgid ]] && kill_group "$(cat "$SDD_STACK_DIR/s3/pgid")" s3rver 5
  rm -f "$RUN/s3rver.pid" "$SDD_STACK_DIR/s3/pgid"
}

# --- commands ----------------------------------------------------------------------------------
cmd_up() {
  local t0=$SECONDS
  install_missing
  mkdir -p "$RUN"
  s3_up
  pg_up
  rabbit_up
  log "up in $((SECONDS - t0))s"
}
cmd_down() {
  mkdir -p "$RUN"
  s3_stop; pg_stop; rabbit_stop; epmd_stop
  log "down"
}
# kill -9 one server's process group, as a crash would (the fault tests); `up` brings it back.
cmd_kill() {
  local pgid_file
  case "${1:-}" in
    rabbitmq) pgid_file="$RD/pgid" ;;
    postgres) pg_paths; pgid_file="$PD/pgid" ;;
    s3rver) pgid_file="$SDD_STACK_DIR/s3/pgid" ;;
    *) die "kill which server? rabbitmq, postgres or s3rver" ;;
  esac
  [[ -s $pgid_file ]] || die "$1 is not running"
  kill -KILL -- "-$(cat "$pgid_file")" 2>/dev/null || true
  log "$1 killed (process group $(cat "$pgid_file"))"
}
row() { printf '%-9s %-8s %-8s %s\n' "$@"; }
cmd_status() {
  local pid
  row SERVICE STATE PID LISTENING
  if pid=$(live_pid "$RUN/epmd.pid" 2>/dev/null); then row epmd running "$pid" "$(listeners "$pid")"; else row epmd stopped - -; fi
  if pid=$(live_pid "$RUN/rabbitmq.pid" 2>/dev/null); then
    row rabbitmq "$(rabbit_ready && echo running || echo starting)" "$pid" "$(listeners "$(cat "$RD/pgid")")"
  else row rabbitmq stopped - -; fi
  pg_paths
  if pid=$(pg_pid); then row postgres running "$pid" "$(listeners "$(ps -o pgid= -p "$pid" | tr -d ' ')") db=$SDD_POSTGRES_DB data=$PGDATA_DIR"
  else row postgres stopped - -; fi
  if pid=$(live_pid "$RUN/s3rver.pid" 2>/dev/null); then row s3rver running "$pid" "$(listeners "$pid") data=$SDD_STACK_DIR/s3/data"
  else row s3rver stopped - -; fi
}

[[ $(id -u) == 0 ]] || die "run as root (installs packages, runs postgres through runuser)"
mkdir -p "$SDD_STACK_DIR"
case "${1:-}" in
  up | down | status | kill)
    # One up/down at a time; servers are started with fd 9 closed so they do not hold the lock.
    exec 9>"$SDD_STACK_DIR/stack.lock"; flock 9
    "cmd_$1" "${@:2}" ;;
  *) echo "usage: $0 up|down|status|kill rabbitmq|postgres|s3rver" >&2; exit 2 ;;
esac
