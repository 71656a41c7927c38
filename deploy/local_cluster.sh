#!/usr/bin/env bash
# A local cluster on 127.0.0.1: one coordinator, N shards, M workers, each under a
# supervisor that restarts it when it dies (exponential backoff, 1 s to 30 s or --max_backoff).
#
#   deploy/local_cluster.sh start  [--shards=N] [--workers=N] [--dir=RUNDIR] [--port=P]
#                                  [--bin=DIR] [--data_root=DIR] [--device=auto|cpu|gpu]
#                                  [--max_backoff=S] [--coordinator_flags="--f=v ..."]
#                                  [--shard_flags="..."] [--worker_flags="..."]
#   deploy/local_cluster.sh stop   [--dir=RUNDIR]
#   deploy/local_cluster.sh status [--dir=RUNDIR]
#
# start returns once every daemon is up and prints "coordinator at 127.0.0.1:PORT".
# RUNDIR (default /tmp/ps-cluster) holds logs/NAME.log per daemon, logs/supervisor.log
# (restarts), pids/, and each daemon's RocksDB directory under data/. The *_flags
# options add flags (split at spaces) to every daemon of that kind, e.g.
# --coordinator_flags="--heartbeat_timeout_ms=2000". Each worker gets --cpu_threads=
# the host's cores / (shards + workers), at least 1, so that the workers' OpenBLAS
# threads leave the shards their share (a --worker_flags value overrides it). Binaries come
# from --bin (default: the workspace's bazel-bin); build them first with
#   bazel build //server:ps_server //server/coordinator:ps_coordinator //worker:ps_worker //client:psctl
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
cmd=${1:-}
[ $# -gt 0 ] && shift
SHARDS=2
WORKERS=2
RUNDIR=/tmp/ps-cluster
PORT=""
BIN=""
DATA_ROOT="$ROOT:/usr/share/datasets"
DEVICE=auto
MAX_BACKOFF=30
COORDINATOR_FLAGS=""
SHARD_FLAGS=""
WORKER_FLAGS=""
[ "$cmd" = _supervise ] || for arg in "$@"; do
  case "$arg" in
    --shards=*) SHARDS=${arg#*=} ;;
    --workers=*) WORKERS=${arg#*=} ;;
    --dir=*) RUNDIR=${arg#*=} ;;
    --port=*) PORT=${arg#*=} ;;
    --bin=*) BIN=${arg#*=} ;;
    --data_root=*) DATA_ROOT=${arg#*=} ;;
    --device=*) DEVICE=${arg#*=} ;;
    --max_backoff=*) MAX_BACKOFF=${arg#*=} ;;
    --coordinator_flags=*) COORDINATOR_FLAGS=${arg#*=} ;;
    --shard_flags=*) SHARD_FLAGS=${arg#*=} ;;
    --worker_flags=*) WORKER_FLAGS=${arg#*=} ;;
    *) echo "local_cluster.sh: unknown argument $arg" >&2; exit 1 ;;
  esac
done

binary() {  # binary NAME PACKAGE
  local dir=${BIN:-$ROOT/bazel-bin/$2}
  local path=$dir/$1
  [ -x "$path" ] || { echo "local_cluster.sh: $path is missing; build it first (see the header)" >&2; exit 1; }
  echo "$path"
}

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'
}

# Runs one daemon forever: restart on exit with backoff (1 s doubling to MAX_BACKOFF),
# until RUNDIR/stopping exists.
supervise() {
  local name=$1; shift
  local log=$RUNDIR/logs/$name.log backoff=1
  while [ ! -e "$RUNDIR/stopping" ]; do
    local started=$SECONDS
    "$@" >>"$log" 2>&1 &
    local child=$!
    echo "$child" >"$RUNDIR/pids/$name.pid"
    trap 'kill -TERM $child 2>/dev/null; wait $child; exit 0' TERM INT
    local rc=0
    wait "$child" || rc=$?
    trap - TERM INT
    [ -e "$RUNDIR/stopping" ] && break
    if [ $((SECONDS - started)) -gt 30 ]; then backoff=1; fi
    echo "$(date '+%F %T') $name (pid $child) exited with status $rc; restarting in ${backoff}s" \
      >>"$RUNDIR/logs/supervisor.log"
    sleep "$backoff"
    backoff=$((backoff * 2 > MAX_BACKOFF ? MAX_BACKOFF : backoff * 2))
  done
}

launch() {  # launch NAME CMD...: a supervisor in its own session, outliving this script.
  local name=$1; shift
  setsid "$0" _supervise "--dir=$RUNDIR" "--max_backoff=$MAX_BACKOFF" "$name" "$@" \
    </dev/null >/dev/null 2>&1 &
  echo $! >"$RUNDIR/pids/$name.sup"
}

wait_for_line() {  # wait_for_line FILE PATTERN SECONDS
  local deadline=$((SECONDS + $3))
  until grep -q "$2" "$1" 2>/dev/null; do
    if [ $SECONDS -ge $deadline ]; then
      echo "local_cluster.sh: timed out waiting for '$2' in $1" >&2
      tail -20 "$1" >&2 || true
      return 1
    fi
    sleep 0.2
  done
}

start() {
  if [ -e "$RUNDIR/cluster.env" ] && status >/dev/null 2>&1; then
    echo "local_cluster.sh: a cluster already runs in $RUNDIR (stop it first)" >&2
    exit 1
  fi
  local coordinator shard worker
  coordinator=$(binary ps_coordinator server/coordinator)
  shard=$(binary ps_server server)
  worker=$(binary ps_worker worker)
  mkdir -p "$RUNDIR/logs" "$RUNDIR/pids" "$RUNDIR/data"
  rm -f "$RUNDIR/stopping"
  [ -n "$PORT" ] || PORT=$(free_port)
  local addr=127.0.0.1:$PORT
  {
    echo "COORDINATOR=$addr"
    echo "SHARDS=$SHARDS"
    echo "WORKERS=$WORKERS"
  } >"$RUNDIR/cluster.env"

  : >"$RUNDIR/logs/coordinator.log"
  launch coordinator "$coordinator" --host=127.0.0.1 --port="$PORT" \
    --data_dir="$RUNDIR/data/coordinator" --data_root="$DATA_ROOT" --num_shards="$SHARDS" \
    $COORDINATOR_FLAGS
  wait_for_line "$RUNDIR/logs/coordinator.log" "listening on" 60

  for ((i = 0; i < SHARDS; i++)); do
    local p
    p=$(free_port)
    : >"$RUNDIR/logs/shard$i.log"
    launch "shard$i" "$shard" --host=127.0.0.1 --port="$p" --shard_id="$i" --num_shards="$SHARDS" \
      --data_dir="$RUNDIR/data/shard$i" --coordinator="$addr" $SHARD_FLAGS
  done
  local cpu_threads=$(($(nproc) / (SHARDS + WORKERS)))
  [ "$cpu_threads" -ge 1 ] || cpu_threads=1
  for ((i = 0; i < WORKERS; i++)); do
    : >"$RUNDIR/logs/worker$i.log"
    launch "worker$i" "$worker" --coordinator="$addr" --device="$DEVICE" --data_root="$DATA_ROOT" \
      --cpu_threads="$cpu_threads" $WORKER_FLAGS
  done
  for ((i = 0; i < SHARDS; i++)); do
    wait_for_line "$RUNDIR/logs/shard$i.log" "registered with the coordinator" 60
  done
  for ((i = 0; i < WORKERS; i++)); do
    wait_for_line "$RUNDIR/logs/worker$i.log" "registered with the coordinator" 60
  done
  echo "coordinator at $addr"
}

stop() {
  [ -d "$RUNDIR/pids" ] || { echo "no cluster in $RUNDIR"; return 0; }
  touch "$RUNDIR/stopping"
  local f pid
  for f in "$RUNDIR"/pids/*.sup; do
    [ -e "$f" ] || continue
    pid=$(cat "$f")
    kill -TERM "$pid" 2>/dev/null || true
  done
  for f in "$RUNDIR"/pids/*.pid; do
    [ -e "$f" ] || continue
    pid=$(cat "$f")
    kill -TERM "$pid" 2>/dev/null || true
  done
  # Give daemons 10 s to drain, then SIGKILL what is left.
  local deadline=$((SECONDS + 10))
  for f in "$RUNDIR"/pids/*.pid "$RUNDIR"/pids/*.sup; do
    [ -e "$f" ] || continue
    pid=$(cat "$f")
    while kill -0 "$pid" 2>/dev/null && [ $SECONDS -lt $deadline ]; do sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null || true
  done
  rm -rf "$RUNDIR/pids" "$RUNDIR/cluster.env"
  echo "stopped cluster in $RUNDIR"
}

status() {
  [ -e "$RUNDIR/cluster.env" ] || { echo "no cluster in $RUNDIR"; return 1; }
  # shellcheck disable=SC1091
  . "$RUNDIR/cluster.env"
  local all=0 f name pid restarts
  for f in "$RUNDIR"/pids/*.pid; do
    name=$(basename "$f" .pid)
    pid=$(cat "$f")
    restarts=$(grep -c "^.* $name (pid" "$RUNDIR/logs/supervisor.log" 2>/dev/null || true)
    if kill -0 "$pid" 2>/dev/null; then
      printf '%-12s running  pid %-8s restarts %s\n' "$name" "$pid" "${restarts:-0}"
    else
      printf '%-12s DOWN     pid %-8s restarts %s\n' "$name" "$pid" "${restarts:-0}"
      all=1
    fi
  done
  echo "coordinator at $COORDINATOR"
  return $all
}

case "$cmd" in
  start) start ;;
  stop) stop ;;
  status) status ;;
  _supervise)  # Internal: _supervise --dir=RUNDIR --max_backoff=S NAME CMD...
    RUNDIR=${1#--dir=}
    MAX_BACKOFF=${2#--max_backoff=}
    shift 2
    supervise "$@"
    ;;
  *)
    sed -n '2,18p' "$0" | sed 's/^# \{0,1\}//'
    exit 1
    ;;
esac
