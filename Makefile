# Small fast Unix tools for image generative models. See README.md.
# Every tools/*.c is one executable in bin/; every common/*.c goes into build/libcommon.a;
# every tests/unit/test_*.c is one test binary; every tests/bench/bench_*.c one benchmark.
# New files need no Makefile edit.

PKGS     := libpng libjpeg libtiff-4 libwebp libwebpdemux yaml-0.1 openblas zlib
CC       ?= cc
OPT      := -O3 $(if $(PORTABLE),-march=x86-64 -mtune=generic,-march=native)
SANITIZERS := -fsanitize=address,undefined
SANFLAGS := $(if $(SAN),-O1 $(SANITIZERS) -fno-omit-frame-pointer)
CFLAGS   ?= $(OPT) -g
override CFLAGS += $(SANFLAGS) -std=c11 -D_GNU_SOURCE -D_FILE_OFFSET_BITS=64 -Wall -Wextra -fopenmp -iquote common \
            $(if $(WERROR),-Werror) $(shell pkg-config --cflags $(PKGS) 2>/dev/null) \
            $(shell pkg-config --cflags ompi-c 2>/dev/null)
# Open MPI (ompi-c): only its header at build time; util/par.c loads libmpi under mpirun
# alone, so plain runs do not pay for loading it.
override LDLIBS += $(SANFLAGS) $(shell pkg-config --libs $(PKGS) 2>/dev/null) -llapack -lm -fopenmp
BUILD    ?= build
# what the test and demo targets build with: one compiler per core
NPROC    := $(shell nproc 2>/dev/null || echo 1)
BIN      ?= bin
PREFIX   ?= /usr/local

COMMON_SRC := $(wildcard common/*.c common/*/*.c)
TOOL_SRC   := $(wildcard tools/*.c)
UNIT_SRC   := $(wildcard tests/unit/test_*.c)
BENCH_SRC  := $(wildcard tests/bench/bench_*.c)
COMMON_OBJ := $(COMMON_SRC:%.c=$(BUILD)/%.o)
TOOLS      := $(TOOL_SRC:tools/%.c=$(BIN)/%)
SCRIPTS    := $(filter-out %.c %.h %.md,$(wildcard tools/*))
UNITS      := $(UNIT_SRC:tests/unit/%.c=$(BUILD)/tests/%)
BENCHES    := $(BENCH_SRC:tests/bench/%.c=$(BUILD)/bench/%)
LIB        := $(BUILD)/libcommon.a

.PHONY: all deps test sanitize bench demo clean install weights flowers-eval pets-eval
.DELETE_ON_ERROR:
.SECONDARY:

all: $(TOOLS) $(SCRIPTS:tools/%=$(BIN)/%)

$(BUILD)/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -MMD -MP -c $< -o $@

$(LIB): $(COMMON_OBJ)
	@rm -f $@
	ar rcs $@ $^

$(BIN)/%: $(BUILD)/tools/%.o $(LIB)
	@mkdir -p $(BIN)
	$(CC) $(CFLAGS) $< $(LIB) $(LDLIBS) -o $@

$(BIN)/%: tools/%
	@mkdir -p $(BIN)
	cp $< $@ && chmod +x $@

$(BUILD)/tests/%: $(BUILD)/tests/unit/%.o $(LIB)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $< $(LIB) $(LDLIBS) -o $@

$(BUILD)/bench/%: $(BUILD)/tests/bench/%.o $(LIB)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $< $(LIB) $(LDLIBS) -o $@

# Debian packages the project needs; installs only what is missing. openssh-client: mpirun
# starts the ranks of other nodes through ssh (a Recommends of openmpi-bin, which apt-get
# --no-install-recommends leaves out).
DEB_PKGS := build-essential pkg-config libpng-dev libjpeg62-turbo-dev libtiff-dev libwebp-dev \
            zlib1g-dev libopenblas-dev liblapack-dev libyaml-dev bats curl ca-certificates \
            libopenmpi-dev openmpi-bin openssh-client
deps:
	@sh tests/deps.sh $(DEB_PKGS)

# Unit tests, then the CLI tests; ends with one line 'N passed, N failed'. What it compiles
# is compiled with -Werror (TEST_WERROR= to build with warnings allowed).
TEST_WERROR ?= 1
test: deps
	@$(MAKE) --no-print-directory -j$(NPROC) $(if $(TEST_WERROR),WERROR=1) all $(UNITS)
	@sh tests/run.sh $(BUILD)/tests $(BIN)

# Without -Werror: GCC's sanitizer instrumentation gives false warnings (its manual advises
# against combining -Werror with sanitizers; -Wformat-overflow sees xmalloc's result as null).
sanitize: deps
	@ASAN_OPTIONS=detect_leaks=1 $(MAKE) --no-print-directory BUILD=build-san BIN=build-san/bin \
	  CFLAGS="-g" SAN=1 TEST_WERROR= test

bench: deps all $(BENCHES)
	@sh tests/bench/run.sh $(BUILD)/bench $(BIN)

clean:
	rm -rf build build-san bin

install: all
	install -d $(DESTDIR)$(PREFIX)/bin
	install -m 755 $(BIN)/* $(DESTDIR)$(PREFIX)/bin/

# Data sets (owner: img): download (resumable, MD5-checked), unpack, resize to 32x32 with
# imgresize and split 70/15/15 with dsplit; see tools/fetch-dataset (URLs and MD5s can be
# overridden from the environment). Reruns skip every step whose result exists.
.PHONY: data/flowers102 data/pets
data/flowers102: $(BIN)/fetch-dataset $(BIN)/imgresize $(BIN)/dsplit
	$(BIN)/fetch-dataset -d data flowers102

data/pets: $(BIN)/fetch-dataset $(BIN)/imgresize $(BIN)/dsplit
	$(BIN)/fetch-dataset -d data pets

-include $(COMMON_OBJ:.o=.d) $(TOOL_SRC:%.c=$(BUILD)/%.d) $(UNIT_SRC:%.c=$(BUILD)/%.d) $(BENCH_SRC:%.c=$(BUILD)/%.d)

# Weights (owner: unet)
# google/ddpm-cifar10-32, pytorch-fid's Inception weights and DINOv2 ViT-L/14 (1.2 GB;
# FETCH_DINOV2=0 skips it) into weights/, verified (see tools/fetch-weights).
weights: $(BIN)/fetch-weights $(BIN)/ddpm-sample
	$(BIN)/fetch-weights weights

# Pipelines (owner: pipe)
# The study end to end (pipelines/*.yaml, see README "Pipelines"); each writes
# results/<set>/report.md. Stages already up to date are skipped. PIPE_FLAGS passes options
# to pipe run, e.g. make demo PIPE_FLAGS="-j 1 -P vae_epochs=5". The demo runs two stages at
# once with the cores shared out (pipe run -j 2): its two training runs of the learning-rate
# search, its samplers and its scores side by side (a -j in PIPE_FLAGS wins).
PIPE_FLAGS ?=
# the build on every core (measured: 18 s serial, 9 s with -j2 on 2 cores)
demo: deps
	@$(MAKE) --no-print-directory -j$(NPROC) all
	$(BIN)/pipe run -j 2 $(PIPE_FLAGS) pipelines/demo.yaml

flowers-eval: all deps
	$(BIN)/pipe run $(PIPE_FLAGS) pipelines/flowers.yaml

pets-eval: all deps
	$(BIN)/pipe run $(PIPE_FLAGS) pipelines/pets.yaml
