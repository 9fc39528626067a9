#!/usr/bin/env bash
# The command line: every command answers --help with exit 0, usage errors exit 2.
set -u
BIN=${BUILD:-build}/serendip
fail=0
check() { local want=$1; shift; "$@" >/dev/null 2>&1; local got=$?; if [ $got -ne $want ]; then echo "FAIL: '$*' exited $got, expected $want"; fail=1; fi; }
check 0 $BIN --help
check 2 $BIN
check 2 $BIN no-such-command
for c in world ingest split cluster journeys info train plan plan-merge explore eval report serve; do
    check 0 $BIN $c --help
    check 2 $BIN $c --no-such-flag
done
for c in pretrain sft generate score info; do
    check 0 $BIN lm $c --help
    check 2 $BIN lm $c --no-such-flag
done
[ $fail -eq 0 ] && echo "ok: cli"
exit $fail
