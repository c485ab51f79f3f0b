# Makefile for rosim: the rosimd daemon, the rosim command-line tool, tests.
#
#   make                  build build/rosimd and build/rosim
#   make check            build and run every libcheck suite
#   make check SANITIZE=1 the same under AddressSanitizer + UBSan (build/san)
#   make run              start rosimd with conf/rosimd.conf
#   make bench [BENCH="encoder import generate search"]   benchmarks (bench/run.sh)
#   make install PREFIX=/usr/local [DESTDIR=...]
#   make fuzz [FUZZ_SECONDS=600]   libFuzzer (clang) on every parser, in turn
#   make drills           kill -9 under write load (50 rounds), overload, slowloris
#
# The first build runs scripts/setup.sh, which installs the Debian packages
# rosim needs and builds the FAISS C API into build/faiss.  V=1 shows the
# compiler command lines.

VERSION   = 0.1.0
PREFIX   ?= /usr/local
DESTDIR  ?=
CC       ?= cc
CXX      ?= c++

ifeq ($(SANITIZE),1)
BUILD    ?= build/san
SAN       = -fsanitize=address,undefined -fno-sanitize-recover=all
OPT      ?= -O1 -g -fno-omit-frame-pointer
else
BUILD    ?= build
SAN       =
OPT      ?= -O2 -g -fno-omit-frame-pointer
endif

STD       = -std=c11 -D_GNU_SOURCE
WARN      = -Wall -Wextra -Wshadow -Wstrict-prototypes -Wmissing-prototypes \
            -Wpointer-arith -Wformat=2 -Werror=implicit-function-declaration
PKGS      = libmicrohttpd jansson sqlite3 inih libsystemd libutf8proc openblas
DEFS      = -DROSIM_VERSION='"$(VERSION)"' \
            -DROSIM_CONF_PATH='"$(PREFIX)/etc/rosim/rosimd.conf"'
CFLAGS_ALL = $(STD) $(WARN) $(OPT) $(OPT_EXTRA) $(SAN) $(DEFS) -MMD -MP \
            $(shell pkg-config --cflags $(PKGS) 2>/dev/null) $(CFLAGS)
FAISS_LIB = build/faiss/libfaiss_c.a
LIBS      = $(FAISS_LIB) -lfaiss -ldnnl \
            $(shell pkg-config --libs $(PKGS) 2>/dev/null) -lgomp -lstdc++ -lpthread -lm
TEST_LIBS = $(shell pkg-config --libs check libcurl 2>/dev/null)
LDFLAGS_ALL = $(SAN) -fopenmp $(LDFLAGS)

SETUP     = build/.setup-done

MODEL_SRC  = $(wildcard model/*.c)
INDEX_SRC  = $(wildcard index/*.c)
SERVER_SRC = $(filter-out server/main.c,$(wildcard server/*.c))
CLI_SRC    = $(wildcard cli/*.c)
TEST_SRC   = $(wildcard tests/*.c)

obj = $(patsubst %.c,$(BUILD)/obj/%.o,$(1))
LIB_OBJ    = $(call obj,$(MODEL_SRC) $(INDEX_SRC))
SERVER_OBJ = $(call obj,$(SERVER_SRC))

ifeq ($(V),1)
Q =
else
Q = @
endif

.PHONY: all check run bench install clean setup fuzz drills
all: $(BUILD)/rosimd $(BUILD)/rosim

setup: $(SETUP)
$(SETUP): scripts/setup.sh tests/openai/package-lock.json
	sh scripts/setup.sh
	@mkdir -p $(dir $@) && touch $@

# The encoder's element-wise loops are written to be vectorized: -O3 for model/;
# they share oneDNN's OpenMP threads.
$(BUILD)/obj/model/%.o: OPT_EXTRA = -O3 -fopenmp

$(BUILD)/obj/%.o: %.c $(SETUP)
	@mkdir -p $(dir $@)
	@[ "$(V)" = 1 ] || echo "  CC      $<"
	$(Q)$(CC) $(CFLAGS_ALL) -c $< -o $@

$(BUILD)/rosimd: $(call obj,server/main.c) $(SERVER_OBJ) $(LIB_OBJ)
	@[ "$(V)" = 1 ] || echo "  LINK    $@"
	$(Q)$(CC) $(LDFLAGS_ALL) -o $@ $^ $(LIBS)

$(BUILD)/rosim: $(call obj,$(CLI_SRC)) $(LIB_OBJ)
	@[ "$(V)" = 1 ] || echo "  LINK    $@"
	$(Q)$(CC) $(LDFLAGS_ALL) -o $@ $^ $(LIBS)

$(BUILD)/check_rosim: $(call obj,$(TEST_SRC)) $(SERVER_OBJ) $(LIB_OBJ)
	@[ "$(V)" = 1 ] || echo "  LINK    $@"
	$(Q)$(CC) $(LDFLAGS_ALL) -o $@ $^ $(LIBS) $(TEST_LIBS)

# The suites find the binaries and fixtures through these variables.
check: $(BUILD)/check_rosim $(BUILD)/rosimd $(BUILD)/rosim
	ROSIMD=$(BUILD)/rosimd ROSIM=$(BUILD)/rosim $(BUILD)/check_rosim

run: all
	$(BUILD)/rosimd -c conf/rosimd.conf

bench: all
	sh bench/run.sh $(BUILD) $(BENCH)

install: all
	install -d $(DESTDIR)$(PREFIX)/bin $(DESTDIR)$(PREFIX)/etc/rosim \
	    $(DESTDIR)$(PREFIX)/share/rosim $(DESTDIR)$(PREFIX)/lib/systemd/system
	install -m 0755 $(BUILD)/rosimd $(BUILD)/rosim $(DESTDIR)$(PREFIX)/bin/
	sed 's|^demo_vocab = .*|demo_vocab = $(PREFIX)/share/rosim/vocab.txt|' conf/rosimd.conf \
	    > $(DESTDIR)$(PREFIX)/etc/rosim/rosimd.conf
	install -m 0644 share/vocab.txt $(DESTDIR)$(PREFIX)/share/rosim/vocab.txt
	sed 's|@PREFIX@|$(PREFIX)|g' systemd/rosimd.service \
	    > $(DESTDIR)$(PREFIX)/lib/systemd/system/rosimd.service

# --- drills: rosimd killed, flooded and starved, checked from outside ---
$(BUILD)/drill_%: $(call obj,tests/drills/%_drill.c tests/testutil.c)
	@[ "$(V)" = 1 ] || echo "  LINK    $@"
	$(Q)$(CC) $(LDFLAGS_ALL) -o $@ $^ $(LIBS) $(TEST_LIBS)

drills: $(BUILD)/drill_crash $(BUILD)/drill_overload $(BUILD)/rosimd
	ROSIMD=$(BUILD)/rosimd $(BUILD)/drill_crash 50
	ROSIMD=$(BUILD)/rosimd $(BUILD)/drill_overload

# --- fuzzing: clang + libFuzzer + ASan/UBSan; corpora grow in build/fuzz ---
FUZZ_TARGETS = tokenizer tf safetensors torch config api snapshot
FUZZ_SECONDS ?= 600
FUZZ_CC      ?= clang
FUZZ_SRC      = $(MODEL_SRC) $(INDEX_SRC) $(SERVER_SRC)
FUZZ_FLAGS    = -g -O1 -fno-omit-frame-pointer -fsanitize=fuzzer,address,undefined \
                -fno-sanitize-recover=undefined $(STD) $(DEFS) \
                $(shell pkg-config --cflags $(PKGS) 2>/dev/null)

fuzz: $(FUZZ_TARGETS:%=build/fuzz/fuzz_%)
	@for t in $(FUZZ_TARGETS); do \
	    mkdir -p build/fuzz/corpus/$$t; \
	    echo "fuzz_$$t for $(FUZZ_SECONDS) s"; \
	    build/fuzz/fuzz_$$t -max_total_time=$(FUZZ_SECONDS) -timeout=20 -rss_limit_mb=4096 \
	        -max_len=65536 -print_final_stats=1 -artifact_prefix=build/fuzz/$$t- \
	        build/fuzz/corpus/$$t tests/fuzz/corpus/$$(echo $$t | sed 's/^tf$$\|^safetensors$$\|^torch$$/weights/') \
	        2>build/fuzz/$$t.log \
	        || { tail -40 build/fuzz/$$t.log; exit 1; }; \
	    grep -E "stat::number_of_executed_units|stat::average_exec_per_sec" build/fuzz/$$t.log; \
	done

build/fuzz/fuzz_%: tests/fuzz/fuzz_%.c $(FUZZ_SRC) $(SETUP)
	@mkdir -p $(dir $@)
	@echo "  FUZZ    $@"
	$(Q)$(FUZZ_CC) $(FUZZ_FLAGS) -o $@ $< $(FUZZ_SRC) $(LIBS)

# one target per weight reader, from one source
build/fuzz/fuzz_tf build/fuzz/fuzz_safetensors build/fuzz/fuzz_torch: \
        tests/fuzz/fuzz_weights.c $(FUZZ_SRC) $(SETUP)
	@mkdir -p $(dir $@)
	@echo "  FUZZ    $@"
	$(Q)$(FUZZ_CC) $(FUZZ_FLAGS) -DWEIGHTS_FORMAT=$(if $(findstring _tf,$@),0,$(if $(findstring safetensors,$@),1,2)) \
	    -o $@ $< $(FUZZ_SRC) $(LIBS)

clean:
	rm -rf build/obj build/san build/fuzz build/rosimd build/rosim build/check_rosim

-include $(shell find $(BUILD)/obj -name '*.d' 2>/dev/null)
