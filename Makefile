# serendip - GNU Make build. `make` builds build/serendip and build/libserendip.a.
# Sources are found by wildcard: a new src/<stage>/<module>.c, cmd/*.c, tests/test_*.c,
# bench/bench_*.c or fuzz/fuzz_*.c is picked up without editing this file.

CC      ?= cc
BUILD   ?= build
OPT     ?= -O2 -march=x86-64-v2 -mtune=native
CFLAGS  ?= $(OPT) -g
CFLAGS  += -std=c11 -D_GNU_SOURCE -Wall -Wextra -Iinclude -I/usr/include/x86_64-linux-gnu/openblas-pthread -MMD -MP
LDLIBS  += -lopenblas -llapacke -lmicrohttpd -lcjson -lm -lpthread
LDLIBS  += -lpcre2-8  # PCRE2: the Unicode regexes of the BPE pre-tokenizers (src/lm/tokenizer.c)
# libserendip.so: position-independent objects, and only the public API (serendip.h's SERENDIP_API)
# exported from the shared library; static linking (the command, tests) is unaffected.
CFLAGS  += -fPIC -fvisibility=hidden

# glibc's vector math library (libmvec) when the toolchain links it: the inference glue
# (src/lm/infer.c) then calls its SIMD expf from vectorised loops (SwiGLU, attention softmax).
HAVE_MVEC := $(shell echo 'int main(void){return 0;}' | $(CC) -x c - -lmvec -lm -o /dev/null 2>/dev/null && echo 1)
ifeq ($(HAVE_MVEC),1)
CFLAGS  += -DSERENDIP_MVEC
LDLIBS  += -lmvec
endif

# OpenMP when the compiler has it.
HAVE_OPENMP := $(shell echo 'int main(void){return 0;}' | $(CC) -fopenmp -x c - -o /dev/null 2>/dev/null && echo 1)
ifeq ($(HAVE_OPENMP),1)
CFLAGS  += -fopenmp
LDFLAGS += -fopenmp
endif

# MPI (Open MPI from Debian: openmpi-bin, libopenmpi-dev) when mpicc is present and NO_MPI is unset:
# mpicc's own compile and link flags plus -DSERENDIP_MPI (`--mpi` then works, docs/scale.md);
# without it the build is the same minus MPI and `--mpi` is a clear error.
ifeq ($(NO_MPI),)
MPI_LIBS := $(shell mpicc --showme:link 2>/dev/null)
endif
ifneq ($(MPI_LIBS),)
CFLAGS  += -DSERENDIP_MPI $(shell mpicc --showme:compile 2>/dev/null)
LDLIBS  += $(MPI_LIBS)
endif

LIB_SRC  := $(wildcard src/*/*.c)
CMD_SRC  := $(wildcard cmd/*.c)
TEST_SRC := $(wildcard tests/test_*.c)
TESTUTIL := $(wildcard tests/util/*.c)
BENCH_SRC:= $(wildcard bench/bench_*.c)
LIB_OBJ  := $(LIB_SRC:%.c=$(BUILD)/obj/%.o)
CMD_OBJ  := $(CMD_SRC:%.c=$(BUILD)/obj/%.o)
TESTUTIL_OBJ := $(TESTUTIL:%.c=$(BUILD)/obj/%.o)
TEST_BIN := $(TEST_SRC:tests/%.c=$(BUILD)/tests/%)
BENCH_BIN:= $(BENCH_SRC:bench/%.c=$(BUILD)/bench/%)
LIB      := $(BUILD)/libserendip.a
BIN      := $(BUILD)/serendip

.PHONY: all deps print-link-libs test test-bin asan demo study-movielens study-paper-scale study-alternatives bench fuzz conformance clean
all: $(BIN)

deps:
	@bash scripts/install-deps

$(BUILD)/obj/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -c $< -o $@

$(LIB): $(LIB_OBJ)
	@mkdir -p $(dir $@)
	rm -f $@ && ar rcs $@ $^

$(BIN): $(CMD_OBJ) $(LIB)
	$(CC) $(LDFLAGS) $(CMD_OBJ) $(LIB) $(LDLIBS) -o $@

$(BUILD)/tests/%: tests/%.c $(LIB) $(TESTUTIL_OBJ)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -Itests $< $(TESTUTIL_OBJ) $(LDFLAGS) $(LIB) $(LDLIBS) -lcmocka -o $@

$(BUILD)/bench/%: bench/%.c $(LIB)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $< $(LDFLAGS) $(LIB) $(LDLIBS) -o $@

# The libraries a program linked against $(LIB) needs (OpenBLAS, PCRE2, MPI when built with it, ...):
# scripts that compile their own drivers link with `$$(make -s print-link-libs)`, so that a library
# added here reaches them too.
print-link-libs:
	@echo $(LDFLAGS) $(LDLIBS)

test-bin: $(BIN) $(TEST_BIN)

# The tests: every cmocka binary and every tests/*.sh script; fails when any fails.
# Chromium drives the page of `serendip serve`; xmllint checks the report's SVG; Debian's Python
# with pytest, numpy, setuptools, wheel, pip and venv runs the Python package's tests (test_python.sh).
PY_TEST_PKGS := python3-pytest python3-numpy python3-setuptools python3-wheel python3-pip python3-venv
test:
	@SERENDIP_EXTRA_PKGS="chromium libxml2-utils python3=python3 $(PY_TEST_PKGS)" bash scripts/install-deps
	@$(MAKE) --no-print-directory test-bin
	@BUILD=$(BUILD) bash tests/run-all.sh

# Tests under AddressSanitizer + UndefinedBehaviorSanitizer, in a separate build tree.
asan: deps
	@$(MAKE) --no-print-directory BUILD=build-asan OPT="-O1 -fno-omit-frame-pointer -fsanitize=address,undefined -fno-sanitize-recover=undefined" \
	    LDFLAGS="-fsanitize=address,undefined $(if $(filter 1,$(HAVE_OPENMP)),-fopenmp)" test-bin
	@BUILD=build-asan ASAN_OPTIONS=detect_leaks=1 SERENDIP_SANITIZED=1 bash tests/run-all.sh

# The main job on the embedded default (synthetic world).
demo: deps
	@$(MAKE) --no-print-directory $(BIN)
	@bash scripts/demo

# The same study on MovieLens (ML=path to any MovieLens folder; default: latest-small in ../shared).
study-movielens: deps
	@$(MAKE) --no-print-directory $(BIN)
	@bash scripts/study-movielens $(ML)

# The paper's regime (about 761 clusters, 578,360 contexts); up to an hour on 2 cores.
study-paper-scale: deps
	@$(MAKE) --no-print-directory $(BIN)
	@bash scripts/study-paper-scale

# The alternatives the paper rejected (RL against the alignment reward, pairwise labels) on a
# copy of the demo workspace (run `make demo` first); 25-60 minutes on 2 cores.
study-alternatives: deps
	@$(MAKE) --no-print-directory $(BIN)
	@bash scripts/study-alternatives

# Benchmarks install their comparisons: FAISS, wrk + Redis, cmake/npm for llama.cpp.
bench:
	@SERENDIP_EXTRA_PKGS="libfaiss-dev wrk redis-server redis-tools cmake python3=python3 npm=npm git=git" bash scripts/install-deps
	@$(MAKE) --no-print-directory $(BIN) $(BENCH_BIN)
	@bash bench/run-all.sh

# libFuzzer targets (clang), each run for FUZZ_SECONDS.
FUZZ_SECONDS ?= 30
fuzz:
	@SERENDIP_EXTRA_PKGS=clang bash scripts/install-deps
	@bash scripts/fuzz $(FUZZ_SECONDS)

# PyTorch and llama.cpp reference checks of the language-model engine.
conformance:
	@SERENDIP_EXTRA_PKGS="python3-torch python3-numpy cmake npm=npm git=git" bash scripts/install-deps
	@$(MAKE) --no-print-directory $(BIN) test-bin
	@bash scripts/conformance

clean:
	rm -rf build build-asan build-fuzz

# the serving page is embedded into handlers.o (.incbin)
$(BUILD)/obj/src/serve/handlers.o: web/index.html
# inference kernels: fused multiply-adds where the ISA has them (ISO C mode turns contraction off)
$(BUILD)/obj/src/lm/infer.o: CFLAGS += -ffp-contract=fast

# ---------------------------------------------------------------- shared library, install (docs/api.md)
# libserendip.so.MAJOR.MINOR.0 with soname libserendip.so.MAJOR (MAJOR/MINOR from serendip.h).
SO_MAJOR := $(shell sed -n 's/^\#define SERENDIP_API_VERSION_MAJOR \([0-9]*\).*/\1/p' include/serendip/serendip.h)
SO_MINOR := $(shell sed -n 's/^\#define SERENDIP_API_VERSION_MINOR \([0-9]*\).*/\1/p' include/serendip/serendip.h)
SHLIB    := $(BUILD)/libserendip.so
SHLIB_REAL := $(SHLIB).$(SO_MAJOR).$(SO_MINOR).0
PREFIX  ?= /usr/local
.PHONY: shared install
all: $(SHLIB)
test-bin: $(SHLIB)
shared: $(SHLIB)

$(SHLIB): $(LIB_OBJ)
	$(CC) -shared -Wl,-soname,libserendip.so.$(SO_MAJOR) -Wl,-z,defs $(LDFLAGS) $(LIB_OBJ) $(LDLIBS) -o $(SHLIB_REAL)
	ln -sf $(notdir $(SHLIB_REAL)) $(SHLIB).$(SO_MAJOR)
	ln -sf $(notdir $(SHLIB_REAL)) $@

# The library, the public header and the command under PREFIX (DESTDIR for packaging).
install: $(BIN) $(SHLIB)
	install -d $(DESTDIR)$(PREFIX)/lib $(DESTDIR)$(PREFIX)/include/serendip $(DESTDIR)$(PREFIX)/bin
	install -m 755 $(SHLIB_REAL) $(DESTDIR)$(PREFIX)/lib/
	ln -sf $(notdir $(SHLIB_REAL)) $(DESTDIR)$(PREFIX)/lib/libserendip.so.$(SO_MAJOR)
	ln -sf $(notdir $(SHLIB_REAL)) $(DESTDIR)$(PREFIX)/lib/libserendip.so
	install -m 644 $(LIB) $(DESTDIR)$(PREFIX)/lib/
	install -m 644 include/serendip/serendip.h $(DESTDIR)$(PREFIX)/include/serendip/
	install -m 755 $(BIN) $(DESTDIR)$(PREFIX)/bin/

-include $(LIB_OBJ:.o=.d) $(CMD_OBJ:.o=.d) $(TESTUTIL_OBJ:.o=.d)
