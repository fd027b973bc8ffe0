# The one test command (README): the lint gates, libmq and mqd, the pinned
# cbindgen, then every test of the workspace (cargo builds no cdylib for tests;
# the symbol and end-to-end tests of the C ABI load target/debug/libmq.so),
# then the C examples and tests, the Python package's pytest suite and the Go
# module's tests, each against a real mqd, then one closing line that adds up
# every result. A failure in one part still runs the next, and fails the whole.
SHELL := bash
.SHELLFLAGS := -eo pipefail -c
.PHONY: test lint libmq tools bench bench-ha bench-apache

test: lint libmq tools
	mkdir -p target
	status=0; \
	cargo test --workspace --all-targets 2>&1 | tee target/test-output.log || status=1; \
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
libmq:
	cargo build -p mq-capi -p mq-daemon
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
