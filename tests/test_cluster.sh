#!/usr/bin/env bash
# test_cluster.sh - `serendip cluster` end to end: synthetic world (always) and MovieLens
# latest-small (when ../shared/data is present): files written, descriptions unique, short and
# tab-free, determinism for a seed, exit codes for usage and state errors.
set -u
cd "$(dirname "$0")/.."
B=${BUILD:-build}/serendip
T=$(mktemp -d /tmp/sdclXXXXXX)
trap 'rm -rf "$T"' EXIT
fail=0
ok() { echo "ok   $1"; }
bad() { echo "FAIL $1"; fail=1; }

# checks clusters.tsv of workspace $1 for $2 clusters
check_tsv() {
    local tsv=$1/clusters.tsv n=$2
    [ -f "$1/taxonomy.bin" ] || { bad "$1/taxonomy.bin missing"; return; }
    [ "$(wc -l < "$tsv")" -eq $((n + 1)) ] && ok "$tsv has $n clusters" || bad "$tsv: $(wc -l < "$tsv") lines, want $((n + 1))"
    awk -F'\t' 'NR > 1 && NF != 6 { exit 1 }' "$tsv" && ok "6 fields per line" || bad "field count"
    local dups; dups=$(tail -n +2 "$tsv" | cut -f4 | sort | uniq -d)
    [ -z "$dups" ] && ok "descriptions unique" || bad "duplicate descriptions: $dups"
    # unique as word sets too
    dups=$(tail -n +2 "$tsv" | cut -f4 | awk -F', ' '{ n = split($0, w, ", "); for (i = 1; i <= n; i++) for (j = i + 1; j <= n; j++) if (w[j] < w[i]) { t = w[i]; w[i] = w[j]; w[j] = t }; s = w[1]; for (i = 2; i <= n; i++) s = s "|" w[i]; print s }' | sort | uniq -d)
    [ -z "$dups" ] && ok "descriptions unique as word sets" || bad "same word sets: $dups"
    tail -n +2 "$tsv" | cut -f4 | awk '{ if (length($0) == 0 || length($0) > 40) exit 1 }' && ok "descriptions 1..40 chars" || bad "empty or long description"
    tail -n +2 "$tsv" | cut -f4 | iconv -f UTF-8 -t UTF-8 > /dev/null && ok "descriptions valid UTF-8" || bad "invalid UTF-8"
}

# ---- synthetic world (a failing `serendip world` is a failure, not a skip)
W=$T/w
if "$B" world --ws "$W" > /dev/null 2> "$T/err.txt"; then
    # 80/10/10 of the default log (2023-01-01 + 730 days)
    printf '{"format": "serendip-split", "version": 1, "train_end": 1722988800, "valid_end": 1729296000}\n' > "$W/split.json"
    if "$B" cluster --ws "$W" > "$T/out.txt" 2> "$T/err.txt"; then
        ok "cluster on the world"
        check_tsv "$W" 100
        grep -q "level-1 clusters" "$T/out.txt" && ok "summary printed" || bad "summary"
        cp "$W/taxonomy.bin" "$T/first.bin"
        "$B" cluster --ws "$W" --json > "$T/out.json" 2> /dev/null
        cmp -s "$W/taxonomy.bin" "$T/first.bin" && ok "deterministic for a seed" || bad "two runs differ"
        for k in clusters_top clusters items items_clustered train_events taxonomy_hash; do
            grep -q "\"$k\"" "$T/out.json" || bad "--json lacks $k"
        done
        "$B" cluster --ws "$W" --seed 2 > /dev/null 2>&1
        cmp -s "$W/taxonomy.bin" "$T/first.bin" && bad "seed 2 gives the same taxonomy" || ok "another seed, another taxonomy"
        "$B" cluster --ws "$W" --clusters 20 --top 4 > /dev/null 2>&1 && check_tsv "$W" 20 || bad "--clusters 20 --top 4"
    else
        bad "cluster on the world failed: $(cat "$T/err.txt")"
    fi
else
    bad "serendip world failed: $(cat "$T/err.txt")"
fi

# ---- exit codes
"$B" cluster > /dev/null 2>&1; [ $? -eq 2 ] && ok "no --ws: exit 2" || bad "no --ws"
"$B" cluster --ws "$W" --top 0 > /dev/null 2>&1; [ $? -eq 2 ] && ok "--top 0: exit 2" || bad "--top 0"
"$B" cluster --ws "$W" --clusters 5 --top 6 > /dev/null 2>&1; [ $? -eq 2 ] && ok "--top > --clusters: exit 2" || bad "--top > --clusters"
mkdir -p "$T/empty"
"$B" cluster --ws "$T/empty" > /dev/null 2> "$T/err.txt"; rc=$?
[ $rc -eq 1 ] && grep -q "dataset.bin" "$T/err.txt" && ok "empty workspace: exit 1 naming dataset.bin" || bad "empty workspace (rc $rc)"

# ---- MovieLens latest-small
ML=../shared/data/ml-latest-small
if [ ! -f "$ML/ratings.csv" ]; then
    echo "SKIP: $ML absent"
else
    M=$T/ml
    if "$B" ingest --ws "$M" --movielens "$ML" > /dev/null 2>&1; then
        # train until 2012-01-01, valid until 2014-01-01
        printf '{"format": "serendip-split", "version": 1, "train_end": 1325376000, "valid_end": 1388534400}\n' > "$M/split.json"
        if "$B" cluster --ws "$M" --json > "$T/ml.json" 2> "$T/err.txt"; then
            ok "cluster on ml-latest-small"
            check_tsv "$M" 100
            n=$(sed 's/.*"items_clustered": \([0-9]*\).*/\1/' "$T/ml.json")
            [ "$n" -gt 5000 ] && ok "$n movies clustered" || bad "only $n movies clustered"
        else
            bad "cluster on ml-latest-small: $(cat "$T/err.txt")"
        fi
    else
        bad "ingest of $ML failed"
    fi
fi
exit $fail
