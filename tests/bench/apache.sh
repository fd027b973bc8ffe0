#!/usr/bin/env bash
# mq against Apache RocketMQ 4.9.7, side by side in one run (a benchmark, not
# a test): a release `mqd standalone` and Apache's NameServer and broker
# (started by $APACHE/start.sh, ASYNC_FLUSH both) on this machine, driven in
# turn by the same clients, ROUNDS times each so that a change in the
# machine's load hits both alike:
#
#   1. `mqctl bench produce`, 1 KiB, THREADS sync senders, DURATION s;
#   2. the Java 4.9.7 client ($APACHE/bench/run.sh producer, same shape,
#      after WARMUP s of JIT warm-up);
#   3. once, a backlog of BACKLOG messages consumed with
#      `mqctl bench consume --from first`.
#
# Each line gives throughput, latency and the CPU time per message of the
# broker and of the client process (user + system from /proc/<pid>/stat:
# mqctl measures its run itself with --server-pid; for the Java client this
# script samples both processes over the seconds the client counts, from its
# first per-second line to its last). The end gives the medians and the
# ratios mq/Apache (targets of issue 14: produce >= 3x with either client,
# p99 under 2 ms; consume >= 2x).
#
#   tests/bench/apache.sh                       # 3 rounds of 15 s
#   ROUNDS=1 DURATION=5 WARMUP=3 BACKLOG=100000 tests/bench/apache.sh
#   SKIP_JAVA=1 tests/bench/apache.sh           # mqctl only
#
# Needs java, mvn (first use fetches Apache's jars) and cargo. APACHE is the
# folder of start.sh (default /work/shared/tools/apache-rocketmq). Ports: mq
# on BASE_PORT (NameServer) and BASE_PORT+11 (broker), default 22000; Apache
# on its defaults, 29876 and 30911.
set -euo pipefail

root=$(cd "$(dirname "$0")/../.." && pwd)
apache=${APACHE:-/work/shared/tools/apache-rocketmq}
rounds=${ROUNDS:-3}
duration=${DURATION:-15}
warmup=${WARMUP:-5}
threads=${THREADS:-16}
size=${SIZE:-1024}
backlog=${BACKLOG:-300000}
base_port=${BASE_PORT:-22000}

for tool in java mvn cargo; do
    command -v "$tool" >/dev/null || { echo "apache.sh: $tool is not installed" >&2; exit 1; }
done
[ -x "$apache/start.sh" ] || { echo "apache.sh: no $apache/start.sh (set APACHE)" >&2; exit 1; }

cargo build --release -j "${JOBS:-2}" -p mq-daemon -p mqctl --manifest-path "$root/Cargo.toml" >&2
bin=$root/target/release
dir=$(mktemp -d /tmp/mq-bench-apache.XXXXXX)
mqd_pid=""
apache_started=""
cleanup() {
    if [ -n "$mqd_pid" ]; then
        kill "$mqd_pid" 2>/dev/null || true
        wait "$mqd_pid" 2>/dev/null || true
    fi
    if [ -n "$apache_started" ]; then
        "$apache/stop.sh" >/dev/null 2>&1 || true
    fi
    rm -rf "$dir"
}
trap cleanup EXIT

mq_ns="127.0.0.1:$base_port"
"$bin/mqd" standalone --data "$dir/mq-data" --namesrv-listen "$mq_ns" \
    --listen-port $((base_port + 11)) --mappedFileSizeCommitLog 1073741824 \
    >"$dir/mqd.log" 2>&1 &
mqd_pid=$!

apache_started=1
"$apache/start.sh" "$dir/apache-data" >"$dir/apache-start.log" 2>&1 || {
    cat "$dir/apache-start.log" >&2
    exit 1
}
apache_ns=127.0.0.1:29876
apache_pid=$(cat "$apache/run/broker.pid")

mqctl() { "$bin/mqctl" "$@"; }
for _ in $(seq 100); do
    mqctl --namesrv "$mq_ns" cluster --format json 2>/dev/null | grep -q '"role"' && break
    sleep 0.2
done
for ns in "$mq_ns" "$apache_ns"; do
    mqctl --namesrv "$ns" topic create --topic BenchTopic --queues 8 >/dev/null
    mqctl --namesrv "$ns" topic create --topic BacklogTopic --queues 8 >/dev/null
done

# ticks PID: user + system clock ticks of a process so far.
ticks() { awk '{ sub(/^.*\) /, ""); print $12 + $13 }' "/proc/$1/stat"; }
hz=$(getconf CLK_TCK)

# mqctl_produce NS PID: one `mqctl bench produce` summary line.
mqctl_produce() {
    mqctl --namesrv "$1" bench produce --topic BenchTopic --size "$size" --threads "$threads" \
        --mode sync --duration "$duration" --server-pid "$2" 2>/dev/null | grep '^bench produce'
}

# java_produce NS PID: the Java client's summary line, plus the CPU per
# message of the broker and of the client over the seconds it counted.
java_produce() {
    local out=$dir/java.out
    "$apache/bench/run.sh" producer -n "$1" -t BenchTopic -w "$threads" -s "$size" \
        --duration "$duration" --warmup "$warmup" >"$out" 2>&1 &
    local run=$! java="" s0 c0 lines
    lines_seen() { grep -c '^Current Time' "$out" || true; }
    until [ "$(lines_seen)" -ge 1 ]; do
        kill -0 "$run" 2>/dev/null || { cat "$out" >&2; return 1; }
        sleep 0.02
    done
    java=$(pgrep -P "$run" -x java | head -1)
    s0=$(ticks "$2")
    c0=$(ticks "$java")
    lines=$(awk -v d="$duration" 'BEGIN { print int(d) }')
    until [ "$(lines_seen)" -ge "$lines" ]; do
        kill -0 "$run" 2>/dev/null || break
        sleep 0.02
    done
    local s1 c1
    s1=$(ticks "$2")
    c1=$(ticks "$java" 2>/dev/null || echo "$c0")
    wait "$run"
    # Messages in the sampled window: the per-second counts after the first.
    local msgs
    msgs=$(awk -v n="$lines" '/^Current Time/ { i++; if (i > 1 && i <= n) { sub(/.*Send TPS: /, ""); s += $1 } } END { print s + 0 }' "$out")
    printf '%s client_cpu_us=%s server_cpu_us=%s\n' "$(grep '^bench_producer' "$out")" \
        "$(awk -v t=$((c1 - c0)) -v m="$msgs" -v hz="$hz" 'BEGIN { printf "%.1f", m ? t / hz * 1e6 / m : 0 }')" \
        "$(awk -v t=$((s1 - s0)) -v m="$msgs" -v hz="$hz" 'BEGIN { printf "%.1f", m ? t / hz * 1e6 / m : 0 }')"
}

echo "mq: mqd pid $mqd_pid, NameServer $mq_ns; Apache RocketMQ 4.9.7: broker pid $apache_pid, NameServer $apache_ns"
echo "each: $threads sync senders of $size B for $duration s"
for r in $(seq "$rounds"); do
    echo "round $r mq     mqctl: $(mqctl_produce "$mq_ns" "$mqd_pid" | tee -a "$dir/mq-mqctl")"
    echo "round $r apache mqctl: $(mqctl_produce "$apache_ns" "$apache_pid" | tee -a "$dir/apache-mqctl")"
    if [ -z "${SKIP_JAVA:-}" ]; then
        echo "round $r mq     java:  $(java_produce "$mq_ns" "$mqd_pid" | tee -a "$dir/mq-java")"
        echo "round $r apache java:  $(java_produce "$apache_ns" "$apache_pid" | tee -a "$dir/apache-java")"
    fi
done

# A backlog of the same size on both, then read from the first message.
for side in mq apache; do
    ns=$mq_ns pid=$mqd_pid
    [ "$side" = apache ] && ns=$apache_ns pid=$apache_pid
    mqctl --namesrv "$ns" bench produce --topic BacklogTopic --size "$size" --threads 64 \
        --mode async --count "$backlog" >/dev/null 2>&1
    echo "$side consume backlog of $backlog: $(mqctl --namesrv "$ns" bench consume --topic BacklogTopic \
        --from first --count "$backlog" --server-pid "$pid" 2>/dev/null | grep '^bench consume' |
        tee -a "$dir/$side-consume")"
done

median() { # FIELD FILE
    [ -s "$2" ] || { echo 0; return; }
    grep -o "$1=[0-9.]*" "$2" | cut -d= -f2 | sort -g | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'
}
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", (b > 0 ? a / b : 0) }'; }
echo
printf '%-22s %10s %10s %8s %16s %16s\n' "median of $rounds" tps p99_ms "" server_cpu_us client_cpu_us
for run in mq-mqctl apache-mqctl mq-java apache-java mq-consume apache-consume; do
    [ -s "$dir/$run" ] || continue
    p99=p99_ms
    case $run in *java) p99=p99_rt_ms ;; esac
    printf '%-22s %10s %10s %8s %16s %16s\n' "$run" "$(median tps "$dir/$run")" \
        "$(median "$p99" "$dir/$run")" "" "$(median server_cpu_us "$dir/$run")" \
        "$(median client_cpu_us "$dir/$run")"
done
echo "throughput mq/apache: mqctl $(ratio "$(median tps "$dir/mq-mqctl")" "$(median tps "$dir/apache-mqctl")") (target 3)," \
    "java $(ratio "$(median tps "$dir/mq-java")" "$(median tps "$dir/apache-java")") (target 3)," \
    "consume $(ratio "$(median tps "$dir/mq-consume")" "$(median tps "$dir/apache-consume")") (target 2)"
