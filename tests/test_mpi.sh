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
# under make asan: Open MPI's own allocations outlive MPI_Finalize, which LeakSanitizer would report
# as our leaks (the non-MPI paths are leak-checked by the other tests)
[ -n "${SERENDIP_SANITIZED:-}" ] && export ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}detect_leaks=0"
# SERENDIP_TEST_BTL="self,tcp --mca btl_tcp_if_include lo" uses TCP on loopback instead (a container
# whose /dev/shm is too small for shared memory).
MPIRUN="mpirun --oversubscribe --bind-to none --mca mpi_yield_when_idle 1 --mca btl ${SERENDIP_TEST_BTL:-self,vader} --mca btl_vader_single_copy_mechanism none --mca oob_tcp_if_include lo"

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

# ---------------------------------------------------------------- lm sft --mpi: data-parallel
# The same global batch of 8 rows: one process, and 2 ranks of 4 rows each whose gradients are
# summed with MPI_Allreduce. The checkpoints hold the trainable floats, Adam's m and v.
ckpt_close() { # ckpt_close A B: every float block of A and B within 1e-5 relative (L2 and max)
    python3 - "$1" "$2" <<'PY'
import array, math, struct, sys
def blocks(p):
    b = open(p, 'rb').read()
    hs = struct.unpack('<I', b[12:16])[0]
    a = array.array('f'); a.frombytes(b[16 + hs:-8]); n = len(a) // 3
    return [a[:n], a[n:2 * n], a[2 * n:]]
ok = True
for name, x, y in zip(('weights', 'adam m', 'adam v'), blocks(sys.argv[1]), blocks(sys.argv[2])):
    if len(x) != len(y) or not len(x): print('sizes differ'); sys.exit(1)
    l2 = math.sqrt(sum((u - v) ** 2 for u, v in zip(x, y))) / max(math.sqrt(sum(u * u for u in x)), 1e-30)
    li = max(abs(u - v) for u, v in zip(x, y)) / max(max(abs(u) for u in x), 1e-30)
    if not (l2 <= 1e-5 and li <= 1e-5): print('%s: relative difference %.3g (L2), %.3g (max)' % (name, l2, li)); ok = False
sys.exit(0 if ok else 1)
PY
}
SFT="lm sft --model $W/models/base.gguf --data $W/corpus/novelty.jsonl --steps 20 --batch 8 --threads 1"
$BIN $SFT --out $T/sft1.gguf --checkpoint $T/sft1.ckpt >/dev/null 2>&1 || bad "one-process lm sft"
$MPIRUN -n 2 $BIN $SFT --out $T/sft2.gguf --checkpoint $T/sft2.ckpt --mpi >$T/t2.out 2>$T/t2.err ||
    { cat $T/t2.err; bad "mpirun -n 2 lm sft --mpi failed"; }
[ -s $T/sft2.gguf ] || bad "lm sft --mpi wrote no model"
ckpt_close $T/sft1.ckpt $T/sft2.ckpt || bad "lm sft --mpi on 2 ranks differs from one process by more than 1e-5"
[ "$(grep -c 'sft: wrote' $T/t2.out)" = 1 ] || bad "lm sft --mpi: the summary is not printed exactly once"
cmp -s $T/sft1.ckpt $T/sft2.ckpt && bad "lm sft --mpi: bit-identical to one thread (were the rows really split?)"
# one process of 2 threads splits each batch into the same 2 halves and sums them in the same
# order: 2 ranks of 1 thread are bit-identical to it
$BIN ${SFT/--threads 1/--threads 2} --out $T/sft1t2.gguf --checkpoint $T/sft1t2.ckpt >/dev/null 2>&1 || bad "lm sft --threads 2"
cmp -s $T/sft1t2.ckpt $T/sft2.ckpt || bad "lm sft --mpi on 2 ranks is not bit-identical to one process of 2 threads"
# a run stopped at step 10 and resumed (on 2 ranks, and on one process) ends where the whole run ends
$MPIRUN -n 2 $BIN $SFT --out $T/r.gguf --checkpoint $T/r.ckpt --stop-at 10 --mpi >/dev/null 2>&1 || bad "sft --mpi --stop-at"
cp $T/r.ckpt $T/r1.ckpt
$MPIRUN -n 2 $BIN $SFT --out $T/r.gguf --checkpoint $T/r.ckpt --resume $T/r.ckpt --mpi >/dev/null 2>$T/r.err || bad "sft --mpi --resume"
grep -q "resumed from .* at step 10" $T/r.err || bad "sft --mpi --resume did not resume at step 10"
cmp -s $T/r.ckpt $T/sft2.ckpt || bad "sft --mpi stopped and resumed differs from the uninterrupted 2-rank run"
$BIN $SFT --out $T/r1.gguf --checkpoint $T/r1.ckpt --resume $T/r1.ckpt >/dev/null 2>&1 || bad "one process resuming a 2-rank checkpoint"
ckpt_close $T/sft1.ckpt $T/r1.ckpt || bad "a 2-rank checkpoint resumed on one process drifts from the one-process run"

# ---------------------------------------------------------------- train --mpi: the whole stage
# rank 0 writes ws/models; 2 ranks of 1 thread give the models of one process of 2 threads, bit
# for bit (as above), and the base within 1e-5 of one thread's
TR="--vocab 400 --dim 48 --layers 2 --heads 2 --kv-heads 1 --hidden 96 --lr 5e-3 --sft-lr 5e-3 --pretrain-steps 40
    --novelty-steps 30 --align-steps 20 --batch 16 --novelty-examples 400 --no-retrieval"
for x in t1 t2 mpi; do mkdir -p $T/$x && cp $W/*.bin $W/*.json $W/manifest $T/$x/ 2>/dev/null; done
$BIN train --ws $T/t1 $TR >/dev/null 2>&1 || bad "train on one thread"
OMP_NUM_THREADS=2 $BIN train --ws $T/t2 $TR >/dev/null 2>&1 || bad "train on 2 threads"
$MPIRUN -n 2 $BIN train --ws $T/mpi $TR --mpi >$T/tm.out 2>$T/tm.err || { cat $T/tm.err; bad "mpirun -n 2 train --mpi failed"; }
for m in base novelty align; do cmp -s $T/t2/models/$m.gguf $T/mpi/models/$m.gguf || bad "train --mpi: $m.gguf differs from one process of 2 threads"; done
python3 - $T/t1/models/base.gguf $T/mpi/models/base.gguf <<'PY' || bad "train --mpi: base.gguf is not within 1e-5 of one thread's"
import array, math, sys
a, b = open(sys.argv[1], 'rb').read(), open(sys.argv[2], 'rb').read()
assert len(a) == len(b)
i = next(k for k in range(len(a)) if a[k] != b[k]); i -= i % 4  # the metadata is identical: floats from there
x = array.array('f'); x.frombytes(a[i:len(a) - (len(a) - i) % 4]); y = array.array('f'); y.frombytes(b[i:len(b) - (len(b) - i) % 4])
l2 = math.sqrt(sum((u - v) ** 2 for u, v in zip(x, y))) / math.sqrt(sum(u * u for u in x))
sys.exit(0 if 0 < l2 <= 1e-5 else 1)
PY
[ "$(grep -c '^models: ' $T/tm.out)" = 1 ] || bad "train --mpi: the report is not printed exactly once"
[ -z "$(find ${TMPDIR:-/tmp} -maxdepth 1 -name 'serendip-train-rank*' -newer $T/setup.log)" ] ||
    bad "train --mpi left a scratch workspace behind"
# a rank that fails alone (a missing workspace on rank 1) stops the job instead of hanging it
SERENDIP_MPI_TEST_WS=1:$T/none timeout 60 $MPIRUN -n 2 $BIN train --ws $T/mpi $TR --mpi >/dev/null 2>$T/tf.err
rc=$?
[ $rc -ne 0 ] && [ $rc -ne 124 ] || bad "train --mpi with a failing rank 1 exited $rc (0, or hung: 124)"
grep -q "rank 1 of 2 failed" $T/tf.err || { cat $T/tf.err; bad "train --mpi: the failing rank 1 is not named"; }

[ $fail -eq 0 ] && echo "ok: mpi"
exit $fail
