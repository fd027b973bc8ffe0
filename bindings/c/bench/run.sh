#!/usr/bin/env bash
# bench/run.sh: synchronous sends from C (bench/send_bench.c, THREADS
# pthreads) against `mqctl bench produce` (THREADS tasks), alternating,
# ROUNDS rounds of SECONDS each, against one release `mqd standalone` on
# free loopback ports in a temporary directory. `make bench` runs it:
#
#   RELEASEDIR=../../target/release BUILD=build bench/run.sh
#
# Each line gives throughput and, per message, this side's CPU time and
# context switches; with perf(1) usable (perf_event_paranoid <= 2), also
# futex calls per message (perf stat -e syscalls:sys_enter_futex over the
# whole run of the program, warm-up included; that is a few percent of it).
# The machine's load average is printed first and last: other work on it
# skews every figure.

set -uo pipefail
: "${RELEASEDIR:?RELEASEDIR must name the release build directory}"
: "${BUILD:?BUILD must name the directory with send_bench}"
ROUNDS=${ROUNDS:-3}
SECONDS_PER_ROUND=${SECONDS_PER_ROUND:-10}
THREADS=${THREADS:-16}
SIZE=${SIZE:-1024}
work=$(mktemp -d "${TMPDIR:-/tmp}/mq-c-bench.XXXXXX") || exit 1
mqd_pid=
cleanup() {
    if [ -n "$mqd_pid" ]; then
        kill -TERM "$mqd_pid" 2>/dev/null
        wait "$mqd_pid" 2>/dev/null
    fi
    rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

listening() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
ns=$((20000 + RANDOM % 6000))
bp=$((ns + 6000))
"$RELEASEDIR/mqd" standalone --data "$work/data" --namesrv-listen "127.0.0.1:$ns" \
    --listen-port "$bp" >"$work/mqd.log" 2>&1 &
mqd_pid=$!
for port in "$ns" "$bp"; do
    for _ in $(seq 300); do listening "$port" && break; sleep 0.1; done
done
for _ in $(seq 300); do grep -q "new broker registered" "$work/mqd.log" && break; sleep 0.1; done
namesrv="127.0.0.1:$ns"

perf_ok=
if command -v perf >/dev/null && perf stat -e syscalls:sys_enter_futex true >/dev/null 2>&1; then
    perf_ok=1
fi

# futex PERF_OUT MESSAGES: futex calls per message from a perf stat file.
futex() {
    [ -n "$perf_ok" ] || return 0
    awk -F, -v n="$2" '$3 == "syscalls:sys_enter_futex" && n > 0 { printf " futex_per_msg=%.2f", $1 / n }' "$1"
}
measure() { # OUT CMD...: runs CMD under perf stat when it can
    local out=$1
    shift
    if [ -n "$perf_ok" ]; then
        perf stat -x, -e task-clock,context-switches,syscalls:sys_enter_futex,syscalls:sys_enter_sendto \
            -o "$out" "$@"
    else
        "$@"
    fi
}

echo "# load: $(uptime)"
echo "# mqd standalone on $namesrv; $THREADS senders, $SIZE-byte bodies, ${SECONDS_PER_ROUND} s rounds"
# Warm-up: the topic, connections, page cache.
"$RELEASEDIR/mqctl" -n "$namesrv" bench produce --threads "$THREADS" --size "$SIZE" --duration 2 >/dev/null
for r in $(seq "$ROUNDS"); do
    line=$(measure "$work/perf.mqctl" "$RELEASEDIR/mqctl" -n "$namesrv" bench produce \
        --threads "$THREADS" --size "$SIZE" --duration "$SECONDS_PER_ROUND" | tail -n 1)
    extra=
    if [ -n "$perf_ok" ]; then
        # mqctl's messages: its sends (one sendto each, and a few more).
        extra=$(awk -F, '
            $3 == "task-clock" { cpu = $1 } $3 == "context-switches" { cs = $1 }
            $3 == "syscalls:sys_enter_futex" { fx = $1 } $3 == "syscalls:sys_enter_sendto" { n = $1 }
            END { if (n > 0) printf " cpu_us_per_msg=%.1f csw_per_msg=%.2f futex_per_msg=%.2f", cpu * 1000 / n, cs / n, fx / n }' \
            "$work/perf.mqctl")
    fi
    echo "round $r mqctl: ${line#bench produce }$extra"
    line=$(measure "$work/perf.c" "$BUILD/send_bench" -n "$namesrv" -T "$THREADS" -s "$SIZE" \
        -d "$SECONDS_PER_ROUND" -w 1 | tail -n 1)
    n=$(awk -F, '$3 == "syscalls:sys_enter_sendto" { print $1 }' "$work/perf.c" 2>/dev/null)
    echo "round $r c:     ${line#send_bench }$(futex "$work/perf.c" "${n:-0}")"
done
echo "# load: $(uptime)"
