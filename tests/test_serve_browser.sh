#!/usr/bin/env bash
# test_serve_browser.sh - `serendip serve` from the command line (exit codes, --train-retrieval,
# SIGHUP reload, SIGTERM stop), then its page in headless Chromium: a user's page
# (?user=1), a typed item list (?items=...), an unknown user, and the user picker; checks what the
# DOM shows after the page's JavaScript ran. The workspace is test_serve's fixture (see
# tests/test_serve.c): user 1's context is (war, drama -> space, alien), and table A plans
# "noir, crime" (score 8) then "comedy, family" (score 7).
# The Chromium part SKIPs visibly when chromium is absent (Debian package `chromium`).
set -u
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build}
BIN=$BUILD/serendip
FIX=$BUILD/tests/test_serve
for f in "$BIN" "$FIX"; do
    [ -x "$f" ] || { echo "FAIL: $f not built (make BUILD=$BUILD test-bin)"; exit 1; }
done
TMP=$(mktemp -d)
SERVER=
cleanup() {
    [ -n "$SERVER" ] && kill "$SERVER" 2>/dev/null && wait "$SERVER" 2>/dev/null
    rm -rf "$TMP"
}
trap cleanup EXIT
"$FIX" --write-fixture "$TMP/ws" || { echo "FAIL: cannot write the fixture"; exit 1; }
echo "<html><body>the report</body></html>" > "$TMP/ws/report.html"
fail=0

start_server() { # start_server ARGS...: starts serve on a free port, sets SERVER and URL
    "$BIN" serve --ws "$TMP/ws" --port 0 "$@" > "$TMP/serve.out" 2> "$TMP/serve.err" &
    SERVER=$!
    PORT=
    for _ in $(seq 100); do
        PORT=$(sed -n 's|^serving http://127.0.0.1:\([0-9]*\)/.*|\1|p' "$TMP/serve.out")
        [ -n "$PORT" ] && break
        kill -0 "$SERVER" 2>/dev/null || break
        sleep 0.1
    done
    if [ -z "$PORT" ]; then
        echo "FAIL: the server did not start"; cat "$TMP/serve.err"; exit 1
    fi
    URL=http://127.0.0.1:$PORT
}
get() { # get PATH -> response (headers and body) on stdout, over bash's /dev/tcp
    exec 3<>"/dev/tcp/127.0.0.1/$PORT" && printf 'GET %s HTTP/1.0\r\n\r\n' "$1" >&3 && cat <&3
    exec 3<&-
}
check() { # check NAME COMMAND...
    if "${@:2}"; then echo "ok: $1"; else echo "FAIL: $1"; fail=1; fi
}

# ---- the command line (runs without chromium)
"$BIN" serve --ws "$TMP/ws" --mode bogus >/dev/null 2>&1; check "bad --mode is a usage error (2)" test $? -eq 2
"$BIN" serve >/dev/null 2>&1; check "missing --ws is a usage error (2)" test $? -eq 2
"$BIN" serve --ws "$TMP/nope" >/dev/null 2>&1; check "missing workspace is a runtime error (1)" test $? -eq 1
"$BIN" serve --ws "$TMP/ws" --train-retrieval --rt-epochs 2 > "$TMP/train.out" 2>&1
check "--train-retrieval writes retrieval.bin" test -s "$TMP/ws/retrieval.bin"
start_server --token-file "$TMP/ws/token"
get /healthz > "$TMP/h1"
check "serve answers /healthz" grep -q '"status":"ok","table_version":1' "$TMP/h1"
cp "$TMP/ws/tableB.tbl" "$TMP/ws/explore.tbl.new" && mv "$TMP/ws/explore.tbl.new" "$TMP/ws/explore.tbl"
kill -HUP "$SERVER"
ok=1
for _ in $(seq 50); do get /healthz | grep -q '"table_version":2' && { ok=0; break; }; sleep 0.1; done
check "SIGHUP reloads the table" test $ok -eq 0
cp "$TMP/ws/tableA.tbl" "$TMP/ws/explore.tbl"
kill -TERM "$SERVER"; wait "$SERVER"; rc=$?; SERVER=
check "SIGTERM stops the server with status 0" test $rc -eq 0

CHROME=$(command -v chromium || command -v chromium-browser || true)
if [ -z "$CHROME" ]; then
    echo "SKIP: test_serve_browser: chromium absent (apt-get install chromium); command-line checks above ran"
    exit $fail
fi
start_server
dump() { # dump URL-PATH -> DOM on stdout
    "$CHROME" --headless --no-sandbox --disable-gpu --disable-quic --no-first-run --disable-background-networking \
        --disable-component-update --disable-sync --disable-dev-shm-usage --user-data-dir="$TMP/profile" \
        --virtual-time-budget=10000 --dump-dom "$URL$1" 2>"$TMP/chrome.err"
}
expect() { # expect NAME FILE REGEX : the DOM matches (grep -E, whole DOM on one line)
    if tr '\n' ' ' < "$2" | grep -Eq -- "$3"; then echo "ok: $1"; else echo "FAIL: $1 (no match for: $3)"; fail=1; fi
}
expect_not() {
    if tr '\n' ' ' < "$2" | grep -Eq -- "$3"; then echo "FAIL: $1 (unexpected: $3)"; fail=1; else echo "ok: $1"; fi
}

dump "/?user=1&k=2" > "$TMP/user.html"
expect "page ran to the end" "$TMP/user.html" 'data-state="done"'
expect "context in order" "$TMP/user.html" 'class="ctx"[^>]*>war, drama</li>.*class="ctx"[^>]*>space, alien</li>'
expect "novel clusters in plan order with scores" "$TMP/user.html" 'noir, crime</h3>.*alignment score 8\.00 / 9.*comedy, family</h3>.*alignment score 7\.00 / 9'
expect "two items of cluster 3, none seen" "$TMP/user.html" 'data-cluster-id="3"><h3>noir, crime</h3>.*<ol><li data-item-id="1(09|10|11)">[^<]*<span class="score">[^<]*</span></li><li data-item-id="1(09|10|11)">'
expect_not "seen items never shown" "$TMP/user.html" 'data-item-id="(100|103|104)"'
expect "the picker lists users with a full context" "$TMP/user.html" '<option value="1">user 1</option><option value="2">user 2</option></select>'
expect "report link shown when report.html exists" "$TMP/user.html" '<a id="report-link" href="/report">'
expect "health line" "$TMP/user.html" '[0-9]+ users · 12 items · 4 clusters · K = 2 · table v1'

dump "/?items=109,100,777" > "$TMP/items.html"
expect "typed items: context" "$TMP/items.html" 'class="ctx"[^>]*>noir, crime</li>.*class="ctx"[^>]*>war, drama</li>'
expect "typed items: plan" "$TMP/items.html" 'comedy, family</h3>.*space, alien</h3>'
expect "typed items: unknown id reported" "$TMP/items.html" '1 unknown, ignored'

dump "/?user=3" > "$TMP/short.html"
expect "short context explained" "$TMP/short.html" 'Fewer than 2 distinct clusters.*no plan yet.*fallback: a popular cluster you never tried'

dump "/?user=424242" > "$TMP/unknown.html"
expect "unknown user shows the API's error" "$TMP/unknown.html" 'role="alert">unknown user 424242</div>'

get /report > "$TMP/report.out"
check "/report serves report.html" grep -q "the report" "$TMP/report.out"
if [ $fail -eq 0 ]; then
    echo "test_serve_browser: all passed"
else # what the server and Chromium said, for the next person
    kill -0 "$SERVER" 2>/dev/null || echo "test_serve_browser: the server (pid $SERVER) is no longer running"
    echo "--- serve.err"; tail -20 "$TMP/serve.err"
    echo "--- chrome.err"; tail -20 "$TMP/chrome.err"
fi
exit $fail
