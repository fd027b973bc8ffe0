#!/usr/bin/env bash
# tests/run.sh: runs libmq's C examples and test programs against a real
# `mqd standalone` and checks what they print. `make test` runs it; by hand:
#
#   MQD=/path/to/mqd BUILD=/path/to/bindings/c/build tests/run.sh
#
# One mqd for everything: NameServer and broker on free loopback ports, data
# in a temporary directory, ready once its ports accept connections and its
# broker has registered with its NameServer (its log says so). Retries (LATER)
# come back after 1 s and transactions are checked back within a second
# (broker settings below).
#
# Then, for each pass in PASSES ("plain static valgrind asan"), the same
# steps with that pass's programs and its own topics and groups:
#   plain     build/*          linked with libmq.so
#   static    build/static/*   linked with libmq.a
#   valgrind  build/*          under valgrind (leaks: definite and indirect
#                              are errors; any invalid access is an error)
#   asan      build/asan/*     ASan + UBSan, every finding fatal, leaks too
# Steps: producer; push_consumer polling, then serving (a callback);
# pull_consumer subscribed, then assigned to the ordered messages' queue;
# transaction_producer, then a pull_consumer reading what it committed;
# close_during_poll; fork.
#
# Output: "ok - ..." or "not ok - ..." per check (a failure shows the end of
# the program's output), then a summary line in cargo's format, which the
# top-level `make test` adds into its total. Exit status 1 if any failed.
# KEEP=1 keeps the temporary directory (mqd's log, every program's output).

set -uo pipefail
export LC_ALL=C # one sort order for the body lists compared

: "${MQD:?MQD must name the mqd binary}"
: "${BUILD:?BUILD must name the bindings/c build directory}"
VALGRIND=${VALGRIND:-valgrind}
PASSES=${PASSES:-plain static valgrind asan}
COUNT=${COUNT:-3} # messages per kind of send: 4*COUNT+2 in all
here=$(cd "$(dirname "$0")" && pwd)

passed=0
failed=0
started=$SECONDS
work=$(mktemp -d "${TMPDIR:-/tmp}/mq-c-test.XXXXXX") || exit 1
mqd_pid=

cleanup() {
    if [ -n "$mqd_pid" ]; then
        kill -TERM "$mqd_pid" 2>/dev/null
        for _ in $(seq 100); do kill -0 "$mqd_pid" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$mqd_pid" 2>/dev/null
        wait "$mqd_pid" 2>/dev/null
    fi
    if [ -n "${KEEP:-}" ]; then echo "kept $work"; else rm -rf "$work"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

ok() { passed=$((passed + 1)); echo "ok - $1"; }
declare -A shown # output files shown already
not_ok() {
    failed=$((failed + 1))
    echo "not ok - $1"
    local f
    for f in "${@:2}"; do
        [ -s "$f" ] && [ -z "${shown[$f]:-}" ] || continue
        shown[$f]=1
        echo "    --- ${f#"$work"/} (last 40 lines)"
        tail -n 40 "$f" | sed 's/^/    /'
    done
    return 0
}
# check NAME CONDITION-COMMAND... : one check, its output files in $files.
files=()
check() {
    local name=$1
    shift
    if "$@"; then ok "$name"; else not_ok "$name" "${files[@]}"; fi
}

# passed OUT LINE: the program exited 0 and its last line is LINE.
passed() { [ $rc -eq 0 ] && [ "$(tail -n 1 "$1")" = "$2" ]; }

# ---- mqd ----------------------------------------------------------------

# Whether something accepts connections on a loopback port.
listening() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# A port below the ephemeral range (checked with `listening` before use).
random_port() { echo $((20000 + RANDOM % 12000)); }

start_mqd() {
    local attempt levels
    levels=$(printf '1s %.0s' $(seq 18))
    for attempt in 1 2 3 4 5; do
        ns=$(random_port)
        bp=$(random_port)
        if [ "$ns" -ge $((bp - 2)) ] && [ "$ns" -le $((bp + 1)) ]; then continue; fi
        if listening "$ns" || listening "$bp" || listening $((bp - 2)) || listening $((bp + 1)); then continue; fi
        rm -rf "$work/data"
        RUST_LOG=info "$MQD" standalone --data "$work/data" \
            --namesrv-listen "127.0.0.1:$ns" --listen-port "$bp" \
            --messageDelayLevel "${levels% }" \
            --transactionCheckInterval 300 --transactionTimeOut 500 \
            --mappedFileSizeCommitLog 67108864 --maxIndexNum 100000 --maxHashSlotNum 10000 \
            >"$work/mqd.log" 2>&1 &
        mqd_pid=$!
        # Ready: the three ports accept, then the broker has registered.
        local deadline=$((SECONDS + 30)) port
        for port in "$ns" "$bp" $((bp - 2)); do
            while ! listening "$port"; do
                if ! kill -0 "$mqd_pid" 2>/dev/null; then break 2; fi
                [ $SECONDS -lt $deadline ] || break 2
                sleep 0.05
            done
        done
        while kill -0 "$mqd_pid" 2>/dev/null && [ $SECONDS -lt $deadline ]; do
            if grep -q "new broker registered: 127.0.0.1:$bp " "$work/mqd.log"; then
                NAMESRV="127.0.0.1:$ns"
                echo "# mqd standalone (pid $mqd_pid): NameServer $NAMESRV, broker 127.0.0.1:$bp, data in $work"
                return 0
            fi
            sleep 0.05
        done
        kill -KILL "$mqd_pid" 2>/dev/null
        wait "$mqd_pid" 2>/dev/null
        mqd_pid=
        # Ports taken between the probe and the bind: try others.
        grep -q "Address already in use" "$work/mqd.log" && continue
        break
    done
    echo "not ok - mqd standalone did not become ready"
    sed 's/^/    /' "$work/mqd.log" | tail -n 40
    exit 1
}

# ---- running the programs -------------------------------------------------

# run PASS NAME PROGRAM ARGS... : runs one program of the pass, its stdout in
# $work/PASS/NAME.out and its stderr (and valgrind's report) in .err; sets
# rc and files.
run() {
    local pass=$1 name=$2 prog=$3 limit=120
    shift 3
    local out="$work/$pass/$name.out" err="$work/$pass/$name.err"
    mkdir -p "$work/$pass"
    files=("$out" "$err")
    local -a cmd
    case $pass in
    plain) cmd=("$BUILD/$prog") ;;
    static) cmd=("$BUILD/static/$prog") ;;
    asan) cmd=("$BUILD/asan/$prog") ;;
    valgrind)
        limit=600
        cmd=("$VALGRIND" --leak-check=full --errors-for-leak-kinds=definite,indirect
            --error-exitcode=1 --num-callers=40 --suppressions="$here/../valgrind.supp"
            "$BUILD/$prog")
        ;;
    esac
    timeout -k 10 "$limit" "${cmd[@]}" -n "$NAMESRV" "$@" >"$out" 2>"$err"
    rc=$?
    if [ $rc -eq 124 ] || [ $rc -eq 137 ]; then echo "timed out after ${limit}s" >>"$err"; fi
}

# The escaped bodies (body=... fields) of lines starting with $1, sorted,
# each once.
bodies() { awk -v kind="$1" '$1 == kind { for (i = 2; i <= NF; i++) if ($i ~ /^body=/) { print substr($i, 6); break } }' "$2" | sort -u; }
field() { awk -v k="$1=" '{ for (i = 1; i <= NF; i++) if (index($i, k) == 1) print substr($i, length(k) + 1) }'; }

# The NUL body as the programs print it (bytes outside printable ASCII as
# \xNN): b i n NUL a r y NUL 0xff LF z, 11 bytes.
NUL_BODY='bin\x00ary\x00\xff\x0az'

suite() {
    local pass=$1 tag=${1^} wait=60
    [ "$pass" = valgrind ] && wait=300
    local topic="C${tag}Topic" txn_topic="C${tag}Txn" sent="$work/$pass/producer.out"
    local serve_flag=
    # The producer handles async reports with poll, with an eventfd and
    # poll(2), or with mq_producer_serve's callback, depending on the pass.
    case $pass in static | asan) serve_flag=-s ;; valgrind) serve_flag=-e ;; esac
    echo "# pass $pass"

    # -- producer: every kind of send -----------------------------------
    run "$pass" producer producer -t "$topic" -g "c_${pass}_producer" -c "$COUNT" $serve_flag
    local want=$((4 * COUNT + 2))
    check "$pass: producer exits 0" [ $rc -eq 0 ]
    check "$pass: producer prints $want sent lines" \
        [ "$(grep -c '^sent ' "$sent")" -eq $want -a "$(tail -n 1 "$sent")" = "producer: sent $want messages" ]
    check "$pass: producer sent the NUL body, 11 bytes" \
        grep -qF "sent kind=binary body=$NUL_BODY len=11 status=SEND_OK" "$sent"
    check "$pass: async reports came back (${serve_flag:-poll})" \
        [ "$(grep -c '^sent kind=async .* status=SEND_OK' "$sent")" -eq "$COUNT" ]
    bodies sent "$sent" >"$work/$pass/sent.bodies"
    local n_bodies
    n_bodies=$(wc -l <"$work/$pass/sent.bodies")

    # -- push consumer: poll, then serve --------------------------------
    local mode out
    for mode in poll serve; do
        local flag=
        [ $mode = serve ] && flag=-s
        run "$pass" "push_$mode" push_consumer -t "$topic" -g "c_${pass}_push_$mode" -e "$n_bodies" -w $wait $flag
        out="$work/$pass/push_$mode.out"
        check "$pass: push_consumer ($mode) exits 0" [ $rc -eq 0 ]
        check "$pass: push_consumer ($mode) received every message sent" \
            cmp -s "$work/$pass/sent.bodies" <(bodies received "$out")
        check "$pass: push_consumer ($mode) received the NUL body whole" \
            grep -qF "received body=$NUL_BODY len=11 " "$out"
        # Every message answered LATER came back with reconsume_times 1.
        local later missing=0 b
        later=$(bodies later "$out")
        while read -r b; do
            [ -n "$b" ] || continue
            B=$b awk '$1 == "received" && $2 == "body=" ENVIRON["B"] && $4 == "reconsume_times=1" { found = 1 } END { exit !found }' "$out" || missing=1
        done <<<"$later"
        check "$pass: push_consumer ($mode) saw its LATER batch again with reconsume_times=1" \
            [ -n "$later" -a $missing -eq 0 ]
    done

    # -- pull consumer: subscribe, seek, seek to timestamp, commit ------
    run "$pass" pull_subscribe pull_consumer -t "$topic" -g "c_${pass}_pull" -e "$n_bodies" -w $wait
    out="$work/$pass/pull_subscribe.out"
    check "$pass: pull_consumer (subscribe) exits 0" [ $rc -eq 0 ]
    check "$pass: pull_consumer (subscribe) pulled every message sent" \
        cmp -s "$work/$pass/sent.bodies" <(bodies pulled "$out")
    check "$pass: pull_consumer pulled the NUL body whole" grep -qF "pulled body=$NUL_BODY len=11 " "$out"
    local first
    first=$(grep '^seek ' "$out" | field body)
    check "$pass: pull_consumer read the first message again after seek and after seek_to_timestamp" \
        [ -n "$first" -a "$(B=$first awk '$1 == "again" && $2 == "body=" ENVIRON["B"]' "$out" | wc -l)" -ge 2 ]
    check "$pass: pull_consumer committed past it" grep -q '^committed queue=.* offset=[1-9]' "$out"

    # -- pull consumer: assigned the ordered messages' queue -------------
    local queue n_queue
    queue=$(grep '^sent kind=ordered ' "$sent" | field queue | sort -u)
    check "$pass: the ordered sends went to one queue" [ "$(echo "$queue" | wc -l)" -eq 1 -a -n "$queue" ]
    n_queue=$(grep -c " queue=$queue " "$sent")
    run "$pass" pull_assign pull_consumer -t "$topic" -g "c_${pass}_pull_assign" -e "$n_queue" -w $wait -a "$queue"
    out="$work/$pass/pull_assign.out"
    check "$pass: pull_consumer (assign $queue) exits 0" [ $rc -eq 0 ]
    check "$pass: pull_consumer (assign) listed the topic's queues, $queue among them" \
        grep -q "^queue $queue topic=$topic\$" "$out"
    check "$pass: pull_consumer (assign) read the ordered messages in order" \
        [ "$(awk '$1 == "pulled"' "$out" | field body | grep '^ordered-' | tr '\n' ' ')" = \
          "$(seq -f 'ordered-%g' 0 $((COUNT - 1)) | tr '\n' ' ')" ]

    # -- transactions -----------------------------------------------------
    run "$pass" transaction_producer transaction_producer -t "$txn_topic" -g "c_${pass}_txn" -w $wait
    out="$work/$pass/transaction_producer.out"
    check "$pass: transaction_producer exits 0" [ $rc -eq 0 ]
    check "$pass: transaction_producer answered the check-back with COMMIT" \
        grep -q '^check keys=order-2 body=txn-order-2 answer=COMMIT$' "$out"
    check "$pass: transaction_producer committed 2 and rolled back 1" \
        grep -q '^transaction_producer: committed 2, rolled back 1$' "$out"
    run "$pass" pull_txn pull_consumer -t "$txn_topic" -g "c_${pass}_txn_reader" -e 2 -w $wait
    out="$work/$pass/pull_txn.out"
    check "$pass: the committed transactions (and not the rolled-back one) reach consumers" \
        [ $rc -eq 0 -a "$(bodies pulled "$out" | tr '\n' ' ')" = "txn-order-1 txn-order-2 " ]

    # -- close during poll, fork -----------------------------------------
    run "$pass" close_during_poll close_during_poll -t "C${tag}Idle"
    check "$pass: close ends polls blocked on other threads (close_during_poll)" \
        passed "$work/$pass/close_during_poll.out" 'close_during_poll: passed'
    run "$pass" fork fork -t "C${tag}Fork"
    check "$pass: a forked child gets MQ_ERR_FORKED and never hangs (fork)" \
        passed "$work/$pass/fork.out" 'fork: passed'
}

# ---- main -------------------------------------------------------------------

for p in $PASSES; do
    case $p in plain | static | valgrind | asan) ;; *) echo "unknown pass '$p'" >&2; exit 2 ;; esac
done
start_mqd

# ASan and UBSan: every finding fatal (exit 1), leaks included.
export ASAN_OPTIONS=halt_on_error=1:abort_on_error=0:exitcode=1:detect_leaks=1:detect_stack_use_after_return=1:strict_string_checks=1
export UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1
export LSAN_OPTIONS=exitcode=1

for p in $PASSES; do
    suite "$p"
done

took=$((SECONDS - started))
echo "bindings/c: $passed passed, $failed failed in ${took}s ($PASSES)"
# The same in cargo's format, which the top-level make test adds up.
echo "test result: $([ $failed -eq 0 ] && echo ok || echo FAILED). $passed passed; $failed failed; 0 ignored; 0 measured; 0 filtered out; finished in ${took}s (bindings/c)"
[ $failed -eq 0 ]
