# The one test command (README): the lint gates, then every test of the workspace,
# then one closing line that adds up every test binary's results.
SHELL := bash
.SHELLFLAGS := -eo pipefail -c
.PHONY: test lint bench bench-ha

test: lint
	mkdir -p target
	cargo test --workspace --all-targets 2>&1 | tee target/test-output.log
	awk '/^test result:/ { passed += $$4; failed += $$6 } END { printf "tests: %d passed, %d failed\n", passed, failed }' target/test-output.log

lint:
	cargo fmt --all -- --check
	cargo clippy --workspace --all-targets -- -D warnings

bench:
	cargo run --release -p mq-daemon --example store_bench

# ASYNC_MASTER alone vs SYNC_MASTER + SLAVE, mqctl bench produce (README, Performance).
bench-ha:
	tests/bench/replication.sh
