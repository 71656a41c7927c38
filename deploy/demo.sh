#!/usr/bin/env bash
# The main job, on a fresh Debian 12 machine: installs what is missing, builds, starts
# a local cluster (coordinator, 2 shards, 2 workers), trains the bundled Fashion-MNIST
# MLP with a live progress bar, prints the test accuracy beside the reference, exports
# the model, and stops the cluster.
#
#   deploy/demo.sh [--keep] [--job=deploy/jobs/fashion_mnist_mlp.textproto] [--dir=RUNDIR]
#
# --keep leaves the cluster running (stop it with deploy/local_cluster.sh stop --dir=RUNDIR).
# Jobs on deploy/data/binary100/ (the Keras / PyTorch examples) get their data made
# first by deploy/data/gen_binary100, e.g.
#   deploy/demo.sh --job=deploy/jobs/keras_mirrored_binary.textproto
# Exits 0 when the job reaches its target accuracy.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
KEEP=0
JOB=deploy/jobs/fashion_mnist_mlp.textproto
RUNDIR=/tmp/ps-demo
for arg in "$@"; do
  case "$arg" in
    --keep) KEEP=1 ;;
    --job=*) JOB=${arg#*=} ;;
    --dir=*) RUNDIR=${arg#*=} ;;
    *) echo "demo.sh: unknown argument $arg" >&2; exit 1 ;;
  esac
done

step() { printf '\n== %s\n' "$*"; }

step "1/5 installing what is missing (Debian packages)"
tests/deps.sh

step "2/5 building (bazel, optimised; the first build takes a while on 2 cores)"
bazel build --config=opt //server:ps_server //server/coordinator:ps_coordinator \
  //worker:ps_worker //client:psctl //deploy/data:gen_binary100
BIN_SRC=$(bazel info --config=opt bazel-bin 2>/dev/null)
"$ROOT/deploy/local_cluster.sh" stop --dir="$RUNDIR" >/dev/null 2>&1 || true
rm -rf "$RUNDIR"
mkdir -p "$RUNDIR/bin"
cp "$BIN_SRC/server/ps_server" "$BIN_SRC/server/coordinator/ps_coordinator" \
  "$BIN_SRC/worker/ps_worker" "$BIN_SRC/client/psctl" "$RUNDIR/bin/"
REFERENCE=""
case "$JOB" in
  *fashion_mnist_mlp.textproto) REFERENCE="reference (scikit-learn MLP, 100 hidden units) 0.8825" ;;
esac
if grep -q '"deploy/data/binary100/' "$JOB"; then
  gen_out=$("$BIN_SRC/deploy/data/gen_binary100" --out_dir="$ROOT/deploy/data/binary100")
  echo "$gen_out"
  REFERENCE="majority class $(echo "$gen_out" | sed -n 's/^test majority-class accuracy //p')"
fi

step "3/5 starting a local cluster: coordinator, 2 shards, 2 workers"
start_out=$("$ROOT/deploy/local_cluster.sh" start --shards=2 --workers=2 --dir="$RUNDIR" \
  --bin="$RUNDIR/bin" --data_root="$ROOT:/usr/share/datasets")
echo "$start_out"
COORD=$(echo "$start_out" | sed -n 's/^coordinator at //p')
export PS_COORDINATOR=$COORD
cleanup() {
  if [ $KEEP -eq 0 ]; then "$ROOT/deploy/local_cluster.sh" stop --dir="$RUNDIR" >/dev/null || true; fi
}
trap cleanup EXIT
PSCTL="$RUNDIR/bin/psctl"
"$PSCTL" cluster

step "4/5 training $(sed -n 's/^name: "\(.*\)"/\1/p' "$JOB") ($JOB)"
JOB_ID=$("$PSCTL" submit "$JOB" | tail -1)
echo "submitted $JOB_ID"
started=$SECONDS
set +e
"$PSCTL" watch "$JOB_ID"
watch_rc=$?
set -e
elapsed=$((SECONDS - started))

step "5/5 results"
STATUS_JSON=$("$PSCTL" status "$JOB_ID" --json)
"$PSCTL" export "$JOB_ID" --out "$RUNDIR/model.npz" >/dev/null && exported=1 || exported=0
python3 - "$STATUS_JSON" "$elapsed" "$REFERENCE" <<'PY'
import json, sys
s = json.loads(sys.argv[1])
acc = (s.get("eval") or {}).get("accuracy")
target = s.get("target_accuracy") or 0
print(f"job {s['job_id']} ({s['name']}): {s['state']} after {sys.argv[2]} s, "
      f"{s['total_clocks']} clocks, {s['recoveries']} recoveries")
if acc is not None:
    print(f"test accuracy {acc:.4f}   target {target:.3f}   {sys.argv[3]}")
PY
echo "checkpoints: $RUNDIR/data/shard0 $RUNDIR/data/shard1 (RocksDB; latest complete clock in 'psctl status $JOB_ID')"
[ $exported -eq 1 ] && echo "exported model: $RUNDIR/model.npz (numpy.load it)"
echo "logs: $RUNDIR/logs/"
if [ $KEEP -eq 1 ]; then
  echo "cluster left running: PS_COORDINATOR=$COORD; stop with deploy/local_cluster.sh stop --dir=$RUNDIR"
fi
python3 -c "
import json, sys
s = json.loads(sys.argv[1])
acc = (s.get('eval') or {}).get('accuracy') or 0
sys.exit(0 if s['state'] == 'SUCCEEDED' and acc >= (s.get('target_accuracy') or 0) else 1)
" "$STATUS_JSON" || { echo "demo: the job did not reach its target" >&2; exit 1; }
exit $watch_rc
