#!/usr/bin/env bash
# The access-control benchmark (not a test): `mqctl bench produce`, 1 KiB
# bodies, 16 sync senders, against a broker with ACL off (unsigned sends) and
# one with aclEnable=true (every send signed, its signature and its topic's
# PUB permission checked by a non-admin account), side by side in one run:
# the two alternate, ROUNDS times each, so that a change in the machine's
# load hits both alike.
#
#   tests/bench/acl.sh                   # 4 rounds of 200,000 messages each
#   ROUNDS=1 COUNT=50000 tests/bench/acl.sh
#
# Release build; one NameServer and the two brokers as separate mqd
# processes on loopback ports, ASYNC_FLUSH, data in a temporary directory.
# Prints each run's throughput and latency, and the CPU time per message of
# the client (mqctl) and of the broker that served it (from /proc), then the
# ACL-on/ACL-off ratio of the median throughputs (target: at least 0.90).
# On a shared machine throughput swings with the neighbours' load; CPU time
# per message does not, and shows what signing and checking cost.
set -euo pipefail

root=$(cd "$(dirname "$0")/../.." && pwd)
rounds=${ROUNDS:-4}
count=${COUNT:-200000}
base_port=${BASE_PORT:-24600}

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
# Someone else's daemon on these ports would take our brokers' registrations.
for port in "$base_port" $((base_port + 9)) $((base_port + 11)) $((base_port + 12)) \
    $((base_port + 29)) $((base_port + 31)) $((base_port + 32)); do
    if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
        echo "port $port is in use: set BASE_PORT to a free range" >&2
        exit 1
    fi
done
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
admin() { MQ_ACCESS_KEY=benchadmin MQ_SECRET_KEY=adminsecret mqctl "$@"; }
# Both brokers registered (the ACL broker answers the runtime query mqctl
# cluster makes only when it is signed).
for _ in $(seq 150); do
    if mqctl cluster --cluster BenchOpen >/dev/null 2>&1 &&
        admin cluster --cluster BenchAcl >/dev/null 2>&1; then
        break
    fi
    sleep 0.2
done
mqctl topic create --topic OpenBenchTopic --cluster BenchOpen --queues 8 >/dev/null
admin topic create --topic AclBenchTopic --cluster BenchAcl --queues 8 >/dev/null

cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat"; }
ticks_per_s=$(getconf CLK_TCK)
run() { # TOPIC BROKER_PID: one run's summary, with CPU µs per message
    local before after client
    before=$(cpu_ticks "$2")
    client=$( { TIMEFORMAT='%U %S'; time "$bin/mqctl" --namesrv "$ns" bench produce --topic "$1" \
        --size 1024 --threads 16 --mode sync --count "$count" >"$dir/out" 2>/dev/null; } 2>&1 )
    after=$(cpu_ticks "$2")
    echo "$(grep '^bench produce' "$dir/out" | sed -E 's/ mb_per_s=[0-9.]+//; s/ max_ms=.*//')" \
        "client_cpu_us=$(echo "$client" | awk -v n="$count" '{ printf "%.1f", ($1 + $2) * 1e6 / n }')" \
        "broker_cpu_us=$(awk -v t=$((after - before)) -v hz="$ticks_per_s" -v n="$count" \
            'BEGIN { printf "%.1f", t / hz * 1e6 / n }')"
}
off() { echo "round $1 ACL off:         $(run OpenBenchTopic "${pids[1]}" | tee -a "$dir/open")"; }
on() {
    echo "round $1 ACL on, signed:  $(MQ_ACCESS_KEY=benchuser MQ_SECRET_KEY=benchsecret \
        run AclBenchTopic "${pids[2]}" | tee -a "$dir/acl")"
}
# Each goes first in every other round: what runs second inherits the
# first one's page cache and CPU state.
for r in $(seq "$rounds"); do
    if [ $((r % 2)) -eq 1 ]; then
        off "$r"
        on "$r"
    else
        on "$r"
        off "$r"
    fi
done

median() { # FIELD FILE
    sed -E "s/.*$1=([0-9.]+).*/\1/" "$2" | sort -g | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'
}
o=$(median tps "$dir/open")
a=$(median tps "$dir/acl")
echo "median tps: ACL off $o, ACL on $a, ratio $(awk -v o="$o" -v a="$a" 'BEGIN { printf "%.2f", a / o }')"
echo "median p99_ms: ACL off $(median p99_ms "$dir/open"), ACL on $(median p99_ms "$dir/acl")"
echo "median CPU µs per message, client + broker: ACL off $(median client_cpu_us "$dir/open") + $(median broker_cpu_us "$dir/open"), ACL on $(median client_cpu_us "$dir/acl") + $(median broker_cpu_us "$dir/acl")"
refused=$(grep -c 'ACL refused' "$dir/bench-acl.log" || true)
echo "refusals logged by the ACL broker: $refused"
