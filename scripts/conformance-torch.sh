#!/usr/bin/env bash
# PyTorch conformance of the training path: builds scripts/torch_driver.c against the library,
# dumps logits / loss / gradients / AdamW-step losses for three models (untied, tied, LoRA) and
# checks each with scripts/torch_reference.py (Debian python3-torch, run with /usr/bin/python3).
# Exits non-zero on any mismatch, or when python3-torch is missing.
# Usage: BUILD=build bash scripts/conformance-torch.sh
set -u
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build}
if ! /usr/bin/python3 -c 'import torch' 2>/dev/null; then
    echo "conformance-torch: python3-torch is not installed (apt-get install python3-torch)" >&2
    exit 1
fi
make --no-print-directory BUILD="$BUILD" "$BUILD/libserendip.a" >/dev/null || exit 1
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
FLAGS="-O2 -std=c11 -D_GNU_SOURCE -Wall -Wextra -Iinclude -I/usr/include/x86_64-linux-gnu/openblas-pthread -fopenmp"
cc $FLAGS scripts/torch_driver.c "$BUILD/libserendip.a" $(make -s --no-print-directory BUILD="$BUILD" print-link-libs) \
    -o "$tmp/torch_driver" || exit 1
fail=0
for case in "untied 0 0" "tied 1 0" "lora 1 4"; do
    set -- $case
    mkdir -p "$tmp/$1"
    echo "=== torch reference: $1 model"
    "$tmp/torch_driver" "$tmp/$1" "$2" "$3" || { fail=1; continue; }
    /usr/bin/python3 scripts/torch_reference.py "$tmp/$1" || fail=1
done
[ $fail -eq 0 ] && echo "conformance-torch: ok" || echo "conformance-torch: FAILED"
exit $fail
