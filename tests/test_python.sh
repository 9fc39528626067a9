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
"$T/venv/bin/python" -m pytest -q -p no:cacheprovider "$REPO/python/tests" || fail "pytest python/tests"
"$T/venv/bin/python" "$REPO/examples/quickstart.py" "$T/ws-quick" --tiny >"$T/quick.out" 2>"$T/quick.err" \
    || { cat "$T/quick.err"; fail "examples/quickstart.py --tiny"; }
grep -q '^random  *like_prob 0\.[0-9]' "$T/quick.out" || fail "the quick start printed no metrics table: $(cat "$T/quick.out")"
[ "$(head -3 "$T/quick.out" | grep -c "^[0-9]")" -ge 1 ] || fail "the quick start printed no explore answer"
echo "ok: python package (pip install, pytest, quick start)"
