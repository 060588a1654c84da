#!/usr/bin/env bash
# SLURM for real: installs Debian's slurm-wlm and munge when missing, starts a one-node
# cluster on this machine, submits ci/slurm/test-grid.toml as a 4-task array with
# ci/slurm/grid-array.sbatch, pre-empts a task in the middle of a training cell
# (`scontrol requeue`, as a pre-empting scheduler does; the job was submitted with --requeue),
# waits for the array, checks that the requeued task resumed the pre-empted cell from its
# checkpoint, and that the merged records equal those of an unsharded run: same cells, same
# training curves (to the bit), same per-image recall errors.
# Needs the real images (PCMEM_DATA_DIR, ../shared/data in CI).
set -euo pipefail
cd "$(dirname "$0")/../.."
start=$(date +%s)
data="${PCMEM_DATA_DIR:-../shared/data}"
[ -d "$data/cifar-10-subset" ] || [ -d "$data/cifar-10-batches-bin" ] || {
  echo "ci/slurm/test-array.sh: no CIFAR-10 under $data (set PCMEM_DATA_DIR)"; exit 1; }
data="$(cd "$data" && pwd)"
if ! command -v slurmctld >/dev/null || ! command -v munged >/dev/null; then
  apt-get install -y -q slurm-wlm munge >/dev/null
fi
cargo build -q -p pcmem-cli
bin="$PWD/target/debug/pcmem"
work="$(mktemp -d /tmp/pcmem-slurm.XXXXXX)"
host="$(hostname -s)"
cleanup() {
  scancel --quiet --user=root 2>/dev/null || true
  [ -f "$work/slurmd.pid" ] && kill "$(cat "$work/slurmd.pid")" 2>/dev/null || true
  [ -f "$work/slurmctld.pid" ] && kill "$(cat "$work/slurmctld.pid")" 2>/dev/null || true
  [ -f "$work/munged.pid" ] && kill "$(cat "$work/munged.pid")" 2>/dev/null || true
}
trap cleanup EXIT
mkdir -p "$work/state" "$work/spool" "$work/munge"
cat > "$work/slurm.conf" <<CONF
ClusterName=pcmem
SlurmctldHost=$host(127.0.0.1)
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
StateSaveLocation=$work/state
SlurmdSpoolDir=$work/spool
SlurmctldPidFile=$work/slurmctld.pid
SlurmdPidFile=$work/slurmd.pid
SlurmctldLogFile=$work/slurmctld.log
SlurmdLogFile=$work/slurmd.log
SlurmctldPort=16817
SlurmdPort=16818
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
ReturnToService=2
MpiDefault=none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
KillWait=5
NodeName=$host NodeAddr=127.0.0.1 CPUs=2 RealMemory=8000 State=UNKNOWN
PartitionName=test Nodes=$host Default=YES MaxTime=INFINITE State=UP
CONF
export SLURM_CONF="$work/slurm.conf"
munged --force --socket="$work/munge/munge.socket" --pid-file="$work/munged.pid" \
  --log-file="$work/munged.log" --seed-file="$work/munge/seed"
export MUNGE_SOCKET="$work/munge/munge.socket"
# slurm reads the socket path from its own build default; point it there through a link.
mkdir -p /run/munge && ln -sf "$work/munge/munge.socket" /run/munge/munge.socket.2
slurmctld -f "$SLURM_CONF"
slurmd -f "$SLURM_CONF"
for _ in $(seq 30); do sinfo -h -o %T 2>/dev/null | grep -q idle && break; sleep 1; done
sinfo

echo "== unsharded reference run"
"$bin" run ci/slurm/test-grid.toml --data-dir "$data" --out "$work/ref" --offline

echo "== 4-task array, one task pre-empted mid-training"
job=$(GRID=ci/slurm/test-grid.toml PROFILE=quick OUT="$work/arr" PCMEM_BIN="$bin" CHECKPOINT_EVERY=1s \
  PCMEM_DATA_DIR="$data" sbatch --parsable --array=0-3 --cpus-per-task=1 --mem=1G \
  --time=10 --output="$work/task-%a.out" --export=ALL ci/slurm/grid-array.sbatch)
echo "submitted array job $job"
# Wait for a cell in training (its lock file names the process), then requeue the array task
# that process belongs to.
preempted=""
for _ in $(seq 120); do
  lock=$(find "$work/arr" -name '*.json.lock' 2>/dev/null | head -n 1 || true)
  if [ -n "$lock" ]; then
    sleep 4
    pid=$(sed -n 's/^pid=\([0-9]*\).*/\1/p' "$lock" 2>/dev/null || true)
    task=$(tr '\0' '\n' < "/proc/$pid/environ" 2>/dev/null | sed -n 's/^SLURM_ARRAY_TASK_ID=//p' || true)
    if [ -n "$task" ] && [ -f "$lock" ]; then
      cell=$(basename "$lock" .json.lock)
      scontrol requeue "${job}_${task}"
      preempted="task ${job}_${task} while it was training $cell"
      break
    fi
  fi
  sleep 1
done
[ -n "$preempted" ] || { echo "no task could be pre-empted"; exit 1; }
echo "pre-empted $preempted"
for _ in $(seq 600); do
  [ -z "$(squeue -h -j "$job" 2>/dev/null)" ] && break
  sleep 2
done
cat "$work"/task-*.out
# The pre-empted cell was computed again by its requeued task, and recorded once.
[ -f "$work/arr/runs/slurm/quick/$cell.json" ] || { echo "$cell has no record"; exit 1; }
[ -z "$(squeue -h -j "$job")" ] || { echo "array did not finish"; exit 1; }
# ... and resumed from its checkpoint rather than from epoch 0.
python3 - "$work/arr/runs/slurm/quick/$cell.json" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
e = r["fit"].get("resumed_at_epoch")
assert e, f"{sys.argv[1]}: the pre-empted cell did not resume from a checkpoint"
print(f"pre-empted cell resumed after epoch {e} of {len(r['fit']['curve'])}")
PY

echo "== merged records against the unsharded run"
python3 - "$work/ref" "$work/arr" <<'PY'
import glob, json, os, sys
ref, arr = sys.argv[1:3]
def load(d):
    out = {}
    for p in glob.glob(os.path.join(d, "runs", "slurm", "quick", "*.json")):
        r = json.load(open(p))
        out[os.path.basename(p)] = (r["fit"]["curve"], [(x["corruption"], x["mse"]) for x in r["recall"]])
    return out
a, b = load(ref), load(arr)
assert a.keys() == b.keys(), (sorted(a), sorted(b))
bad = [k for k in a if a[k] != b[k]]
assert not bad, f"records differ: {bad}"
print(f"{len(a)} cells: the array's records equal the unsharded run's (curves and per-image errors)")
PY
left=$(find "$work/arr" -name '*.lock' -o -name '*.tmp-*' | wc -l)
[ "$left" -eq 0 ] || { echo "$left lock or temporary files left"; exit 1; }
echo "ci/slurm/test-array.sh: passed in $(( $(date +%s) - start )) s"
