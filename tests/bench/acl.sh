#!/usr/bin/env bash
# The access-control benchmark (not a test): `mqctl bench produce`, 1 KiB
# bodies, 16 sync senders, against a broker with ACL off (unsigned sends) and
# one with aclEnable=true (every send signed, its signature and its topic's
# PUB permission checked by a non-admin account), side by side in one run:
# the two alternate, ROUNDS times each, so that a change in the machine's
# load hits both alike.
#
#   tests/bench/acl.sh                   # 3 rounds of 15 s each
#   ROUNDS=1 DURATION=5 tests/bench/acl.sh
#
# Release build; one NameServer and the two brokers as separate mqd
# processes on loopback ports, ASYNC_FLUSH, data in a temporary directory.
# Prints each run's summary line, then the ACL-on/ACL-off throughput ratio
# of the medians (target: at least 0.90).
set -euo pipefail

root=$(cd "$(dirname "$0")/../.." && pwd)
rounds=${ROUNDS:-3}
duration=${DURATION:-15}
base_port=${BASE_PORT:-22000}

cargo build --release -j "${JOBS:-2}" -p mq-daemon -p mqctl --manifest-path "$root/Cargo.toml" >&2
bin=$root/target/release
dir=$(mktemp -d /tmp/mq-bench-acl.XXXXXX)
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

cat >"$dir/plain_acl.yml" <<'YAML'
accounts:
  - accessKey: benchuser
    secretKey: benchsecret
    defaultTopicPerm: DENY
    defaultGroupPerm: SUB
    topicPerms:
      - AclBenchTopic=PUB|SUB
  - accessKey: benchadmin
    secretKey: adminsecret
    admin: true
YAML

ns="127.0.0.1:$base_port"
"$bin/mqd" namesrv --listen "$ns" >"$dir/namesrv.log" 2>&1 &
pids+=($!)

# broker NAME CLUSTER PORT [--key value ...]
broker() {
    local name=$1 cluster=$2 port=$3
    shift 3
    "$bin/mqd" broker --namesrvAddr "$ns" --brokerName "$name" --brokerClusterName "$cluster" \
        --brokerIP1 127.0.0.1 --listenPort "$port" --storePathRootDir "$dir/$name" \
        --mappedFileSizeCommitLog 268435456 --maxIndexNum 4000000 --maxHashSlotNum 1000000 \
        "$@" >"$dir/$name.log" 2>&1 &
    pids+=($!)
}
broker bench-open BenchOpen $((base_port + 11))
broker bench-acl BenchAcl $((base_port + 31)) --aclEnable true --plainAclFile "$dir/plain_acl.yml"

mqctl() { "$bin/mqctl" --namesrv "$ns" "$@"; }
for _ in $(seq 100); do
    if [ "$(mqctl cluster --format json 2>/dev/null | grep -c '"brokerName"')" -ge 2 ]; then
        break
    fi
    sleep 0.2
done
mqctl topic create --topic OpenBenchTopic --cluster BenchOpen --queues 8 >/dev/null
MQ_ACCESS_KEY=benchadmin MQ_SECRET_KEY=adminsecret \
    mqctl topic create --topic AclBenchTopic --cluster BenchAcl --queues 8 >/dev/null

run() { # TOPIC [mqctl global options]
    local topic=$1
    shift
    "$bin/mqctl" --namesrv "$ns" "$@" bench produce --topic "$topic" --size 1024 --threads 16 \
        --mode sync --duration "$duration" 2>/dev/null |
        grep '^bench produce'
}
for r in $(seq "$rounds"); do
    echo "round $r ACL off:          $(run OpenBenchTopic | tee -a "$dir/open")"
    echo "round $r ACL on, signed:   $(MQ_ACCESS_KEY=benchuser MQ_SECRET_KEY=benchsecret run AclBenchTopic | tee -a "$dir/acl")"
done

median() { # FIELD FILE
    sed -E "s/.*$1=([0-9.]+).*/\1/" "$2" | sort -g | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'
}
o=$(median tps "$dir/open")
a=$(median tps "$dir/acl")
echo "median tps: ACL off $o, ACL on $a, ratio $(awk -v o="$o" -v a="$a" 'BEGIN { printf "%.2f", a / o }')"
echo "median p99_ms: ACL off $(median p99_ms "$dir/open"), ACL on $(median p99_ms "$dir/acl")"
refused=$(grep -c 'ACL refused' "$dir/bench-acl.log" || true)
echo "refusals logged by the ACL broker: $refused"
