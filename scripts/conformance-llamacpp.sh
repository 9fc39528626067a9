#!/usr/bin/env bash
# conformance-llamacpp.sh - a GGUF written by serendip loads in llama.cpp and gives the same tokens
# and the same logits (within the tolerance stated in tests/llamacpp_driver.c) for the same text.
#
#   bash scripts/conformance-llamacpp.sh               run the check (exit 1 on any mismatch)
#   bash scripts/conformance-llamacpp.sh --build-only  only build libllama and the two programs;
#                                                      prints the driver's path (used by the bench)
#
# llama.cpp's source comes from scripts/fetch-llama-cpp (npm package node-llama-cpp, into
# third_party/, never committed); libllama is built with Debian's cmake into $LLAMA_BUILD
# (default third_party/llama-build-infer, native CPU flags), once.
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build}
LLAMA_SRC=third_party/llama.cpp
LLAMA_BUILD=${LLAMA_BUILD:-third_party/llama-build-infer}
OUT=$BUILD/interop
mkdir -p "$OUT"

log() { echo "conformance-llamacpp: $*" >&2; }

if [ ! -f "$LLAMA_SRC/include/llama.h" ]; then
    bash scripts/fetch-llama-cpp >&2
fi
if [ ! -f "$LLAMA_BUILD/bin/libllama.so" ]; then
    log "building libllama into $LLAMA_BUILD (a few minutes, once)"
    mkdir -p "$LLAMA_BUILD"
    cmake -S "$LLAMA_SRC" -B "$LLAMA_BUILD" -DCMAKE_BUILD_TYPE=Release -DLLAMA_CURL=OFF -DLLAMA_OPENSSL=OFF \
        -DBUILD_SHARED_LIBS=ON -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_SERVER=OFF \
        -DLLAMA_BUILD_TOOLS=ON -DGGML_NATIVE=ON >"$LLAMA_BUILD/cmake.log" 2>&1 || { cat "$LLAMA_BUILD/cmake.log" >&2; exit 1; }
    cmake --build "$LLAMA_BUILD" -j"$(nproc)" --target llama llama-bench >"$LLAMA_BUILD/build.log" 2>&1 \
        || { tail -30 "$LLAMA_BUILD/build.log" >&2; exit 1; }
fi
LIBDIR=$(cd "$LLAMA_BUILD/bin" && pwd)
DRIVER=$OUT/llamacpp_driver
if [ ! -x "$DRIVER" ] || [ tests/llamacpp_driver.c -nt "$DRIVER" ] || [ "$LIBDIR/libllama.so" -nt "$DRIVER" ]; then
    log "compiling $DRIVER"
    cc -O2 -std=c11 -Wall -Wextra -I"$LLAMA_SRC/include" -I"$LLAMA_SRC/ggml/include" tests/llamacpp_driver.c \
        -L"$LIBDIR" -Wl,-rpath,"$LIBDIR" -lllama -lggml -lggml-base -lm -o "$DRIVER"
fi
[ -f "$BUILD/libserendip.a" ] || make --no-print-directory BUILD="$BUILD" "$BUILD/libserendip.a" >&2
INTEROP=$OUT/lm_interop
if [ ! -x "$INTEROP" ] || [ tests/lm_interop.c -nt "$INTEROP" ] || [ "$BUILD/libserendip.a" -nt "$INTEROP" ]; then
    log "compiling $INTEROP"
    cc -O2 -std=c11 -D_GNU_SOURCE -Wall -Wextra -Iinclude -I/usr/include/x86_64-linux-gnu/openblas-pthread -fopenmp \
        tests/lm_interop.c "$BUILD/libserendip.a" -lopenblas -llapacke -lcjson -lpcre2-8 -lm -lpthread -o "$INTEROP"
fi
if [ "${1:-}" = "--build-only" ]; then
    echo "$DRIVER"
    exit 0
fi

# Texts: ASCII words and punctuation, contractions, digits, runs of spaces, Latin-1 and other
# Unicode letters, emoji (multi-byte pieces), and words the tokenizer never saw.
cat >"$OUT/cases.txt" <<'EOF'
The quick brown fox jumps over the lazy dog.
It's what they'll watch, isn't it?
Space opera, war drama, romantic comedy!
1990s sci-fi and 2024 heists: 3 robots, 12 cats
Café au lait, naïve résumé, Zürich
東京 emoji 🎬🍿 and    extra   spaces
zyzzyva quokka xylophone
EOF

fail=0
for tied in 1 0; do
    MODEL=$OUT/interop_tied$tied.gguf
    "$INTEROP" make "$MODEL" $tied
    "$INTEROP" dump "$MODEL" "$OUT/cases.txt" "$OUT/dump_tied$tied.txt"
    echo "--- llama.cpp vs serendip, tied output head = $tied"
    "$DRIVER" check "$MODEL" "$OUT/dump_tied$tied.txt" || fail=1
done
if [ $fail -ne 0 ]; then echo "conformance-llamacpp: FAILED"; exit 1; fi
echo "conformance-llamacpp: ok (tokens identical, logits within tolerance, tied and untied heads)"
