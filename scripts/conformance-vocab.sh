#!/usr/bin/env bash
# conformance-vocab.sh - serendip's tokenizer against llama.cpp's own tokenizer test vectors.
#
# Fetches llama.cpp's source (scripts/fetch-llama-cpp), loads the GPT-2 vocabulary GGUF that
# llama.cpp ships (models/ggml-vocab-gpt-2.gguf) and checks that serendip tokenizes every input of
# models/ggml-vocab-gpt-2.gguf.inp exactly as models/ggml-vocab-gpt-2.gguf.out expects (the vectors
# of llama.cpp's tests/test-tokenizer-0), and that decoding gives the input back. The check is the
# test_llama_cpp_vocab_conformance case of tests/test_tokenizer.c, run with the vocabulary required.
# Exits non-zero on any mismatch or if the vocabulary cannot be fetched.
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build}
bash scripts/fetch-llama-cpp
make --no-print-directory BUILD="$BUILD" "$BUILD/tests/test_tokenizer" >/dev/null
SERENDIP_VOCAB_GGUF=third_party/llama.cpp/models/ggml-vocab-gpt-2.gguf SERENDIP_VOCAB_REQUIRED=1 \
    "$BUILD/tests/test_tokenizer"
echo "conformance-vocab: ok"
