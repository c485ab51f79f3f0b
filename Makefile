# Makefile for rosim: the rosimd daemon, the rosim command-line tool, tests.
#
#   make                  build build/rosimd and build/rosim
#   make check            build and run every libcheck suite, then check every
#                         reply they got against docs/openapi.json
#   make check SANITIZE=1 the same under AddressSanitizer + UBSan (build/san)
#   make check TSAN=1     the same under ThreadSanitizer (build/tsan)
#   make run              start rosimd with conf/rosimd.conf (demo model if none)
#   make bench [BENCH="encoder import generate search"]   benchmarks (bench/run.sh)
#   make install PREFIX=/usr/local [DESTDIR=...]   (PREFIX=/usr: config in /etc)
#   make docker-test      build the image, run it for real (scripts/docker-test.sh)
#   make systemd-test     boot the unit in systemd-nspawn (scripts/systemd-test.sh)
#   make haproxy-test     deploy/haproxy.cfg in front of two replicas on PostgreSQL
#   make fuzz [FUZZ_SECONDS=600]   libFuzzer (clang) on every parser, in turn
#   make drills           kill -9 under write load (50 rounds), overload, slowloris
#
# The first build runs scripts/setup.sh, which installs the Debian packages
# rosim needs and builds the FAISS C API into build/faiss.  V=1 shows the
# compiler command lines.

VERSION   = 0.1.0
PREFIX   ?= /usr/local
DESTDIR  ?=
# The configuration lives in /etc for a system install (PREFIX=/usr), else
# beside the rest; unit files go where systemd looks for that prefix.
ifeq ($(PREFIX),/usr)
SYSCONFDIR ?= /etc
else
SYSCONFDIR ?= $(PREFIX)/etc
endif
UNITDIR  ?= $(PREFIX)/lib/systemd/system
CC       ?= cc
CXX      ?= c++

MODEL_OMP = -fopenmp
ifeq ($(SANITIZE),1)
BUILD    ?= build/san
SAN       = -fsanitize=address,undefined -fno-sanitize-recover=all
OPT      ?= -O1 -g -fno-omit-frame-pointer
else ifeq ($(TSAN),1)
# FAISS, OpenBLAS, oneDNN and libgomp are not instrumented: TSan cannot see
# libgomp's barriers, so OpenMP regions look racy to it.  model/ is built
# without its own OpenMP loops (they run serially; oneDNN keeps its full
# teams, which it needs) and the suites run with one OpenMP thread, so that
# every thread TSan watches is one of rosim's own, all instrumented.  No
# suppressions: none is needed then.
# Every process (the suites, and the rosimd and rosim they start) writes its
# reports to $(BUILD)/tsan-report.PID; any report fails the run.
BUILD    ?= build/tsan
SAN       = -fsanitize=thread
OPT      ?= -O1 -g -fno-omit-frame-pointer
MODEL_OMP = -Wno-unknown-pragmas -Wno-unused-variable -Wno-unused-parameter
CHECK_ENV = OMP_NUM_THREADS=1 TSAN_OPTIONS="halt_on_error=0 exitcode=66 second_deadlock_stack=1 \
            log_path=$(CURDIR)/$(BUILD)/tsan-report"
CHECK_REPORTS = ; st=$$?; if ls $(BUILD)/tsan-report.* >/dev/null 2>&1; then \
            cat $(BUILD)/tsan-report.*; exit 1; fi; exit $$st
else
BUILD    ?= build
SAN       =
OPT      ?= -O2 -g -fno-omit-frame-pointer
endif

STD       = -std=c11 -D_GNU_SOURCE
WARN      = -Wall -Wextra -Wshadow -Wstrict-prototypes -Wmissing-prototypes \
            -Wpointer-arith -Wformat=2 -Werror=implicit-function-declaration
PKGS      = libmicrohttpd jansson sqlite3 libpq inih libsystemd libutf8proc openblas
DEFS      = -DROSIM_VERSION='"$(VERSION)"' \
            -DROSIM_CONF_PATH='"$(SYSCONFDIR)/rosim/rosimd.conf"'
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
SERVER_OBJ = $(call obj,$(SERVER_SRC)) $(WEB_OBJ)

# The playground and the OpenAPI document, compiled into rosimd (server/web.h):
# URL=file pairs turned into a C source in the build tree.
WEB_FILES = /=server/web/index.html /playground.js=server/web/playground.js \
            /playground.css=server/web/playground.css /openapi.json=docs/openapi.json
WEB_GEN   = $(BUILD)/gen/web_files.c
WEB_OBJ   = $(call obj,$(WEB_GEN))

ifeq ($(V),1)
Q =
else
Q = @
endif

.PHONY: all check run bench bench-replicas install clean setup fuzz drills docker-test systemd-test \
        haproxy-test FORCE
all: $(BUILD)/rosimd $(BUILD)/rosim

setup: $(SETUP)
# setup.sh touches the stamp itself, so running it by hand counts too.
$(SETUP): scripts/setup.sh tests/openai/package-lock.json tests/web/package-lock.json
	sh scripts/setup.sh

# The encoder's element-wise loops are written to be vectorized: -O3 for model/;
# they share oneDNN's OpenMP threads.
$(BUILD)/obj/model/%.o: OPT_EXTRA = -O3 $(MODEL_OMP)

$(BUILD)/obj/%.o: %.c $(SETUP)
	@mkdir -p $(dir $@)
	@[ "$(V)" = 1 ] || echo "  CC      $<"
	$(Q)$(CC) $(CFLAGS_ALL) -c $< -o $@

# main.c has the configuration path built in: rebuilt when the paths change
# (`make` then `make install PREFIX=/usr` must not install a binary that
# looks under /usr/local/etc).
$(BUILD)/.paths: FORCE
	@mkdir -p $(dir $@)
	@echo "$(PREFIX) $(SYSCONFDIR)" | cmp -s - $@ || echo "$(PREFIX) $(SYSCONFDIR)" > $@
$(call obj,server/main.c): $(BUILD)/.paths

$(WEB_GEN): scripts/embed-files.sh $(foreach f,$(WEB_FILES),$(word 2,$(subst =, ,$(f))))
	@mkdir -p $(dir $@)
	@[ "$(V)" = 1 ] || echo "  GEN     $@"
	$(Q)sh scripts/embed-files.sh $@ $(WEB_FILES)
$(WEB_OBJ): OPT_EXTRA = -I.

$(BUILD)/rosimd: $(call obj,server/main.c) $(SERVER_OBJ) $(LIB_OBJ)
	@[ "$(V)" = 1 ] || echo "  LINK    $@"
	$(Q)$(CC) $(LDFLAGS_ALL) -o $@ $^ $(LIBS)

$(BUILD)/rosim: $(call obj,$(CLI_SRC)) $(LIB_OBJ)
	@[ "$(V)" = 1 ] || echo "  LINK    $@"
	$(Q)$(CC) $(LDFLAGS_ALL) -o $@ $^ $(LIBS)

$(BUILD)/check_rosim: $(call obj,$(TEST_SRC)) $(SERVER_OBJ) $(LIB_OBJ)
	@[ "$(V)" = 1 ] || echo "  LINK    $@"
	$(Q)$(CC) $(LDFLAGS_ALL) -o $@ $^ $(LIBS) $(TEST_LIBS)

# The suites find the binaries and fixtures through these variables.  Every
# reply they receive is logged, then checked against docs/openapi.json.
API_LOG = $(abspath $(BUILD))/api-replies.log
check: $(BUILD)/check_rosim $(BUILD)/rosimd $(BUILD)/rosim
	@rm -f $(BUILD)/tsan-report.* $(API_LOG)
	$(CHECK_ENV) ROSIMD=$(BUILD)/rosimd ROSIM=$(BUILD)/rosim ROSIM_API_LOG=$(API_LOG) \
	    WEB_SCREENSHOT=$(BUILD)/playground.png $(BUILD)/check_rosim $(CHECK_REPORTS)
	node tests/web/validate.mjs docs/openapi.json $(API_LOG)

run: all
	$(BUILD)/rosimd -c conf/rosimd.conf -o model.demo_if_missing=yes

bench: all $(BUILD)/replica_bench
	sh bench/run.sh $(BUILD) $(BENCH)

# shared collections: write rates, replica catch-up, search latency (a
# PostgreSQL server is started for it)
bench-replicas: $(BUILD)/replica_bench
	$(BUILD)/replica_bench $(DOCS)

$(BUILD)/replica_bench: $(call obj,bench/replica_bench.c tests/pgserver.c tests/testutil.c) $(LIB_OBJ)
	@[ "$(V)" = 1 ] || echo "  LINK    $@"
	$(Q)$(CC) $(LDFLAGS_ALL) -o $@ $^ $(LIBS) $(TEST_LIBS)

# An existing rosimd.conf is never overwritten: the shipped one is always
# installed beside it as rosimd.conf.dist, and copied to rosimd.conf only
# when there is none.
CONF_DEST = $(DESTDIR)$(SYSCONFDIR)/rosim/rosimd.conf
install: all
	install -d $(DESTDIR)$(PREFIX)/bin $(DESTDIR)$(SYSCONFDIR)/rosim \
	    $(DESTDIR)$(PREFIX)/share/rosim $(DESTDIR)$(PREFIX)/share/doc/rosim $(DESTDIR)$(UNITDIR)
	install -m 0755 $(BUILD)/rosimd $(BUILD)/rosim $(DESTDIR)$(PREFIX)/bin/
	sed -e 's|^demo_vocab = .*|demo_vocab = $(PREFIX)/share/rosim/vocab.txt|' \
	    -e 's|^dir = .*|dir = /var/lib/rosim/models/roformer-sim|' \
	    -e 's|^data = .*|data = /var/lib/rosim/data|' conf/rosimd.conf > $(CONF_DEST).dist
	chmod 0644 $(CONF_DEST).dist
	@if [ -e $(CONF_DEST) ]; then \
	    echo "install: kept $(CONF_DEST); the shipped one is $(CONF_DEST).dist"; \
	else \
	    cp -p $(CONF_DEST).dist $(CONF_DEST) && echo "install: $(CONF_DEST)"; \
	fi
	install -m 0644 share/vocab.txt $(DESTDIR)$(PREFIX)/share/rosim/vocab.txt
	install -m 0644 README.md $(DESTDIR)$(PREFIX)/share/doc/rosim/README.md
	sed -e 's|@PREFIX@|$(PREFIX)|g' -e 's|@SYSCONFDIR@|$(SYSCONFDIR)|g' systemd/rosimd.service \
	    > $(DESTDIR)$(UNITDIR)/rosimd.service
	chmod 0644 $(DESTDIR)$(UNITDIR)/rosimd.service

# Deployment tests that run the real thing (need root, debootstrap, and
# dockerd or systemd-nspawn; haproxy and PostgreSQL; they say what is
# missing).
docker-test:
	sh scripts/docker-test.sh

systemd-test:
	sh scripts/systemd-test.sh

haproxy-test: $(BUILD)/rosimd
	ROSIMD=$(BUILD)/rosimd sh scripts/haproxy-test.sh

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
FUZZ_SRC      = $(MODEL_SRC) $(INDEX_SRC) $(SERVER_SRC) $(WEB_GEN)
FUZZ_FLAGS    = -g -O1 -fno-omit-frame-pointer -fsanitize=fuzzer,address,undefined -I. \
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
	rm -rf build/obj build/gen build/san build/tsan build/fuzz build/rosimd build/rosim build/check_rosim build/.paths

-include $(shell find $(BUILD)/obj -name '*.d' 2>/dev/null)
