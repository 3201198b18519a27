# SPDX-License-Identifier: MIT
# imapsweep — plain GNU make. `make`, `make check`, `make demo`, `make fuzz`,
# `make bench-quick`, `make soak`, `make install PREFIX=/usr/local DESTDIR=`.

# The one place the version is written: it flows into the binaries
# (IMAPSWEEP_VERSION), `make dist`; the man pages' .TH lines, NEWS.md and
# debian/changelog must say the same (scripts/release-check, run by
# `make lint`, fails when they drift).
VERSION    := 0.1.0
CC         ?= cc
BUILD      ?= build
PREFIX     ?= /usr/local
DESTDIR    ?=
SBINDIR    ?= $(PREFIX)/sbin
BINDIR     ?= $(PREFIX)/bin
MANDIR     ?= $(PREFIX)/share/man
# compiled in: the daemon's default configuration is
# $(SYSCONFDIR)/imapsweep/imapsweep.yaml (for root)
SYSCONFDIR ?= /etc
UNITDIR    ?= $(PREFIX)/lib/systemd/system
USERUNITDIR ?= $(PREFIX)/lib/systemd/user
DOCDIR     ?= $(PREFIX)/share/doc/imapsweep
COMPLETIONDIR ?= $(PREFIX)/share/bash-completion/completions
PYTHON     ?= python3

PKGS       := libuv openssl yaml-0.1 libsystemd jansson libpcre2-8
PKG_CFLAGS := $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
PKG_LIBS   := $(shell pkg-config --libs $(PKGS) 2>/dev/null)

WARN       := -Wall -Wextra -Werror -Wshadow -Wstrict-prototypes \
              -Wmissing-prototypes -Wformat=2 -Wno-format-nonliteral \
              -Wpointer-arith -Wvla
CFLAGS     ?= -O2 -g
ALL_CFLAGS := -std=c11 -D_GNU_SOURCE -DIMAPSWEEP_VERSION='"$(VERSION)"' \
              -DIMAPSWEEP_SYSCONFDIR='"$(SYSCONFDIR)"' \
              $(WARN) $(CPPFLAGS) $(CFLAGS) $(EXTRA_CFLAGS) -Iinclude \
              $(PKG_CFLAGS) -MMD -MP
LDLIBS     := $(PKG_LIBS) -lm

# Everything is rebuilt when the compiler, its flags (SYSCONFDIR, VERSION
# included) or LDFLAGS change: `make install SYSCONFDIR=/opt/etc` after a
# plain `make` must not install a daemon that looks in /etc.
FLAGS_FILE := $(BUILD)/.flags
ifeq ($(filter clean,$(MAKECMDGOALS)),)
$(shell mkdir -p $(BUILD))
$(file >$(FLAGS_FILE).new,$(CC) $(ALL_CFLAGS) $(LDFLAGS))
$(shell cmp -s $(FLAGS_FILE).new $(FLAGS_FILE) && rm -f $(FLAGS_FILE).new || mv -f $(FLAGS_FILE).new $(FLAGS_FILE))
endif
# (`make clean all`: written at parse time only without clean)
$(FLAGS_FILE):
	@mkdir -p $(@D) && touch $@

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
        uninstall dist package-check integration interop interop-check \
        check-config-example systemd-check bench bench-quick bench-hostile \
        soak soak-valgrind

all: $(BUILD)/imapsweepd $(BUILD)/imapsweepctl

$(BUILD)/obj/%.o: src/%.c $(FLAGS_FILE)
	@mkdir -p $(@D)
	$(CC) $(ALL_CFLAGS) -c $< -o $@

$(BUILD)/tests/lib/%.o: tests/unit/lib/%.c $(FLAGS_FILE)
	@mkdir -p $(@D)
	$(CC) $(ALL_CFLAGS) -Itests/unit/lib -c $< -o $@

$(BUILD)/tests/%.o: tests/unit/%.c $(FLAGS_FILE)
	@mkdir -p $(@D)
	$(CC) $(ALL_CFLAGS) -Itests/unit -Itests/unit/lib -c $< -o $@

$(BUILD)/tests/tools/%.o: tests/tools/%.c $(FLAGS_FILE)
	@mkdir -p $(@D)
	$(CC) $(ALL_CFLAGS) -c $< -o $@

$(LIB): $(LIB_OBJS)
	@rm -f $@
	ar rcs $@ $^

$(TESTLIB): $(TESTLIB_OBJS)
	@rm -f $@
	ar rcs $@ $^

$(BUILD)/imapsweepd: $(BUILD)/obj/service/main.o $(LIB)
	$(CC) $(ALL_CFLAGS) $(LDFLAGS) -o $@ $^ $(LDLIBS)

$(BUILD)/imapsweepctl: $(BUILD)/obj/service/imapsweepctl.o $(LIB)
	$(CC) $(ALL_CFLAGS) $(LDFLAGS) -o $@ $^ $(LDLIBS)

$(BUILD)/tests/test_%: $(BUILD)/tests/test_%.o $(TESTLIB) $(LIB)
	$(CC) $(ALL_CFLAGS) $(LDFLAGS) -o $@ $^ $(LDLIBS) -lcmocka

$(BUILD)/tests/%: $(BUILD)/tests/tools/%.o $(LIB)
	$(CC) $(ALL_CFLAGS) $(LDFLAGS) -o $@ $^ $(LDLIBS)

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
	@scripts/release-check
	@$(PYTHON) tests/lint/test_release_check.py

check-config-example: $(BUILD)/imapsweepd
	$(BUILD)/imapsweepd --check-config --syntax-only -c conf/imapsweep.yaml

integration: all tools
	$(PYTHON) tests/integration/run.py

# imapsweepd against Dovecot, Cyrus 3.6 (both namespace modes) and
# Courier-IMAP 5.0. Cyrus and Courier conflict with dovecot-imapd, so
# scripts/interop-servers unpacks them (once) into build/interop-servers and
# the tests run each in a private mount+PID namespace (root needed).
# `interop` always runs them; `check` runs them when the machine can
# (scripts/interop-check: root, unshare and overlayfs usable, the packages
# downloadable) and otherwise says plainly that it did not. INTEROP=yes
# makes a machine that cannot an error, INTEROP=no leaves them out.
interop: all tools
	scripts/interop-servers >/dev/null
	$(PYTHON) tests/integration/run.py -m test_interop

interop-check: all tools
	PYTHON=$(PYTHON) scripts/interop-check $(BUILD)

systemd-check:
	@scripts/systemd-check

check: deps
	$(MAKE) all tools
	$(MAKE) lint
	$(MAKE) unit
	$(MAKE) check-config-example
	$(MAKE) unit-san
	$(MAKE) integration
	$(MAKE) interop-check
	$(MAKE) systemd-check
	@if scripts/package-check --tools-present; then \
	    $(MAKE) package-check; \
	else \
	    echo "check: package-check not run: the packaging tools are missing" \
	         "(scripts/install-deps installs them)"; \
	fi
	@if [ -f $(BUILD)/interop-not-run ]; then \
	    echo "check: all passed, but the interop tests did not run: $$(cat $(BUILD)/interop-not-run)"; \
	else \
	    echo "check: all passed (interop tests included)"; \
	fi

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

# the sweep target drives a sweep over the unit-test library's scripted
# server
$(BUILD)/fuzz_sweep: tests/fuzz/fuzz_sweep.c $(TESTLIB) $(LIB)
	$(CC) $(ALL_CFLAGS) -Itests/unit/lib -fsanitize=fuzzer -o $@ $^ $(LDLIBS)

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
	$(CC) $(ALL_CFLAGS) $(LDFLAGS) -Itests/unit/lib -o $@ $^ $(LDLIBS)

bench-hostile: $(BUILD)/bench/hostile
	$(BUILD)/bench/hostile descending 150000
	$(BUILD)/bench/hostile liar 100000000

# The soak (bench/soak.py, docs/reliability.md): one daemon, 1,000 watchers
# over 100 accounts on a hibernating Dovecot for SOAK_MINUTES (30), Dovecot
# restarted every minute, a reload every 30 s, mail every second; one
# summary line. soak-valgrind: 100 watchers, 5 minutes, under valgrind.
# Long and CPU-hungry: run it as `nice -n 10 make soak` on a shared machine.
soak: all
	IMAPSWEEP_BUILD=$(BUILD) $(PYTHON) bench/soak.py

soak-valgrind: all
	SOAK_VALGRIND=1 IMAPSWEEP_BUILD=$(BUILD) $(PYTHON) bench/soak.py

# --- install ----------------------------------------------------------------

# Paths in the units and the completion as installed
INSTALL_SED := -e 's|/usr/sbin/imapsweepd|$(SBINDIR)/imapsweepd|g' \
               -e 's|/usr/bin/imapsweepctl|$(BINDIR)/imapsweepctl|g' \
               -e 's|/etc/imapsweep/|$(SYSCONFDIR)/imapsweep/|g' \
               -e 's|/usr/share/doc/imapsweep|$(DOCDIR)|g'
SYSTEM_UNITS := $(wildcard systemd/*.service systemd/*.socket systemd/*.timer)
USER_UNITS   := $(wildcard systemd/user/*.service)
MANPAGES     := docs/imapsweepd.8 docs/imapsweepctl.1 docs/imapsweep.yaml.5
DOCS         := README.md NEWS.md docs/guide.md
# The configuration installed where there is none: it watches nothing and
# the daemon refuses it (`--check-config` says why), so an installed,
# enabled service does nothing until the operator writes a real one.
INERT_CONFIG := conf/inert.yaml
# 1: also put the example beside the configuration (make install); the
# package leaves it in the doc directory only.
ETC_EXAMPLE  ?= 1

install: all
	install -d $(DESTDIR)$(SBINDIR) $(DESTDIR)$(BINDIR) \
	    $(DESTDIR)$(MANDIR)/man1 $(DESTDIR)$(MANDIR)/man5 \
	    $(DESTDIR)$(MANDIR)/man8 $(DESTDIR)$(UNITDIR) \
	    $(DESTDIR)$(USERUNITDIR) $(DESTDIR)$(DOCDIR)/examples \
	    $(DESTDIR)$(COMPLETIONDIR) $(DESTDIR)$(SYSCONFDIR)/imapsweep
	install -m 755 $(BUILD)/imapsweepd $(DESTDIR)$(SBINDIR)/imapsweepd
	install -m 755 $(BUILD)/imapsweepctl $(DESTDIR)$(BINDIR)/imapsweepctl
	install -m 644 docs/imapsweepd.8 $(DESTDIR)$(MANDIR)/man8/
	install -m 644 docs/imapsweepctl.1 $(DESTDIR)$(MANDIR)/man1/
	install -m 644 docs/imapsweep.yaml.5 $(DESTDIR)$(MANDIR)/man5/
	set -e; for u in $(SYSTEM_UNITS); do \
	    sed $(INSTALL_SED) "$$u" > $(DESTDIR)$(UNITDIR)/$${u##*/}; \
	    chmod 644 $(DESTDIR)$(UNITDIR)/$${u##*/}; \
	done
	set -e; for u in $(USER_UNITS); do \
	    sed $(INSTALL_SED) "$$u" > $(DESTDIR)$(USERUNITDIR)/$${u##*/}; \
	    chmod 644 $(DESTDIR)$(USERUNITDIR)/$${u##*/}; \
	done
	set -e; for c in imapsweepd imapsweepctl; do \
	    sed $(INSTALL_SED) completion/$$c > $(DESTDIR)$(COMPLETIONDIR)/$$c; \
	    chmod 644 $(DESTDIR)$(COMPLETIONDIR)/$$c; \
	done
	install -m 644 $(DOCS) $(DESTDIR)$(DOCDIR)/
	install -m 644 conf/imapsweep.yaml $(DESTDIR)$(DOCDIR)/examples/imapsweep.yaml
	if [ "$(ETC_EXAMPLE)" = 1 ]; then \
	    install -m 644 conf/imapsweep.yaml \
	        $(DESTDIR)$(SYSCONFDIR)/imapsweep/imapsweep.yaml.example; \
	fi
	@if [ ! -e $(DESTDIR)$(SYSCONFDIR)/imapsweep/imapsweep.yaml ]; then \
	    sed $(INSTALL_SED) $(INERT_CONFIG) \
	        > $(DESTDIR)$(SYSCONFDIR)/imapsweep/imapsweep.yaml; \
	    chmod 644 $(DESTDIR)$(SYSCONFDIR)/imapsweep/imapsweep.yaml; \
	    echo "installed $(DESTDIR)$(SYSCONFDIR)/imapsweep/imapsweep.yaml:" \
	         "it watches nothing until you write your own (see the example)"; \
	else \
	    echo "kept existing $(DESTDIR)$(SYSCONFDIR)/imapsweep/imapsweep.yaml"; \
	fi

# Removes what install added; the configuration only while it is still the
# untouched one install put there, never one the operator wrote.
uninstall:
	rm -f $(DESTDIR)$(SBINDIR)/imapsweepd $(DESTDIR)$(BINDIR)/imapsweepctl
	rm -f $(DESTDIR)$(MANDIR)/man8/imapsweepd.8 \
	    $(DESTDIR)$(MANDIR)/man1/imapsweepctl.1 \
	    $(DESTDIR)$(MANDIR)/man5/imapsweep.yaml.5
	for u in $(notdir $(SYSTEM_UNITS)); do rm -f $(DESTDIR)$(UNITDIR)/$$u; done
	for u in $(notdir $(USER_UNITS)); do rm -f $(DESTDIR)$(USERUNITDIR)/$$u; done
	rm -f $(DESTDIR)$(COMPLETIONDIR)/imapsweepd \
	    $(DESTDIR)$(COMPLETIONDIR)/imapsweepctl
	for d in $(notdir $(DOCS)); do rm -f $(DESTDIR)$(DOCDIR)/$$d; done
	rm -f $(DESTDIR)$(DOCDIR)/examples/imapsweep.yaml
	-rmdir $(DESTDIR)$(DOCDIR)/examples $(DESTDIR)$(DOCDIR) 2>/dev/null
	if cmp -s conf/imapsweep.yaml \
	        $(DESTDIR)$(SYSCONFDIR)/imapsweep/imapsweep.yaml.example; then \
	    rm -f $(DESTDIR)$(SYSCONFDIR)/imapsweep/imapsweep.yaml.example; \
	fi
	@if sed $(INSTALL_SED) $(INERT_CONFIG) | cmp -s - \
	        $(DESTDIR)$(SYSCONFDIR)/imapsweep/imapsweep.yaml; then \
	    rm -f $(DESTDIR)$(SYSCONFDIR)/imapsweep/imapsweep.yaml; \
	elif [ -e $(DESTDIR)$(SYSCONFDIR)/imapsweep/imapsweep.yaml ]; then \
	    echo "kept $(DESTDIR)$(SYSCONFDIR)/imapsweep/imapsweep.yaml" \
	         "(yours, not the one install put there)"; \
	fi
	-rmdir $(DESTDIR)$(SYSCONFDIR)/imapsweep 2>/dev/null

# --- distribution, package -----------------------------------------------------

DIST := imapsweep-$(VERSION)
DISTDIR ?= .
# the files' time in the tarball: the last commit's (reproducible)
SOURCE_DATE_EPOCH ?= $(shell git log -1 --format=%ct 2>/dev/null || date +%s)
# The tracked files (with their changes, if any, in the work tree) as
# $(DIST).tar.gz; from an unpacked tarball (no git), the same files again.
dist:
	@rm -rf $(BUILD)/dist && mkdir -p $(BUILD)/dist/$(DIST)
	if [ -e .git ]; then git ls-files; else cat MANIFEST; fi | \
	    grep -v '^MANIFEST$$' > $(BUILD)/dist/MANIFEST
	tar -cf - -T $(BUILD)/dist/MANIFEST | tar -xf - -C $(BUILD)/dist/$(DIST)
	cp $(BUILD)/dist/MANIFEST $(BUILD)/dist/$(DIST)/MANIFEST
	tar -C $(BUILD)/dist --owner=0 --group=0 --sort=name \
	    --mtime='@$(SOURCE_DATE_EPOCH)' -czf $(DISTDIR)/$(DIST).tar.gz $(DIST)
	@rm -rf $(BUILD)/dist
	@echo "dist: $(DISTDIR)/$(DIST).tar.gz"

# Build the Debian package, install it into a throwaway root, run it from
# there, check it with lintian (scripts/package-check).
package-check: all
	@scripts/package-check

clean:
	rm -rf $(BUILD)

-include $(wildcard $(BUILD)/obj/*/*.d $(BUILD)/tests/*.d $(BUILD)/tests/lib/*.d \
                    $(BUILD)/tests/tools/*.d)
