# The one test command (README): the lint gates, libmq and mqd, the pinned
# cbindgen, then every test of the workspace (cargo builds no cdylib for tests;
# the symbol and end-to-end tests of the C ABI load target/debug/libmq.so),
# then the C examples and tests, the Python package's pytest suite and the Go
# module's tests, each against a real mqd, then one closing line that adds up
# every result. A failure in one part still runs the next, and fails the whole.
SHELL := bash
.SHELLFLAGS := -eo pipefail -c
.PHONY: test lint libmq tools bench bench-ha bench-acl bench-apache install install-build uninstall

test: lint libmq tools
	mkdir -p target
	status=0; \
	cargo test --workspace --all-targets --no-fail-fast 2>&1 | tee target/test-output.log || status=1; \
	$(MAKE) -C bindings/c test 2>&1 | tee -a target/test-output.log || status=1; \
	$(MAKE) -C bindings/python test 2>&1 | tee target/test-python.log || status=1; \
	$(PYTEST_RESULT) target/test-python.log >> target/test-output.log; \
	$(MAKE) -C bindings/go test GOTESTFLAGS=-v 2>&1 | tee target/test-go.log || status=1; \
	$(GO_RESULT) target/test-go.log >> target/test-output.log; \
	grep '(bindings/' target/test-output.log; \
	awk '/^test result:/ { passed += $$4; failed += $$6 } END { printf "tests: %d passed, %d failed\n", passed, failed }' target/test-output.log; \
	exit $$status

# pytest's and go test's counts as a cargo "test result:" line, for the total.
# A suite that ran nothing, or died, counts as one failure.
PYTEST_RESULT := awk '/ in [0-9.]+s/ && (/ passed/ || / failed/ || / error/) { p = 0; f = 0; for (i = 1; i < NF; i++) { if ($$(i+1) ~ /^passed/) p = $$i; if ($$(i+1) ~ /^(failed|errors?)/) f += $$i } } END { if (!p && !f) f = 1; printf "test result: %s. %d passed; %d failed; (bindings/python)\n", (f ? "FAILED" : "ok"), p, f }'
GO_RESULT := awk '/^ *--- PASS/ { p++ } /^ *--- FAIL/ { f++ } /^(FAIL|panic:)/ { bad = 1 } END { if (bad && !f) f = 1; if (!p && !f) f = 1; printf "test result: %s. %d passed; %d failed; (bindings/go)\n", (f ? "FAILED" : "ok"), p, f }'

# target/debug/libmq.so and libmq.a, and mqd for the bindings' tests. cargo
# names the shared library libmq.so, but its soname is libmq.so.1, the name a
# program linked with -lmq looks for at run time: link it.
# mqctl too: the install test (tests/e2e/install.rs) installs these builds.
libmq:
	cargo build -p mq-capi -p mq-daemon -p mqctl
	ln -sfn libmq.so target/debug/libmq.so.1

# The pinned cbindgen that renders include/mq.h (tests/header.rs compares the
# checked-in header with its output), installed once under target/tools.
CBINDGEN_VERSION := 0.29.4
tools:
	@if [ "$$(target/tools/bin/cbindgen --version 2>/dev/null)" != "cbindgen $(CBINDGEN_VERSION)" ]; then \
		cargo install --locked --root target/tools cbindgen --version $(CBINDGEN_VERSION); \
	fi

lint:
	cargo fmt --all -- --check
	cargo clippy --workspace --all-targets -- -D warnings

bench:
	cargo run --release -p mq-daemon --example store_bench

# ASYNC_MASTER alone vs SYNC_MASTER + SLAVE, mqctl bench produce (README, Performance).
bench-ha:
	tests/bench/replication.sh

# mq against Apache RocketMQ 4.9.7 with the same clients, side by side (README, Performance).
bench-apache:
	tests/bench/apache.sh

# ACL off vs aclEnable with signed sends, mqctl bench produce (README, Performance).
bench-acl:
	tests/bench/acl.sh

# Installs mq under PREFIX, staged under DESTDIR when packaging:
#   make install [PREFIX=/usr/local] [DESTDIR=] [PROFILE=release]
# bin/mqd, bin/mqctl; lib/libmq.so.1.0.0 with its soname link libmq.so.1 and
# the link libmq.so for -lmq, lib/libmq.a; include/mq.h; lib/pkgconfig/mq.pc
# (pkg-config --cflags --libs mq); the systemd units in lib/systemd/system
# (their /usr/local rewritten to PREFIX) and the mq user in lib/sysusers.d;
# example configurations in share/mq/examples. Nothing under /etc: the
# README's set-up copies the examples there. PROFILE=debug installs the debug
# build; NO_BUILD=1 installs what BUILT (target/$(PROFILE)) holds without
# running cargo (the install test does: a test never runs cargo itself).
PREFIX ?= /usr/local
DESTDIR ?=
PROFILE ?= release
BINDIR ?= $(PREFIX)/bin
LIBDIR ?= $(PREFIX)/lib
INCLUDEDIR ?= $(PREFIX)/include
UNITDIR ?= $(PREFIX)/lib/systemd/system
SYSUSERSDIR ?= $(PREFIX)/lib/sysusers.d
EXAMPLESDIR ?= $(PREFIX)/share/mq/examples
VERSION := $(shell sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -n 1)
# The soname (ffi/capi/build.rs) is the ABI version; the file behind it
# carries minor and patch levels of that ABI.
SONAME := libmq.so.1
LIBMQ_FILE := $(SONAME).0.0
BUILT ?= target/$(PROFILE)
CARGO_PROFILE := $(if $(filter release,$(PROFILE)),--release,--profile $(PROFILE))

install-build:
	cargo build $(if $(filter debug,$(PROFILE)),,$(CARGO_PROFILE)) -p mq-capi -p mq-daemon -p mqctl

install: $(if $(filter 1,$(NO_BUILD)),,install-build)
	install -d $(DESTDIR)$(BINDIR) $(DESTDIR)$(LIBDIR)/pkgconfig $(DESTDIR)$(INCLUDEDIR) \
		$(DESTDIR)$(UNITDIR) $(DESTDIR)$(SYSUSERSDIR) $(DESTDIR)$(EXAMPLESDIR)
	install -m 0755 $(BUILT)/mqd $(BUILT)/mqctl $(DESTDIR)$(BINDIR)/
	install -m 0755 $(BUILT)/libmq.so $(DESTDIR)$(LIBDIR)/$(LIBMQ_FILE)
	ln -sfn $(LIBMQ_FILE) $(DESTDIR)$(LIBDIR)/$(SONAME)
	ln -sfn $(SONAME) $(DESTDIR)$(LIBDIR)/libmq.so
	install -m 0644 $(BUILT)/libmq.a $(DESTDIR)$(LIBDIR)/libmq.a
	install -m 0644 include/mq.h $(DESTDIR)$(INCLUDEDIR)/mq.h
	sed -e 's|@PREFIX@|$(PREFIX)|' -e 's|@LIBDIR@|$(LIBDIR)|' \
		-e 's|@INCLUDEDIR@|$(INCLUDEDIR)|' -e 's|@VERSION@|$(VERSION)|' \
		mq.pc.in > $(DESTDIR)$(LIBDIR)/pkgconfig/mq.pc
	for unit in systemd/*.service; do \
		sed 's|/usr/local/bin/mqd|$(BINDIR)/mqd|g' $$unit > $(DESTDIR)$(UNITDIR)/$${unit#systemd/}; \
		chmod 0644 $(DESTDIR)$(UNITDIR)/$${unit#systemd/}; \
	done
	install -m 0644 systemd/mq.sysusers $(DESTDIR)$(SYSUSERSDIR)/mq.conf
	install -m 0644 systemd/examples/*.conf $(DESTDIR)$(EXAMPLESDIR)/

# Removes what `make install` put there (same PREFIX and DESTDIR); the store
# and /etc/mq are the operator's and stay.
uninstall:
	rm -f $(DESTDIR)$(BINDIR)/mqd $(DESTDIR)$(BINDIR)/mqctl \
		$(DESTDIR)$(LIBDIR)/$(LIBMQ_FILE) $(DESTDIR)$(LIBDIR)/$(SONAME) \
		$(DESTDIR)$(LIBDIR)/libmq.so $(DESTDIR)$(LIBDIR)/libmq.a \
		$(DESTDIR)$(INCLUDEDIR)/mq.h $(DESTDIR)$(LIBDIR)/pkgconfig/mq.pc \
		$(DESTDIR)$(UNITDIR)/mq-namesrv.service $(DESTDIR)$(UNITDIR)/mq-broker@.service \
		$(DESTDIR)$(SYSUSERSDIR)/mq.conf
	rm -f $(addprefix $(DESTDIR)$(EXAMPLESDIR)/,$(notdir $(wildcard systemd/examples/*.conf)))
	-rmdir $(DESTDIR)$(EXAMPLESDIR) $(DESTDIR)$(PREFIX)/share/mq 2>/dev/null
