#!/usr/bin/env bash
# A real one-node SLURM cluster on this machine (munged, slurmctld, slurmd from Debian's slurm-wlm, a generated
# slurm.conf in a temporary folder), driven through launch/slurm/train.sbatch and `pathvlm sweep`:
#   (a) the single-job template, a tiny `lm` config on 2 CPU tasks (srun --mpi=pmix): exit 0, model exported;
#   (b) a 2-point sweep as one job array: both points done; `sweep status` and `runs compare` show them; launching
#       it again submits nothing;
#   (c) preemption: `scancel --signal=USR1` mid-run -> checkpoint, exit 42, `scontrol requeue`, resume, completion
#       with an exported model byte-identical to (a)'s uninterrupted one;
#   (d) the template's notes: without PMIx a 1-task job trains and a 2-task one stops with a clear error; what a
#       requeue hold looks like.
# Stops the daemons it started (by PID). Exit 77 (ctest: skipped) with the reason when not root or SLURM is missing.
#
#   tests/sweep/slurm_cluster_test.sh PATHVLM_BINARY SOURCE_DIR      (PATHVLM_KEEP_SLURM_DIR=1 keeps the folder)
set -uo pipefail
BIN=$(readlink -f "${1:?usage: slurm_cluster_test.sh PATHVLM SOURCE_DIR}")
SRC=$(readlink -f "${2:?usage: slurm_cluster_test.sh PATHVLM SOURCE_DIR}")

skip() { echo "SKIP: $*"; exit 77; }
[ "$(id -u)" -eq 0 ] || skip "needs root to run slurmctld/slurmd (uid $(id -u))"
for tool in munged slurmctld slurmd sbatch srun squeue scontrol scancel sinfo; do
  command -v "$tool" > /dev/null || skip "$tool not found (apt-get install slurm-wlm munge)"
done
srun --version > /dev/null 2>&1 || true

T=$(mktemp -d /tmp/pathvlm_slurm.XXXXXX)
PIDS=()
cleanup() {
  for pid in "${PIDS[@]}"; do kill "$pid" 2> /dev/null; done
  for pid in "${PIDS[@]}"; do
    for _ in $(seq 50); do kill -0 "$pid" 2> /dev/null || break; sleep 0.1; done
    kill -9 "$pid" 2> /dev/null
  done
  [ "${PATHVLM_KEEP_SLURM_DIR:-0}" = 1 ] && echo "kept $T" || rm -rf "$T"
}
trap cleanup EXIT
START=$(date +%s)
fail() {
  echo "FAIL: $*"
  for f in "$T"/slurmctld.log "$T"/slurmd.log "$T"/*.out "$T"/sweep/logs/*; do
    [ -f "$f" ] && { echo "---- $f (last 30 lines)"; tail -n 30 "$f"; }
  done
  exit 1
}
step() { echo "[$(( $(date +%s) - START ))s] $*"; }

# ---- the cluster -------------------------------------------------------------------------------------------------
mkdir -p "$T/state" "$T/spool" "$T/munge"
chmod 700 "$T/munge"
head -c 1024 /dev/urandom > "$T/munge/munge.key"
chmod 400 "$T/munge/munge.key"
munged -F -f --key-file="$T/munge/munge.key" --socket="$T/munge/munge.socket" --pid-file="$T/munge/munged.pid" \
  --seed-file="$T/munge/munged.seed" --log-file="$T/munge/munged.log" > "$T/munged.out" 2>&1 &
PIDS+=($!)

free_port() {  # a random port nothing listens on
  local port
  while true; do
    port=$(( 20000 + RANDOM % 40000 ))
    (exec 3<> "/dev/tcp/127.0.0.1/$port") 2> /dev/null || { echo "$port"; return; }
  done
}
HOST=$(hostname -s)
CPUS=2
MEM=$(free -m | awk '/^Mem:/ {print int($2 * 0.8)}')
cat > "$T/slurm.conf" <<EOF
ClusterName=pathvlmtest
SlurmctldHost=$HOST(127.0.0.1)
SlurmctldPort=$(free_port)
SlurmdPort=$(free_port)
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$T/munge/munge.socket
StateSaveLocation=$T/state
SlurmdSpoolDir=$T/spool
SlurmctldPidFile=$T/slurmctld.pid
SlurmdPidFile=$T/slurmd.pid
SlurmctldLogFile=$T/slurmctld.log
SlurmdLogFile=$T/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
SchedulerType=sched/builtin
MpiDefault=pmix
JobRequeue=1
RequeueExitHold=43
ReturnToService=2
SlurmdParameters=config_overrides
MinJobAge=600
NodeName=$HOST NodeAddr=127.0.0.1 CPUs=$CPUS RealMemory=$MEM State=UNKNOWN
PartitionName=debug Nodes=$HOST Default=YES MaxTime=INFINITE State=UP
EOF
export SLURM_CONF=$T/slurm.conf
for _ in $(seq 50); do [ -S "$T/munge/munge.socket" ] && break; sleep 0.1; done
[ -S "$T/munge/munge.socket" ] || fail "munged did not start: $(cat "$T/munged.out" "$T/munge/munged.log" 2> /dev/null)"
slurmctld -D -c -f "$SLURM_CONF" > "$T/slurmctld.out" 2>&1 &
PIDS+=($!)
slurmd -D -f "$SLURM_CONF" -N "$HOST" > "$T/slurmd.out" 2>&1 &
PIDS+=($!)
for _ in $(seq 100); do
  [ "$(sinfo -h -n "$HOST" -o %T 2> /dev/null)" = idle ] && break
  sleep 0.2
done
[ "$(sinfo -h -n "$HOST" -o %T 2> /dev/null)" = idle ] || fail "the node did not come up: $(sinfo 2>&1)"
srun --mpi=list 2>&1 | grep -q pmix || skip "srun has no pmix plugin: $(srun --mpi=list 2>&1 | tr '\n' ' ')"
step "cluster up: node $HOST, $CPUS CPUs"

# Waits until job $1 (or every task of array $1) has left the queue, at most $2 seconds.
wait_job() {
  for _ in $(seq $(( $2 * 5 ))); do
    [ -z "$(squeue -h -j "$1" 2> /dev/null)" ] && return 0
    sleep 0.2
  done
  fail "job $1 still queued after $2 s: $(squeue -j "$1" 2>&1)"
}
job_field() { scontrol show job "$1" 2> /dev/null | tr ' ' '\n' | sed -n "s/^$2=//p" | head -n 1; }

# ---- data and the tiny config --------------------------------------------------------------------------------------
"$BIN" synth text --out "$T/text" --train 300 --eval 30 > "$T/synth.out" 2>&1 || fail "synth text: $(cat "$T/synth.out")"
cat > "$T/lm.yaml" <<EOF
run: {task: lm, seed: 0, runs_dir: $T/runs}
log: {every: 1, tensorboard: false, flush_secs: 0}
train: {steps: 40, micro_batch_size: 8, device: cpu}
optim: {lr: 3.0e-3, warmup_steps: 4}
checkpoint: {every_steps: 10, keep_last: 2, resume: auto}
eval: {every: 20}
lm:
  model: tiny
  tokenizer: $T/text/tokenizer.model
  seq_len: 32
  data: {train: [$T/text/train.jsonl], eval: [$T/text/eval.jsonl], workers: 1}
  eval: {max_sequences: 16}
EOF
step "data and config ready"

submit_single() {  # $1: run name, then sbatch options
  local name=$1
  shift
  (cd "$SRC" && sbatch --parsable --ntasks=2 --cpus-per-task=1 --output="$T/$name.out" "$@" \
     --export=ALL,PATHVLM="$BIN" launch/slurm/train.sbatch "$T/lm.yaml" run.name="$name")
}

# ---- (a) the single-job template on 2 CPU tasks --------------------------------------------------------------------
JOB_A=$(submit_single single) || fail "sbatch (a): $JOB_A"
wait_job "$JOB_A" 120
[ "$(job_field "$JOB_A" JobState)" = COMPLETED ] && [ "$(job_field "$JOB_A" ExitCode)" = 0:0 ] ||
  fail "(a) job $JOB_A: state $(job_field "$JOB_A" JobState), exit $(job_field "$JOB_A" ExitCode)"
grep -q "(2 processes)" "$T/single.out" || fail "(a) did not train on 2 processes"
[ -f "$T/runs/single/export/model.safetensors" ] || fail "(a) exported no model"
step "(a) single job $JOB_A: 2 tasks, exit 0"

# ---- (c) preemption, while (a)'s model is the uninterrupted reference ---------------------------------------------
JOB_C=$(submit_single preempt) || fail "sbatch (c): $JOB_C"
for _ in $(seq 600); do
  grep -q '"step":1[2-9]' "$T/runs/preempt/metrics.jsonl" 2> /dev/null && break
  sleep 0.1
done
grep -q '"step":1[2-9]' "$T/runs/preempt/metrics.jsonl" 2> /dev/null || fail "(c) the run did not reach step 12"
scancel --signal=USR1 "$JOB_C" || fail "(c) scancel --signal=USR1 $JOB_C failed"
step "(c) job $JOB_C sent SIGUSR1 at step $(tail -n 1 "$T/runs/preempt/metrics.jsonl" | sed 's/.*"step":\([0-9]*\).*/\1/')"
requeued_pending() { [ "$(job_field "$JOB_C" Restarts)" -ge 1 ] 2> /dev/null && [ "$(job_field "$JOB_C" JobState)" = PENDING ]; }
for _ in $(seq 600); do
  requeued_pending && [ "$(job_field "$JOB_C" Reason)" = BeginTime ] && break
  sleep 0.1
done
requeued_pending || fail "(c) job $JOB_C was not requeued: $(scontrol show job "$JOB_C")"
[ "$(job_field "$JOB_C" Reason)" = BeginTime ] || fail "(c) requeued job $JOB_C: reason $(job_field "$JOB_C" Reason)"
step "(c) requeued: $(job_field "$JOB_C" JobState), reason BeginTime until $(job_field "$JOB_C" EligibleTime)"
# Slurm lets a requeued batch job start only 120 s later. Starting it at once can fail: the old step's PMIx socket
# (spool/stepd.slurm.pmix.<job>.0, the same name for the new step) lingers while its slurmstepd cleans up. So wait
# for the node to be idle and the socket gone, then move the start to now (an administrator's update).
for _ in $(seq 300); do
  [ "$(sinfo -h -n "$HOST" -o %T)" = idle ] && ! ls "$T"/spool/stepd.slurm.pmix."$JOB_C".* > /dev/null 2>&1 && break
  sleep 0.2
done
sleep 1
scontrol update JobId="$JOB_C" StartTime=now || fail "(c) scontrol update StartTime=now failed"
wait_job "$JOB_C" 240
[ "$(job_field "$JOB_C" JobState)" = COMPLETED ] && [ "$(job_field "$JOB_C" ExitCode)" = 0:0 ] ||
  fail "(c) job $JOB_C: state $(job_field "$JOB_C" JobState), exit $(job_field "$JOB_C" ExitCode)"
grep -q "preemption signal received" "$T/preempt.out" || fail "(c) no preemption message in the job log"
grep -q "requeueing job $JOB_C" "$T/preempt.out" || fail "(c) the template did not requeue"
grep -q "resumed from .*step_000000" "$T/preempt.out" || fail "(c) the requeued job did not resume"
cmp "$T/runs/single/export/model.safetensors" "$T/runs/preempt/export/model.safetensors" ||
  fail "(c) the resumed run's model differs from the uninterrupted run's"
step "(c) preempted, requeued $(job_field "$JOB_C" Restarts)x, resumed; model byte-identical to (a)"

# ---- (b) a 2-point sweep as one job array -------------------------------------------------------------------------
cat > "$T/sweep.yaml" <<EOF
base: lm.yaml
set: {train.steps: 12, eval.every: 6, checkpoint.every_steps: 6}
grid: {optim.lr: [1.0e-3, 3.0e-3]}
launch: {ranks: 1, cpus_per_task: 1, gpus_per_task: 0, throttle: 2}
EOF
(cd "$SRC" && "$BIN" sweep "$T/sweep.yaml" --dry-run) > "$T/dry.txt" 2>&1 || fail "(b) dry run: $(cat "$T/dry.txt")"
grep -q "lr=3.0e-3" "$T/dry.txt" || fail "(b) dry run lists no point lr=3.0e-3: $(cat "$T/dry.txt")"
(cd "$SRC" && "$BIN" sweep "$T/sweep.yaml" --launch slurm --dir "$T/sweep") > "$T/submit.txt" 2>&1 ||
  fail "(b) sweep --launch slurm: $(cat "$T/submit.txt")"
JOB_B=$(sed -n 's/^submitted job array \([0-9]*\).*/\1/p' "$T/submit.txt")
[ -n "$JOB_B" ] || fail "(b) no job id in: $(cat "$T/submit.txt")"
grep -q "%2" "$T/submit.txt" || fail "(b) the array has no throttle: $(cat "$T/submit.txt")"
grep -q "slurm	$JOB_B	0,1" "$T/sweep/jobs.txt" || fail "(b) jobs.txt does not record $JOB_B: $(cat "$T/sweep/jobs.txt")"
wait_job "$JOB_B" 180
"$BIN" sweep status "$T/sweep" > "$T/status.txt" 2>&1 || fail "(b) sweep status: $(cat "$T/status.txt")"
[ "$(grep -c '| done ' "$T/status.txt")" -eq 2 ] || fail "(b) not both points done: $(cat "$T/status.txt")"
grep -q "12/12" "$T/status.txt" || fail "(b) no step 12/12 in: $(cat "$T/status.txt")"
grep -q "resolved config of" "$T/status.txt" || fail "(b) no best config: $(cat "$T/status.txt")"
[ -s "$T/sweep/eval_accuracy.png" ] || fail "(b) no plot: $(ls "$T/sweep")"
"$BIN" runs compare "$T/sweep/lr=1.0e-3" "$T/sweep/lr=3.0e-3" --format csv > "$T/compare.csv" 2>&1 ||
  fail "(b) runs compare: $(cat "$T/compare.csv")"
[ "$(grep -c ',done,12,12,' "$T/compare.csv")" -eq 2 ] || fail "(b) runs compare: $(cat "$T/compare.csv")"
ls "$T"/sweep/logs/*_"$JOB_B"_0.out "$T"/sweep/logs/*_"$JOB_B"_1.out > /dev/null || fail "(b) no per-task logs"
(cd "$SRC" && "$BIN" sweep "$T/sweep.yaml" --launch slurm --dir "$T/sweep") > "$T/resubmit.txt" 2>&1 ||
  fail "(b) resubmission: $(cat "$T/resubmit.txt")"
grep -q "nothing to launch" "$T/resubmit.txt" || fail "(b) resubmission launched again: $(cat "$T/resubmit.txt")"
step "(b) sweep array $JOB_B: 2 points done, status and compare shown, resubmission skipped them"

# ---- (d) what the template's header says: without PMIx 1 task trains, 2 tasks stop; a requeue hold ------------------
NOPMIX=(--export=ALL,PATHVLM="$BIN",PATHVLM_SRUN_MPI=none)
JOB_D1=$(cd "$SRC" && sbatch --parsable --ntasks=1 --output="$T/nopmix1.out" "${NOPMIX[@]}" launch/slurm/train.sbatch \
         "$T/lm.yaml" run.name=nopmix1 train.steps=6 eval.every=0) || fail "sbatch (d1): $JOB_D1"
JOB_D2=$(cd "$SRC" && sbatch --parsable --ntasks=2 --output="$T/nopmix2.out" "${NOPMIX[@]}" launch/slurm/train.sbatch \
         "$T/lm.yaml" run.name=nopmix2 train.steps=6 eval.every=0) || fail "sbatch (d2): $JOB_D2"
wait_job "$JOB_D2" 60
wait_job "$JOB_D1" 60
[ "$(job_field "$JOB_D1" JobState)" = COMPLETED ] || fail "(d) 1 task without PMIx: $(job_field "$JOB_D1" JobState)"
[ "$(job_field "$JOB_D2" JobState)" = FAILED ] || fail "(d) 2 tasks without PMIx: $(job_field "$JOB_D2" JobState)"
grep -q "no MPI launcher started the processes" "$T/nopmix2.out" || fail "(d) 2 tasks without PMIx: no clear error"
JOB_H=$(sbatch --parsable --requeue --output=/dev/null --wrap "sleep 60") || fail "sbatch (hold): $JOB_H"
for _ in $(seq 100); do [ "$(job_field "$JOB_H" JobState)" = RUNNING ] && break; sleep 0.1; done
scontrol requeuehold "$JOB_H" || fail "(d) scontrol requeuehold $JOB_H failed"
sleep 1
HOLD="$(job_field "$JOB_H" JobState) $(job_field "$JOB_H" Reason) / squeue: $(squeue -h -j "$JOB_H" -o '%T %r')"
case "$HOLD" in *[Hh]eld*) ;; *) fail "(d) the held job does not say held: $HOLD" ;; esac
scancel "$JOB_H"
JOB_X=$(sbatch --parsable --output=/dev/null --wrap "exit 43") || fail "sbatch (exit hold): $JOB_X"
for _ in $(seq 100); do [ "$(job_field "$JOB_X" Restarts)" -ge 1 ] 2> /dev/null && break; sleep 0.1; done
sleep 1
EXIT_HOLD="$(job_field "$JOB_X" JobState) $(job_field "$JOB_X" Reason) / squeue: $(squeue -h -j "$JOB_X" -o '%T %r')"
step "(d) without PMIx: 1 task trains, 2 tasks stop with a clear error; requeuehold: $HOLD; RequeueExitHold: $EXIT_HOLD"
case "$EXIT_HOLD" in SPECIAL_EXIT*) ;; *) fail "(d) a RequeueExitHold status does not hold the job: $EXIT_HOLD" ;; esac
scancel "$JOB_X"

cat "$T/status.txt" | head -n 6
echo "PASS in $(( $(date +%s) - START )) s"
