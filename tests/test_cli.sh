#!/usr/bin/env bash
# The command line: every command answers --help with exit 0, usage errors exit 2.
set -u
BIN=${BUILD:-build}/serendip
fail=0
check() { local want=$1; shift; "$@" >/dev/null 2>&1; local got=$?; if [ $got -ne $want ]; then echo "FAIL: '$*' exited $got, expected $want"; fail=1; fi; }
check 0 $BIN --help
check 2 $BIN
check 2 $BIN no-such-command
for c in world ingest split cluster journeys info train rl plan plan-merge explore eval report serve; do
    check 0 $BIN $c --help
    check 2 $BIN $c --no-such-flag
done
for c in pretrain sft generate score info; do
    check 0 $BIN lm $c --help
    check 2 $BIN lm $c --no-such-flag
done
# runtime errors exit 1, usage errors exit 2, whatever the order the checks run in
check 1 $BIN info --ws /nonexistent/serendip-ws
for i in 1 2 3; do check 2 $BIN eval --ws /nonexistent/serendip-ws --positive foo:3; done
check 2 $BIN plan --ws /nonexistent/serendip-ws --top-k -1
check 2 $BIN plan --ws /nonexistent/serendip-ws --n-sweep 1,2 --out x.tbl
# an output folder that does not exist is refused before any training
check 1 $BIN lm pretrain --text "$0" --out /nonexistent/serendip/m.gguf
# usage errors of the lm group name the command as typed
$BIN lm generate --no-such-flag 2>&1 | grep -q "serendip lm generate:" || { echo "FAIL: lm usage error does not say 'serendip lm generate'"; fail=1; }
# flags that size memory are usage errors before any work (the workspace below does not exist:
# without the bounds these ran into it and exited 1; with them they never reach it)
check 2 $BIN train --ws /nonexistent/serendip-ws --dim 65536 --layers 512 --heads 512 --kv-heads 512
check 2 $BIN train --ws /nonexistent/serendip-ws --seq-len 100000000 --batch 4096
check 2 $BIN eval --ws /nonexistent/serendip-ws --serve 100000
T=$(mktemp -d)
check 2 $BIN lm pretrain --text "$0" --out "$T/m.gguf" --dim 65536 --layers 512 --heads 512 --kv-heads 512
[ -e "$T/m.gguf" ] && { echo "FAIL: lm pretrain wrote a model past the memory bound"; fail=1; }
# a missing --movielens folder and an empty one are the same usage error
mkdir -p "$T/empty"
check 2 $BIN ingest --ws "$T/ws" --movielens "$T/empty"
check 2 $BIN ingest --ws "$T/ws" --movielens "$T/no-such-folder"
# reading a directory as a file says so
$BIN lm pretrain --text "$T" --out "$T/m.gguf" 2>&1 | grep -q "is a directory" || { echo "FAIL: reading a directory does not say it is one"; fail=1; }
rm -rf "$T"
[ $fail -eq 0 ] && echo "ok: cli"
exit $fail
