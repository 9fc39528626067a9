#!/usr/bin/env bash
# bench_serve.sh - serving throughput and latency: GET /v1/explore of `serendip serve` under wrk
# (Lua script rotating user ids, --latency) beside Redis serving the SAME response bodies
# (redis-benchmark GET over pre-loaded keys, one per user), same connection count and client
# threads, in one run on one machine; then a reload under load (explore.tbl swapped through POST
# /admin/reload every 0.25 s while wrk runs) that must see zero failed requests.
#
# Run:   make build/serendip && bash bench/bench_serve.sh [WS]
#        WS: a workspace with dataset.bin, taxonomy.bin, journeys.bin (default: built in a temp dir
#        from ../shared/data/ml-latest-small, or from the synthetic world when that is absent).
#        A missing explore.tbl is written from the empirical transitions (bench/serve_table.c),
#        a missing retrieval.bin is trained. Env: BUILD (build), DURATION (10 s), CONNS (50),
#        CLIENT_THREADS (2), SERVER_THREADS (2), SERVER_MODE (thread, epoll, poll), K (5 items per
#        cluster), ROUNDS (3: serendip and redis runs alternate, medians reported), CACHE_MB (256;
#        0 computes every answer).
# Needs: wrk, redis-server, redis-tools (redis-benchmark, redis-cli), curl, cc.
set -u
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build}
BIN=$BUILD/serendip
DURATION=${DURATION:-10}
CONNS=${CONNS:-50}
CT=${CLIENT_THREADS:-2}
ST=${SERVER_THREADS:-2}
MODE=${SERVER_MODE:-thread}
K=${K:-5}
ROUNDS=${ROUNDS:-3}
for t in wrk redis-server redis-benchmark redis-cli curl cc; do
    command -v $t >/dev/null || { echo "bench_serve: needs $t (apt-get install wrk redis-server redis-tools curl gcc)"; exit 1; }
done
[ -x "$BIN" ] || { echo "bench_serve: build $BIN first (make BUILD=$BUILD $BIN)"; exit 1; }
[ -f "$BUILD/libserendip.a" ] || { echo "bench_serve: $BUILD/libserendip.a missing"; exit 1; }

TMP=$(mktemp -d)
SERVER= REDIS_PORT=
cleanup() {
    [ -n "$SERVER" ] && kill "$SERVER" 2>/dev/null && wait "$SERVER" 2>/dev/null
    [ -n "$REDIS_PORT" ] && redis-cli -p "$REDIS_PORT" shutdown nosave >/dev/null 2>&1
    rm -rf "$TMP"
}
trap cleanup EXIT

WS=${1:-}
if [ -z "$WS" ]; then
    WS=$TMP/ws
    if [ -d ../shared/data/ml-latest-small ]; then
        echo "== workspace: MovieLens latest-small in $WS"
        "$BIN" ingest --ws "$WS" --movielens ../shared/data/ml-latest-small >/dev/null || exit 1
    else
        echo "== workspace: synthetic world in $WS (../shared/data/ml-latest-small absent)"
        "$BIN" world --ws "$WS" --users 2000 >/dev/null || exit 1
    fi
    "$BIN" split --ws "$WS" >/dev/null && "$BIN" cluster --ws "$WS" >/dev/null 2>&1 && "$BIN" journeys --ws "$WS" >/dev/null 2>&1 || exit 1
fi
cc -O2 -std=c11 -D_GNU_SOURCE -Iinclude -fopenmp bench/serve_table.c "$BUILD/libserendip.a" \
    $(make -s --no-print-directory BUILD="$BUILD" print-link-libs) -o "$TMP/serve_table" || exit 1
[ -f "$WS/explore.tbl" ] || "$TMP/serve_table" "$WS" "$WS/explore.tbl" 8 1 || exit 1
cp "$WS/explore.tbl" "$TMP/tableA.tbl"
"$TMP/serve_table" "$WS" "$TMP/tableB.tbl" 8 2 >/dev/null || exit 1
[ -f "$WS/retrieval.bin" ] || "$BIN" serve --ws "$WS" --train-retrieval >/dev/null || exit 1
echo "bench-token-$$-$RANDOM" > "$TMP/token"

"$BIN" serve --ws "$WS" --port 0 --threads "$ST" --mode "$MODE" --cache-mb "${CACHE_MB:-256}" --max-conns 1024 --token-file "$TMP/token" > "$TMP/serve.out" 2> "$TMP/serve.err" &
SERVER=$!
PORT=
for _ in $(seq 200); do
    PORT=$(sed -n 's|^serving http://127.0.0.1:\([0-9]*\)/.*|\1|p' "$TMP/serve.out")
    [ -n "$PORT" ] && break
    sleep 0.1
done
[ -n "$PORT" ] || { echo "bench_serve: server did not start"; cat "$TMP/serve.err"; exit 1; }
URL=http://127.0.0.1:$PORT

# the users with a full context, rotated by the Lua script
USERS=$(curl -s "$URL/v1/users?limit=1000" | tr -dc '0-9,')
NU=$(echo "$USERS" | tr ',' '\n' | grep -c .)
[ "$NU" -gt 0 ] || { echo "bench_serve: no user with a full context"; exit 1; }
cat > "$TMP/rotate.lua" <<EOF
-- requests are formatted once, so that the client spends its time sending, not in Lua
local users = {$USERS}
local reqs = {}
for i, u in ipairs(users) do reqs[i] = wrk.format("GET", "/v1/explore?user=" .. u .. "&k=$K") end
local n = 0
request = function()
  n = n + 1
  return reqs[(n % #reqs) + 1]
end
EOF

# Redis with the same bodies: key:%012d -> the explore answer of the i-th user
for _ in $(seq 20); do
    p=$((20000 + RANDOM % 20000))
    if redis-server --port "$p" --bind 127.0.0.1 --save '' --appendonly no --daemonize yes \
        --pidfile "$TMP/redis.pid" --logfile "$TMP/redis.log" >/dev/null 2>&1; then
        sleep 0.3
        if redis-cli -p "$p" ping 2>/dev/null | grep -q PONG; then REDIS_PORT=$p; break; fi
    fi
done
[ -n "$REDIS_PORT" ] || { echo "bench_serve: redis-server did not start"; exit 1; }
i=0
BYTES=0
for u in $(echo "$USERS" | tr ',' ' '); do
    curl -s "$URL/v1/explore?user=$u&k=$K" > "$TMP/body"
    key=$(printf 'key:%012d' $i)
    redis-cli -p "$REDIS_PORT" -x set "$key" < "$TMP/body" >/dev/null
    BYTES=$((BYTES + $(wc -c < "$TMP/body")))
    i=$((i + 1))
done
AVG_BODY=$((BYTES / NU))

# -------------------------------------------------------------------------------- runs
to_ms() { # wrk latency "812.00us" / "1.23ms" / "1.01s" -> ms
    awk -v x="$1" 'BEGIN { v = x + 0; if (x ~ /us$/) v /= 1000; else if (x ~ /ms$/) v = v; else if (x ~ /s$/) v *= 1000; printf "%.3f", v }'
}
run_wrk() { # run_wrk OUT: one wrk run of DURATION seconds
    wrk -t"$CT" -c"$CONNS" -d"${DURATION}s" --latency -s "$TMP/rotate.lua" "$URL" > "$1" 2>&1
}
wrk -t"$CT" -c"$CONNS" -d2s -s "$TMP/rotate.lua" "$URL" >/dev/null 2>&1 # warm-up

echo "== machine: $(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1), $(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg)"
echo "== $NU users rotated, K=$K items per cluster, mean body $AVG_BODY bytes; $CONNS connections, $CT client threads, server mode $MODE ($ST loops for epoll/poll), ${DURATION}s per run, $ROUNDS interleaved rounds (medians)"
median() { sort -g | awk '{ a[NR] = $1 } END { if (NR % 2) print a[(NR + 1) / 2]; else print (a[NR / 2] + a[NR / 2 + 1]) / 2 }'; }
: > "$TMP/s.txt"; : > "$TMP/r.txt"
S_ERR=
for round in $(seq "$ROUNDS"); do
    run_wrk "$TMP/wrk.out"
    rps=$(sed -n 's/^Requests\/sec:[[:space:]]*//p' "$TMP/wrk.out")
    p50=$(to_ms "$(awk '$1=="50%"{print $2}' "$TMP/wrk.out")")
    p99=$(to_ms "$(awk '$1=="99%"{print $2}' "$TMP/wrk.out")")
    S_ERR="$S_ERR$(grep -E "Non-2xx|Socket errors" "$TMP/wrk.out" || true)"
    echo "$rps $p50 $p99" >> "$TMP/s.txt"
    nreq=$(awk -v r="$rps" -v d="$DURATION" 'BEGIN { n = int(r * d * 2); if (n < 50000) n = 50000; print n }')
    redis-benchmark -p "$REDIS_PORT" -t get -n "$nreq" -c "$CONNS" -r "$NU" --threads "$CT" --csv > "$TMP/redis.csv" 2>&1
    line=$(grep '^"GET"' "$TMP/redis.csv" | tr -d '"')
    echo "$(echo "$line" | cut -d, -f2) $(echo "$line" | cut -d, -f5) $(echo "$line" | cut -d, -f7)" >> "$TMP/r.txt"
    printf '  round %d: serendip %s req/s p50 %s p99 %s ms | redis %s req/s p50 %s p99 %s ms (load %s)\n' "$round" \
        $(tail -1 "$TMP/s.txt") $(tail -1 "$TMP/r.txt") "$(cut -d' ' -f1 /proc/loadavg)"
done
S_RPS=$(cut -d' ' -f1 "$TMP/s.txt" | median); S_P50=$(cut -d' ' -f2 "$TMP/s.txt" | median); S_P99=$(cut -d' ' -f3 "$TMP/s.txt" | median)
R_RPS=$(cut -d' ' -f1 "$TMP/r.txt" | median); R_P50=$(cut -d' ' -f2 "$TMP/r.txt" | median); R_P99=$(cut -d' ' -f3 "$TMP/r.txt" | median)

printf '\n%-34s %12s %10s %10s\n' "median of $ROUNDS rounds" "requests/s" "p50 ms" "p99 ms"
printf '%-34s %12.0f %10.3f %10.3f\n' "serendip GET /v1/explore (wrk)" "$S_RPS" "$S_P50" "$S_P99"
printf '%-34s %12.0f %10.3f %10.3f\n' "redis GET same bodies (r-bench)" "$R_RPS" "$R_P50" "$R_P99"
awk -v a="$S_RPS" -v b="$R_RPS" -v c="$S_P50" -v d="$R_P50" -v e="$S_P99" -v f="$R_P99" \
    'BEGIN { printf "%-34s %12.2f %10.2f %10.2f\n", "ratio serendip / redis", a / b, c / d, e / f }'
[ -n "$S_ERR" ] && echo "serendip errors: $S_ERR"
awk -v a="$S_RPS" -v b="$R_RPS" -v e="$S_P99" 'BEGIN {
    printf "goal: throughput >= redis: %s; p99 < 1 ms: %s\n", (a >= b ? "met" : "NOT met"), (e < 1 ? "met" : "NOT met") }'
curl -s "$URL/metrics" | grep -E '^serendip_explore_cache_total' | tr '\n' ' ' | sed 's/^/answer cache: /'; echo

# -------------------------------------------------------------------------------- reload under load
echo
echo "== reload under load: explore.tbl swapped every 0.25 s through POST /admin/reload during a ${DURATION}s wrk run"
V0=$(curl -s "$URL/healthz" | sed -n 's/.*"table_version":\([0-9]*\).*/\1/p')
run_wrk "$TMP/wrk2.out" &
WRK=$!
OK=0 BAD=0
END=$((SECONDS + DURATION - 1))
n=0
while [ $SECONDS -lt $END ]; do
    if [ $((n % 2)) -eq 0 ]; then cp "$TMP/tableB.tbl" "$WS/explore.tbl.tmp"; else cp "$TMP/tableA.tbl" "$WS/explore.tbl.tmp"; fi
    mv "$WS/explore.tbl.tmp" "$WS/explore.tbl"
    code=$(curl -s -o /dev/null -w '%{http_code}' -X POST -H "Authorization: Bearer $(cat "$TMP/token")" "$URL/admin/reload")
    if [ "$code" = 200 ]; then OK=$((OK + 1)); else BAD=$((BAD + 1)); fi
    n=$((n + 1))
    sleep 0.25
done
wait $WRK
cp "$TMP/tableA.tbl" "$WS/explore.tbl"
V1=$(curl -s "$URL/healthz" | sed -n 's/.*"table_version":\([0-9]*\).*/\1/p')
L_RPS=$(sed -n 's/^Requests\/sec:[[:space:]]*//p' "$TMP/wrk2.out")
L_P99=$(to_ms "$(awk '$1=="99%"{print $2}' "$TMP/wrk2.out")")
L_TOTAL=$(sed -n 's/^[[:space:]]*\([0-9]*\) requests in.*/\1/p' "$TMP/wrk2.out")
L_ERR=$(grep -E "Non-2xx|Socket errors" "$TMP/wrk2.out" || true)
echo "reloads: $OK ok, $BAD failed; table version $V0 -> $V1"
echo "requests during reloads: $L_TOTAL at $L_RPS/s, p99 $L_P99 ms; failed: ${L_ERR:-none}"
if [ -n "$L_ERR" ] || [ "$BAD" -ne 0 ] || [ "$V1" -ne $((V0 + OK)) ]; then
    echo "RELOAD UNDER LOAD: FAILED"
    exit 1
fi
echo "RELOAD UNDER LOAD: zero failed requests"
