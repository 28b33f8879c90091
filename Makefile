# mmt - Makefile. Knobs: CC, CXX, OPT, PREFIX, V=1 for full command lines.
CC ?= cc
CXX ?= c++
OPT ?= -O3 -march=native -g
PREFIX ?= /usr/local
BUILD ?= build

MULTIARCH := $(shell $(CC) -print-multiarch 2>/dev/null)
LIBDIR := /usr/lib/$(MULTIARCH)

# OpenBLAS: prefer the OpenMP build so OpenBLAS and our loops share one
# thread pool instead of two pools spinning against each other.
BLAS_OMP := $(wildcard $(LIBDIR)/openblas-openmp/libopenblas.so)
ifneq ($(BLAS_OMP),)
BLAS_CFLAGS := -I/usr/include/$(MULTIARCH)/openblas-openmp
BLAS_LIBS := -L$(LIBDIR)/openblas-openmp -Wl,-rpath,$(LIBDIR)/openblas-openmp -lopenblas
else
BLAS_CFLAGS :=
BLAS_LIBS := -lopenblas
endif

WARN := -Wall -Wextra -Wno-unused-parameter
# Vectorisation: in ISO C mode GCC does not fuse a * b + c into one FMA
# unless told; and on AVX-512 CPUs it keeps to 256-bit vectors unless told,
# which halves the dropout hash's and the softmax's throughput. Results stay
# deterministic: one binary always computes the same thing.
VEC ?= -ffp-contract=fast -mprefer-vector-width=512
BASE_CFLAGS := -std=c11 -D_GNU_SOURCE $(WARN) -fopenmp -fno-trapping-math $(VEC) -MMD -MP -Isrc -Itokenizers $(BLAS_CFLAGS)
BASE_CXXFLAGS := -std=c++17 $(WARN) -fopenmp -MMD -MP -Itokenizers
ALL_CFLAGS := $(BASE_CFLAGS) $(OPT) $(CFLAGS)
ALL_CXXFLAGS := $(BASE_CXXFLAGS) $(OPT) $(CXXFLAGS)
LIBS := $(BLAS_LIBS) -lcjson -lpng -lsentencepiece -lsentencepiece_train -lz -lm -lstdc++ -fopenmp $(LDLIBS)

ifeq ($(V),1)
Q :=
else
Q := @
endif

PROGRAMS := mmt-train mmt-translate mmt-bleu mmt-average mmt-probe
LIB_SRC := $(filter-out src/main_%.c,$(wildcard src/*.c))
LIB_OBJ := $(LIB_SRC:%.c=$(BUILD)/%.o) $(BUILD)/tokenizers/spm.o
TEST_SRC := $(wildcard tests/*.c)
TEST_OBJ := $(TEST_SRC:%.c=$(BUILD)/%.o)
BENCH_SRC := $(wildcard bench/*.c)

.PHONY: all test asan bench clean install deps check-deps fixtures run
.SECONDARY:
all: check-deps $(PROGRAMS:%=$(BUILD)/%)

check-deps:
	@for h in cblas.h cjson/cJSON.h png.h sentencepiece_processor.h; do \
	  echo "#include <$$h>" | $(CXX) -E -x c++ $(BLAS_CFLAGS) - >/dev/null 2>&1 || \
	  { echo "missing header $$h: run 'make deps' (Debian packages) first"; exit 1; }; done

$(BUILD)/%.o: %.c
	@mkdir -p $(dir $@)
	@$(if $(Q),echo "  CC    $<")
	$(Q)$(CC) $(ALL_CFLAGS) -c $< -o $@

$(BUILD)/%.o: %.cc
	@mkdir -p $(dir $@)
	@$(if $(Q),echo "  CXX   $<")
	$(Q)$(CXX) $(ALL_CXXFLAGS) -c $< -o $@

$(BUILD)/libmmt.a: $(LIB_OBJ)
	@$(if $(Q),echo "  AR    $@")
	$(Q)rm -f $@ && ar rcs $@ $^

$(BUILD)/mmt-%: $(BUILD)/src/main_%.o $(BUILD)/libmmt.a
	@$(if $(Q),echo "  LINK  $@")
	$(Q)$(CC) $(OPT) $^ -o $@ $(LIBS)

$(BUILD)/run-tests: $(TEST_OBJ) $(BUILD)/libmmt.a
	@$(if $(Q),echo "  LINK  $@")
	$(Q)$(CC) $(OPT) $^ -o $@ $(LIBS)

$(BUILD)/bench-%: $(BUILD)/bench/%.o $(BUILD)/libmmt.a
	@$(if $(Q),echo "  LINK  $@")
	$(Q)$(CC) $(OPT) $^ -o $@ $(LIBS)

# The test runner prints one line per check and ends with "N passed, N failed".
test: all $(BUILD)/run-tests
	$(BUILD)/run-tests

# The main job: Multi30k En-De (penal connection) when its data is in
# data/multi30k (data/get-multi30k.sh), else the built-in demo.
MULTI30K_TRAIN := data/multi30k/tok/train.lc.norm.tok.en.gz
RECIPE ?= $(if $(wildcard $(MULTI30K_TRAIN)),recipes/multi30k.json,recipes/demo.json)
run: all
	$(BUILD)/mmt-train $(RECIPE)

# Tests under AddressSanitizer and UBSan, in a build folder of their own.
asan:
	$(MAKE) BUILD=build-asan OPT="-O1 -g -fno-omit-frame-pointer -fsanitize=address,undefined -fno-sanitize-recover=undefined" \
	  LDLIBS="-fsanitize=address,undefined" test

bench: all $(BENCH_SRC:bench/%.c=$(BUILD)/bench-%)

# Regenerate the PyTorch reference fixtures (needs Debian's python3-torch).
fixtures:
	/usr/bin/python3 tests/reference/make_fixture.py tests/reference

install: all
	install -d $(DESTDIR)$(PREFIX)/bin $(DESTDIR)$(PREFIX)/lib $(DESTDIR)$(PREFIX)/include/mmt
	install -m 755 $(PROGRAMS:%=$(BUILD)/%) $(DESTDIR)$(PREFIX)/bin
	install -m 644 $(BUILD)/libmmt.a $(DESTDIR)$(PREFIX)/lib
	install -m 644 $(filter-out src/model_impl.h,$(wildcard src/*.h)) tokenizers/spm.h \
	  $(DESTDIR)$(PREFIX)/include/mmt

DEB_PACKAGES := build-essential libopenblas-openmp-dev libsentencepiece-dev sentencepiece \
  libpng-dev libcjson-dev zlib1g-dev
deps:
	@if [ "$$(id -u)" = 0 ]; then \
	  apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q $(DEB_PACKAGES); \
	else echo "run as root: apt-get install -y $(DEB_PACKAGES)"; fi

clean:
	rm -rf build build-asan

-include $(shell find $(BUILD) -name '*.d' 2>/dev/null)
