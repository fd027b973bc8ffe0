# The one test command (README): the lint gates, libmq (cargo builds no cdylib
# for tests, and the symbol and end-to-end tests of the C ABI load
# target/debug/libmq.so), then every test of the workspace, then the C
# examples and tests against mqd (bindings/c; they print their count in
# cargo's format), then one closing line that adds up every result. A failure
# in one part still runs the next, and fails the whole.
SHELL := bash
.SHELLFLAGS := -eo pipefail -c
.PHONY: test lint libmq tools bench

test: lint libmq tools
	mkdir -p target
	status=0; \
	cargo test --workspace --all-targets 2>&1 | tee target/test-output.log || status=1; \
	$(MAKE) -C bindings/c test 2>&1 | tee -a target/test-output.log || status=1; \
	awk '/^test result:/ { passed += $$4; failed += $$6 } END { printf "tests: %d passed, %d failed\n", passed, failed }' target/test-output.log; \
	exit $$status

# target/debug/libmq.so (soname libmq.so.1) and libmq.a.
libmq:
	cargo build -p mq-capi

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
