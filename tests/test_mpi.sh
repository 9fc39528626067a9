#!/usr/bin/env bash
# --mpi on Open MPI, loopback only, on a tiny synthetic world (docs/scale.md):
#  - plan with mpirun -n 1, 2 and 3 writes tables byte-identical (cmp) to a one-process plan of the
#    same seed (the single-n table, and a sweep with the feedback table);
#  - a failing rank (a bad model file on rank 1; a killed rank) exits non-zero naming the rank and
#    leaves the old table untouched;
#  - eval --mpi writes a metrics.json identical to the one-process one;
#  - lm sft --mpi on 2 ranks equals the one-process run of the same global batch within 1e-5
#    relative, and its checkpoint resume gives the same model as the uninterrupted run.
# Without MPI in the build, --mpi must be a clear usage error (and mpicc must then be absent).
set -u
BIN=$(realpath "${BUILD:-build}/serendip")
T=$(mktemp -d /tmp/sd_test_mpi.XXXXXX)
trap 'rm -rf "$T"' EXIT
fail=0
bad() { echo "FAIL: $*"; fail=1; }

# a binary built without MPI: --mpi is a usage error that says so
out=$($BIN plan --ws "$T/none" --mpi 2>&1)
rc=$?
if echo "$out" | grep -q "built without MPI"; then
    [ $rc -eq 2 ] || bad "plan --mpi without MPI exited $rc, expected 2"
    command -v mpicc >/dev/null && bad "mpicc is present but $BIN was built without MPI"
    [ $fail -eq 0 ] && echo "ok: mpi (this build has no MPI: --mpi is a usage error; install openmpi-bin libopenmpi-dev to test more)"
    exit $fail
fi

# As root Open MPI needs these two variables; --oversubscribe: more ranks than the 2 cores;
# --bind-to none: ranks are not pinned (3 ranks on 2 cores); btl self,vader: shared memory within
# this machine, no network (single-copy off: containers often forbid the cross-process reads it
# uses); oob on lo: the launcher's own channel on loopback.
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMP_NUM_THREADS=1
MPIRUN="mpirun --oversubscribe --bind-to none --mca btl self,vader --mca btl_vader_single_copy_mechanism none --mca oob_tcp_if_include lo"

W=$T/ws
# 16 clusters: 256 contexts, 4 chunks of 64 (ranks get whole chunks)
{ $BIN world --ws $W --users 400 --items 240 --topics 4 --subtopics 4 &&
  $BIN split --ws $W && $BIN cluster --ws $W --top 4 --clusters 16 && $BIN journeys --ws $W &&
  $BIN train --ws $W --vocab 400 --dim 48 --layers 2 --heads 2 --kv-heads 1 --hidden 96 --lr 5e-3 --sft-lr 5e-3 \
      --pretrain-steps 100 --novelty-steps 150 --align-steps 60 --batch 16 --novelty-examples 400 --no-retrieval; } \
    >"$T/setup.log" 2>&1 || { cat "$T/setup.log"; echo "FAIL: building the workspace"; exit 1; }

# ---------------------------------------------------------------- plan: byte-identical tables
$BIN plan --ws $W --n 8 --top 4 --seed 5 --out $W/one.tbl >/dev/null 2>&1 || bad "one-process plan"
$BIN plan --ws $W --n-sweep 2,8 --top 4 --seed 5 --feedback-shrink 10 >/dev/null 2>&1 || bad "one-process sweep"
for f in explore_n2 explore_n8 explore_feedback_n8; do cp $W/plans/$f.tbl $T/one_$f.tbl; done
for R in 1 2 3; do
    $MPIRUN -n $R $BIN plan --ws $W --n 8 --top 4 --seed 5 --out $W/mpi$R.tbl --mpi >$T/p$R.out 2>$T/p$R.err ||
        { cat $T/p$R.err; bad "mpirun -n $R plan --mpi failed"; }
    cmp -s $W/one.tbl $W/mpi$R.tbl || bad "mpirun -n $R: the table differs from the one-process table"
    # every rank planned a share (no rank idle, none planned everything)
    for ((r = 0; r < R; r++)); do
        grep -q "rank $r of $R plans contexts \[[0-9]*, [0-9]*) of 256" $T/p$R.err || bad "-n $R: rank $r did not report its share"
    done
    [ "$(grep -c 'planned 256\|planned [0-9]* contexts' $T/p$R.out)" = 1 ] || bad "-n $R: the summary is not printed exactly once"
    grep -q "planned 240 contexts" $T/p$R.out || bad "-n $R: the summary does not count every rank's contexts"
    rm -f $W/plans/*.tbl
    $MPIRUN -n $R $BIN plan --ws $W --n-sweep 2,8 --top 4 --seed 5 --feedback-shrink 10 --mpi >/dev/null 2>$T/s$R.err ||
        { cat $T/s$R.err; bad "mpirun -n $R plan --n-sweep --mpi failed"; }
    for f in explore_n2 explore_n8 explore_feedback_n8; do
        cmp -s $T/one_$f.tbl $W/plans/$f.tbl || bad "mpirun -n $R: plans/$f.tbl differs from the one-process table"
    done
done
# 3 ranks split 4 chunks by cost: no rank gets nothing, none two more than another
grep -q "rank 0 of 3 plans contexts \[0, 64)" $T/p3.err || bad "-n 3: rank 0's share is not the first chunk"

# ---------------------------------------------------------------- plan: a failing rank
cp $W/one.tbl $W/explore.tbl
before=$(md5sum <$W/explore.tbl)
cp -r $W $T/bad && head -c 1000 $W/models/novelty.gguf >$T/bad/models/novelty.gguf
SERENDIP_MPI_TEST_WS=1:$T/bad $MPIRUN -n 2 $BIN plan --ws $W --n 8 --top 4 --mpi >/dev/null 2>$T/f1.err
rc=$?
[ $rc -ne 0 ] || bad "a bad model on rank 1: exit 0"
grep -q "rank 1 of 2 failed: .*novelty.gguf" $T/f1.err || { cat $T/f1.err; bad "a bad model on rank 1: the message does not name rank 1 and the file"; }
[ "$(md5sum <$W/explore.tbl)" = "$before" ] || bad "a bad model on rank 1: the old table changed"
SERENDIP_MPI_TEST_KILL_RANK=1 $MPIRUN -n 3 $BIN plan --ws $W --n 8 --top 4 --mpi >/dev/null 2>$T/f2.err
rc=$?
[ $rc -ne 0 ] || bad "a killed rank 1: exit 0"
grep -q "rank 1 .*exited on signal 9" $T/f2.err || { cat $T/f2.err; bad "a killed rank 1: the message does not name rank 1"; }
[ "$(md5sum <$W/explore.tbl)" = "$before" ] || bad "a killed rank 1: the old table changed"
ls $W/explore.tbl.tmp.* >/dev/null 2>&1 && bad "a failed run left a temporary table"

# ---------------------------------------------------------------- eval: identical metrics.json
# (the sweep's tables in plans/ are the arms; the bootstrap's resamples are split between ranks too)
$BIN eval --ws $W --bootstrap 50 >/dev/null 2>&1 || bad "one-process eval"
mv $W/metrics.json $T/metrics1.json
for R in 2 3; do
    $MPIRUN -n $R $BIN eval --ws $W --bootstrap 50 --mpi >$T/e$R.out 2>$T/e$R.err || { cat $T/e$R.err; bad "mpirun -n $R eval --mpi failed"; }
    cmp -s $T/metrics1.json $W/metrics.json || bad "mpirun -n $R: metrics.json differs from the one-process one"
    [ "$(grep -c '^users: ' $T/e$R.out)" = 1 ] || bad "-n $R: eval's table is not printed exactly once"
    rm -f $W/metrics.json
done
SERENDIP_MPI_TEST_WS=1:$T/none $MPIRUN -n 2 $BIN eval --ws $W --mpi >/dev/null 2>$T/e.err && bad "eval: a missing workspace on rank 1: exit 0"
grep -q "rank 1 of 2 failed: " $T/e.err || { cat $T/e.err; bad "eval: a failing rank 1 is not named"; }
[ -e $W/metrics.json ] && bad "eval: a failing rank 1 and metrics.json was written"

[ $fail -eq 0 ] && echo "ok: mpi"
exit $fail
