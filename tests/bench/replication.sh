#!/usr/bin/env bash
# The replication benchmark (not a test): `mqctl bench produce`, 1 KiB bodies,
# 64 sends in flight, against an ASYNC_MASTER alone and against a SYNC_MASTER
# with its SLAVE, side by side in one run: the two alternate, ROUNDS times
# each, so that a change in the machine's load hits both alike.
#
#   tests/bench/replication.sh                # 3 rounds of 15 s each
#   ROUNDS=1 DURATION=5 tests/bench/replication.sh
#   MODE=sync tests/bench/replication.sh      # 64 blocking sender threads
#
# MODE (default async) is mqctl's --mode: async keeps 64 sends in flight from
# a few threads; sync runs 64 threads that each wait for their answer, and on
# two cores those threads' scheduling adds tens of milliseconds to the tail
# whatever the broker does (an ASYNC_MASTER alone shows it too).
#
# Release build; one NameServer and the three brokers as separate mqd
# processes on loopback ports, ASYNC_FLUSH, data in a temporary directory.
# Prints each run's summary line, then the SYNC/ASYNC throughput ratio of
# the medians (target: at least 0.70, with the SYNC p99 under 5 ms).
set -euo pipefail

root=$(cd "$(dirname "$0")/../.." && pwd)
rounds=${ROUNDS:-3}
mode=${MODE:-async}
duration=${DURATION:-15}
base_port=${BASE_PORT:-21000}

cargo build --release -j "${JOBS:-2}" -p mq-daemon -p mqctl --manifest-path "$root/Cargo.toml" >&2
bin=$root/target/release
dir=$(mktemp -d /tmp/mq-bench-replication.XXXXXX)
pids=()
cleanup() {
    for pid in "${pids[@]}"; do
        kill "$pid" 2>/dev/null || true
    done
    for pid in "${pids[@]}"; do
        wait "$pid" 2>/dev/null || true
    done
    rm -rf "$dir"
}
trap cleanup EXIT

ns="127.0.0.1:$base_port"
"$bin/mqd" namesrv --listen "$ns" >"$dir/namesrv.log" 2>&1 &
pids+=($!)

# broker NAME CLUSTER ROLE ID PORT
broker() {
    "$bin/mqd" broker --namesrvAddr "$ns" --brokerName "$1" --brokerClusterName "$2" \
        --brokerRole "$3" --brokerId "$4" --brokerIP1 127.0.0.1 --listenPort "$5" \
        --storePathRootDir "$dir/$1-$4" --mappedFileSizeCommitLog 268435456 \
        --maxIndexNum 4000000 --maxHashSlotNum 1000000 >"$dir/$1-$4.log" 2>&1 &
    pids+=($!)
}
broker bench-async BenchAsync ASYNC_MASTER 0 $((base_port + 11))
broker bench-sync BenchSync SYNC_MASTER 0 $((base_port + 31))
broker bench-sync BenchSync SLAVE 1 $((base_port + 51))

mqctl() { "$bin/mqctl" --namesrv "$ns" "$@"; }
ready=""
for _ in $(seq 300); do
    # All three registered and the slave linked to its master: until then
    # the SYNC_MASTER answers SLAVE_NOT_AVAILABLE without waiting for a copy.
    # (The slave learns its master's address from a registration, so it may
    # take one registration period.)
    state=$(mqctl cluster --format json 2>/dev/null || true)
    if grep -q '"linked":true' <<<"$state" && grep -q BenchAsync <<<"$state"; then
        ready=1
        break
    fi
    sleep 0.2
done
if [ -z "$ready" ]; then
    echo "replication.sh: after 60 s the brokers are not all registered and linked:" >&2
    echo "$state" >&2
    tail -n 5 "$dir"/*.log >&2
    exit 1
fi
mqctl topic create --topic AsyncBenchTopic --cluster BenchAsync --queues 8 >/dev/null
mqctl topic create --topic SyncBenchTopic --cluster BenchSync --queues 8 >/dev/null

run() {
    mqctl bench produce --topic "$1" --size 1024 --threads 64 --mode "$mode" \
        --duration "$duration" 2>/dev/null |
        grep '^bench produce'
}
for r in $(seq "$rounds"); do
    echo "round $r ASYNC_MASTER:       $(run AsyncBenchTopic | tee -a "$dir/async")"
    echo "round $r SYNC_MASTER+SLAVE:  $(run SyncBenchTopic | tee -a "$dir/sync")"
done

median() { # FIELD FILE
    sed -E "s/.*$1=([0-9.]+).*/\1/" "$2" | sort -g | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'
}
a=$(median tps "$dir/async")
s=$(median tps "$dir/sync")
echo "median tps: ASYNC_MASTER $a, SYNC_MASTER+SLAVE $s, ratio $(awk -v a="$a" -v s="$s" 'BEGIN { printf "%.2f", s / a }')"
echo "median p99_ms: ASYNC_MASTER $(median p99_ms "$dir/async"), SYNC_MASTER+SLAVE $(median p99_ms "$dir/sync")"
echo "replication after the runs: $(mqctl cluster --cluster BenchSync --format json | tr '\n' ' ')"
