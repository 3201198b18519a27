# imapsweep — plain GNU make. `make`, `make check`, `make demo`, `make fuzz`,
# `make bench-quick`, `make install PREFIX=/usr/local DESTDIR=`.

VERSION    := 0.1.0
CC         ?= cc
BUILD      ?= build
PREFIX     ?= /usr/local
DESTDIR    ?=
SBINDIR    ?= $(PREFIX)/sbin
BINDIR     ?= $(PREFIX)/bin
MANDIR     ?= $(PREFIX)/share/man
SYSCONFDIR ?= /etc
UNITDIR    ?= $(PREFIX)/lib/systemd/system
PYTHON     ?= python3

PKGS       := libuv openssl yaml-0.1 libsystemd jansson
PKG_CFLAGS := $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
PKG_LIBS   := $(shell pkg-config --libs $(PKGS) 2>/dev/null)

WARN       := -Wall -Wextra -Werror -Wshadow -Wstrict-prototypes \
              -Wmissing-prototypes -Wformat=2 -Wno-format-nonliteral \
              -Wpointer-arith -Wvla
CFLAGS     ?= -O2 -g
ALL_CFLAGS := -std=c11 -D_GNU_SOURCE -DIMAPSWEEP_VERSION='"$(VERSION)"' \
              $(WARN) $(CFLAGS) $(EXTRA_CFLAGS) -Iinclude $(PKG_CFLAGS) \
              -MMD -MP
LDLIBS     := $(PKG_LIBS) -lm

# One folder per layer, dependencies pointing down only (scripts/lint checks
# it): base <- imap <- sweep <- service.
LAYERS     := base imap sweep service
MAINS      := src/service/main.c src/service/imapsweepctl.c
LIB_SRCS   := $(filter-out $(MAINS),$(foreach l,$(LAYERS),$(wildcard src/$(l)/*.c)))
LIB_OBJS   := $(LIB_SRCS:src/%.c=$(BUILD)/obj/%.o)
LIB        := $(BUILD)/libimapsweep.a

UNIT_SRCS  := $(wildcard tests/unit/test_*.c)
UNIT_BINS  := $(UNIT_SRCS:tests/unit/%.c=$(BUILD)/tests/%)
# The unit-test library (tests/unit/lib/testlib.h): the scripted server,
# loop helpers, transcript assertions, the certificate fixture.
TESTLIB_SRCS := $(wildcard tests/unit/lib/*.c)
TESTLIB_OBJS := $(TESTLIB_SRCS:tests/unit/lib/%.c=$(BUILD)/tests/lib/%.o)
TESTLIB    := $(BUILD)/libtest.a
TOOL_SRCS  := $(wildcard tests/tools/*.c)
TOOL_BINS  := $(TOOL_SRCS:tests/tools/%.c=$(BUILD)/tests/%)
FUZZ_SRCS  := $(wildcard tests/fuzz/fuzz_*.c)

.PHONY: all clean check unit unit-san lint deps demo fuzz install \
        integration check-config-example systemd-check bench bench-quick \
        bench-hostile

all: $(BUILD)/imapsweepd $(BUILD)/imapsweepctl

$(BUILD)/obj/%.o: src/%.c
	@mkdir -p $(@D)
	$(CC) $(ALL_CFLAGS) -c $< -o $@

$(BUILD)/tests/lib/%.o: tests/unit/lib/%.c
	@mkdir -p $(@D)
	$(CC) $(ALL_CFLAGS) -Itests/unit/lib -c $< -o $@

$(BUILD)/tests/%.o: tests/unit/%.c
	@mkdir -p $(@D)
	$(CC) $(ALL_CFLAGS) -Itests/unit -Itests/unit/lib -c $< -o $@

$(BUILD)/tests/tools/%.o: tests/tools/%.c
	@mkdir -p $(@D)
	$(CC) $(ALL_CFLAGS) -c $< -o $@

$(LIB): $(LIB_OBJS)
	@rm -f $@
	ar rcs $@ $^

$(TESTLIB): $(TESTLIB_OBJS)
	@rm -f $@
	ar rcs $@ $^

$(BUILD)/imapsweepd: $(BUILD)/obj/service/main.o $(LIB)
	$(CC) $(ALL_CFLAGS) -o $@ $^ $(LDLIBS)

$(BUILD)/imapsweepctl: $(BUILD)/obj/service/imapsweepctl.o $(LIB)
	$(CC) $(ALL_CFLAGS) -o $@ $^ $(LDLIBS)

$(BUILD)/tests/test_%: $(BUILD)/tests/test_%.o $(TESTLIB) $(LIB)
	$(CC) $(ALL_CFLAGS) -o $@ $^ $(LDLIBS) -lcmocka

$(BUILD)/tests/%: $(BUILD)/tests/tools/%.o $(LIB)
	$(CC) $(ALL_CFLAGS) -o $@ $^ $(LDLIBS)

# --- tests -----------------------------------------------------------------

deps:
	@scripts/install-deps --check 2>/dev/null || scripts/install-deps

unit: $(UNIT_BINS)
	@set -e; for t in $(UNIT_BINS); do \
	    echo "== $$t"; \
	    IMAPSWEEP_TESTDATA=tests/data $$t; \
	done

# The same unit tests, built with clang and AddressSanitizer +
# UndefinedBehaviorSanitizer, any finding fatal.
SAN_FLAGS := -O1 -g -fsanitize=address,undefined -fno-omit-frame-pointer \
             -fno-sanitize-recover=all
unit-san:
	$(MAKE) BUILD=$(BUILD)/san CC=clang CFLAGS="$(SAN_FLAGS)" unit tools

tools: $(TOOL_BINS)

lint:
	@scripts/lint
	@$(PYTHON) tests/lint/test_lint.py

check-config-example: $(BUILD)/imapsweepd
	$(BUILD)/imapsweepd --check-config -c conf/imapsweep.yaml

integration: all tools
	$(PYTHON) tests/integration/run.py

systemd-check:
	@scripts/systemd-check

check: deps
	$(MAKE) all tools
	$(MAKE) lint
	$(MAKE) unit
	$(MAKE) check-config-example
	$(MAKE) unit-san
	$(MAKE) integration
	$(MAKE) systemd-check
	@echo "check: all passed"

# --- fuzzing (libFuzzer, bounded runs) --------------------------------------

FUZZ_TIME  ?= 60
FUZZ_FLAGS := -O1 -g -fsanitize=fuzzer-no-link,address,undefined \
              -fno-omit-frame-pointer -fno-sanitize-recover=all
fuzz: deps
	$(MAKE) BUILD=$(BUILD)/fuzz CC=clang CFLAGS="$(FUZZ_FLAGS)" fuzz-bins
	@set -e; for f in $(FUZZ_SRCS:tests/fuzz/%.c=%); do \
	    mkdir -p $(BUILD)/fuzz/corpus/$$f; \
	    dict=""; [ -f tests/fuzz/$$f.dict ] && dict="-dict=tests/fuzz/$$f.dict"; \
	    echo "== $$f ($(FUZZ_TIME)s)"; \
	    $(BUILD)/fuzz/$$f -max_total_time=$(FUZZ_TIME) -print_final_stats=1 \
	        $$dict $(BUILD)/fuzz/corpus/$$f tests/fuzz/corpus/$$f; \
	done

fuzz-bins: $(FUZZ_SRCS:tests/fuzz/%.c=$(BUILD)/%)

$(BUILD)/fuzz_%: tests/fuzz/fuzz_%.c $(LIB)
	$(CC) $(ALL_CFLAGS) -fsanitize=fuzzer -o $@ $^ $(LDLIBS)

# --- demo, benchmarks ------------------------------------------------------

demo: deps
	$(MAKE) all
	@scripts/demo

bench: deps
	$(MAKE) all tools $(BUILD)/bench/hostile
	IMAPSWEEP_BUILD=$(BUILD) $(PYTHON) bench/run.py --full

bench-quick: deps
	$(MAKE) all tools $(BUILD)/bench/hostile
	IMAPSWEEP_BUILD=$(BUILD) $(PYTHON) bench/run.py --quick

# What a hostile or large server costs one sweep (docs/benchmarks.md,
# "Hostile servers"): in-process, over the unit-test library's scripted
# server.
$(BUILD)/bench/hostile: bench/hostile.c $(TESTLIB) $(LIB)
	@mkdir -p $(@D)
	$(CC) $(ALL_CFLAGS) -Itests/unit/lib -o $@ $^ $(LDLIBS)

bench-hostile: $(BUILD)/bench/hostile
	$(BUILD)/bench/hostile descending 150000
	$(BUILD)/bench/hostile liar 100000000

# --- install ---------------------------------------------------------------

install: all
	install -d $(DESTDIR)$(SBINDIR) $(DESTDIR)$(BINDIR) \
	    $(DESTDIR)$(MANDIR)/man1 $(DESTDIR)$(MANDIR)/man5 \
	    $(DESTDIR)$(MANDIR)/man8 $(DESTDIR)$(UNITDIR) \
	    $(DESTDIR)$(SYSCONFDIR)/imapsweep
	install -m 755 $(BUILD)/imapsweepd $(DESTDIR)$(SBINDIR)/imapsweepd
	install -m 755 $(BUILD)/imapsweepctl $(DESTDIR)$(BINDIR)/imapsweepctl
	install -m 644 docs/imapsweepd.8 $(DESTDIR)$(MANDIR)/man8/
	install -m 644 docs/imapsweepctl.1 $(DESTDIR)$(MANDIR)/man1/
	install -m 644 docs/imapsweep.yaml.5 $(DESTDIR)$(MANDIR)/man5/
	for u in systemd/*.service systemd/*.socket; do \
	    [ -f "$$u" ] || continue; \
	    sed 's|/usr/sbin/imapsweepd|$(SBINDIR)/imapsweepd|g' "$$u" \
	        > $(DESTDIR)$(UNITDIR)/$$(basename $$u); \
	    chmod 644 $(DESTDIR)$(UNITDIR)/$$(basename $$u); \
	done
	install -m 644 conf/imapsweep.yaml \
	    $(DESTDIR)$(SYSCONFDIR)/imapsweep/imapsweep.yaml.example
	@if [ ! -e $(DESTDIR)$(SYSCONFDIR)/imapsweep/imapsweep.yaml ]; then \
	    install -m 644 conf/imapsweep.yaml \
	        $(DESTDIR)$(SYSCONFDIR)/imapsweep/imapsweep.yaml; \
	else \
	    echo "kept existing $(DESTDIR)$(SYSCONFDIR)/imapsweep/imapsweep.yaml"; \
	fi

clean:
	rm -rf $(BUILD)

-include $(wildcard $(BUILD)/obj/*/*.d $(BUILD)/tests/*.d $(BUILD)/tests/lib/*.d \
                    $(BUILD)/tests/tools/*.d)
