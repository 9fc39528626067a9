#!/usr/bin/env bash
# test_python.sh - the Python package (python/): `pip install --no-index --no-build-isolation`
# into a fresh venv with Debian's Python (/usr/bin/python3, its setuptools, pytest and numpy as
# system site packages), then its pytest suite (python/tests) on the INSTALLED package against
# this build's libserendip.so (SERENDIP_LIB) and command, then examples/quickstart.py --tiny.
# Fails when any step fails. Under `make asan` (SERENDIP_SANITIZED=1) the sanitized library is
# loaded with the ASan runtime preloaded (Python itself is not instrumented; leaks not checked).
set -u
cd "$(dirname "$0")/.."
REPO=$PWD
BUILD=${BUILD:-build}
case "$BUILD" in /*) ABS_BUILD=$BUILD ;; *) ABS_BUILD=$REPO/$BUILD ;; esac
PY=/usr/bin/python3  # Debian's: the PATH's python3 may be another one without Debian's packages
fail() { echo "FAIL: test_python.sh: $*"; exit 1; }
[ -e "$ABS_BUILD/libserendip.so" ] || fail "no $ABS_BUILD/libserendip.so (run make)"
[ -x "$ABS_BUILD/serendip" ] || fail "no $ABS_BUILD/serendip (run make)"
T=$(mktemp -d /tmp/sdpy.XXXXXX)
trap 'rm -rf "$T"' EXIT
export SERENDIP_LIB=$ABS_BUILD SERENDIP_BIN=$ABS_BUILD/serendip PYTHONDONTWRITEBYTECODE=1
if [ "${SERENDIP_SANITIZED:-0}" = 1 ]; then
    export LD_PRELOAD=$(cc -print-file-name=libasan.so) ASAN_OPTIONS=detect_leaks=0
fi

$PY -m venv --system-site-packages "$T/venv" || fail "python3 -m venv (Debian package python3-venv)"
cp -r python "$T/src"  # pip builds in the source folder: keep the repository clean
"$T/venv/bin/pip" install -q --no-index --no-build-isolation "$T/src" >"$T/pip.log" 2>&1 || { cat "$T/pip.log"; fail "pip install"; }
cd "$T"
where=$("$T/venv/bin/python" -c "import serendip; print(serendip.__file__)")
case "$where" in "$T/venv/"*) ;; *) fail "the installed package is not the one imported ($where)" ;; esac
"$T/venv/bin/python" -m pytest -q -p no:cacheprovider --basetemp="$T/pytest" "$REPO/python/tests" || fail "pytest python/tests"
"$T/venv/bin/python" "$REPO/examples/quickstart.py" "$T/ws-quick" --tiny >"$T/quick.out" 2>"$T/quick.err" \
    || { cat "$T/quick.err"; fail "examples/quickstart.py --tiny"; }
grep -q '^random  *like_prob 0\.[0-9]' "$T/quick.out" || fail "the quick start printed no metrics table: $(cat "$T/quick.out")"
[ "$(head -3 "$T/quick.out" | grep -c "^[0-9]")" -ge 1 ] || fail "the quick start printed no explore answer"
# make install: the library, the public header and the command under PREFIX; a C program builds
# against the installed header alone and the package finds the library through the system loader
make -s --no-print-directory BUILD="$BUILD" -C "$REPO" install PREFIX="$T/prefix" >"$T/install.log" 2>&1 \
    || { cat "$T/install.log"; fail "make install"; }
for f in lib/libserendip.so lib/libserendip.so.1 lib/libserendip.a include/serendip/serendip.h bin/serendip; do
    [ -e "$T/prefix/$f" ] || fail "make install did not install $f"
done
cat >"$T/app.c" <<'C'
#include <serendip/serendip.h>
#include <stdio.h>
#include <string.h>
int main(int argc, char **argv) {
    serendip_error err;
    serendip_explorer *x;
    if (serendip_explorer_open(&x, argv[1], NULL, NULL, &err)) return fprintf(stderr, "%s\n", err.message), 1;
    serendip_query q = {.kind = SERENDIP_QUERY_USER, .user = 1, .clusters = 3, .items_per_cluster = 2};
    serendip_answer *a;
    if (serendip_explore(x, NULL, 1, &q, &a, &err)) return fprintf(stderr, "%s\n", err.message), 1;
    fputs(serendip_answer_json(a, NULL), stdout);
    serendip_answer_free(a);
    serendip_explorer_free(x);
    return serendip_live_handles() != 0 || argc != 2;
}
C
cc -std=c11 -Wall -Werror -I"$T/prefix/include" "$T/app.c" -L"$T/prefix/lib" -lserendip -o "$T/app" || fail "a C program against the installed header"
LD_LIBRARY_PATH="$T/prefix/lib" "$T/app" "$T/ws-quick" >"$T/app.json" || fail "the C program"
"$T/prefix/bin/serendip" explore --ws "$T/ws-quick" --user 1 --n 3 --items 2 --json | cmp -s - "$T/app.json" \
    || fail "the C program's answer differs from serendip explore --json"
v=$(env -u SERENDIP_LIB LD_LIBRARY_PATH="$T/prefix/lib" "$T/venv/bin/python" -c "import serendip; print(serendip.library_version())") \
    || fail "the package does not find the installed library through the system loader"
want=$(sed -n 's/^#define SERENDIP_API_VERSION_MAJOR \([0-9]*\).*/\1/p' "$REPO/include/serendip/serendip.h").$(sed -n \
    's/^#define SERENDIP_API_VERSION_MINOR \([0-9]*\).*/\1/p' "$REPO/include/serendip/serendip.h").0
[ "$v" = "$want" ] || fail "library version '$v', serendip.h says '$want'"
echo "ok: python package (pip install, pytest, quick start, make install, a C program)"
