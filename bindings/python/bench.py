#!/usr/bin/env python3
"""Speed of the Python binding against the Rust client, in one run.

Starts one release-built ``mqd standalone`` on free loopback ports, then, per
round, runs ``mqctl bench produce --size 1024 --threads 16 --mode sync`` and
this binding's equivalent (16 Python threads, each sending 1 KiB messages
with ``Producer.send`` through one producer) for the same number of
seconds, to the same topic, and prints both throughputs and their ratio.
Not a test: a figure to report.

    cargo build --release -j 2 -p mq-capi -p mq-daemon -p mqctl
    MQ_LIBRARY=target/release/libmq.so python3 bindings/python/bench.py \\
        --release-dir target/release --seconds 10

``--count-crossings`` also counts libmq calls (FFI crossings) per send.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Dict, List, Tuple

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE / "tests"))

from mqd import Mqd  # noqa: E402  (tests/mqd.py)

#: Store settings for a benchmark: segments large enough not to roll often.
BENCH_STORE = [
    ("mappedFileSizeCommitLog", str(128 * 1024 * 1024)),
    ("maxIndexNum", "400000"),
    ("maxHashSlotNum", "100000"),
]


def python_bench(namesrv: str, topic: str, seconds: float, threads: int, size: int) -> Tuple[float, int, int]:
    """(messages per second, sent, errors) for ``threads`` Python threads
    sending synchronously for ``seconds``."""
    import mq

    body = os.urandom(size)
    counts = [0] * threads
    errors = [0] * threads
    stop = threading.Event()
    start = threading.Barrier(threads + 1)

    with mq.Producer(namesrv_addr=namesrv, group="py_bench_producer") as producer:
        producer.send(topic, body)  # routes and connections before the clock

        def worker(i: int) -> None:
            send = producer.send
            n = e = 0
            start.wait()
            while not stop.is_set():
                try:
                    send(topic, body)
                    n += 1
                except mq.MqError:
                    e += 1
            counts[i], errors[i] = n, e

        pool = [threading.Thread(target=worker, args=(i,), name=f"bench-{i}") for i in range(threads)]
        for t in pool:
            t.start()
        start.wait()
        began = time.monotonic()
        time.sleep(seconds)
        stop.set()
        for t in pool:
            t.join()
        elapsed = time.monotonic() - began
    sent = sum(counts)
    return sent / elapsed, sent, sum(errors)


def mqctl_bench(mqctl: Path, namesrv: str, topic: str, seconds: float, threads: int, size: int) -> Dict[str, float]:
    cmd = [
        str(mqctl),
        "bench",
        "produce",
        "--topic",
        topic,
        "--size",
        str(size),
        "--threads",
        str(threads),
        "--mode",
        "sync",
        "--duration",
        str(seconds),
        "--format",
        "json",
    ]
    env = dict(os.environ, NAMESRV_ADDR=namesrv)
    out = subprocess.run(cmd, env=env, check=True, capture_output=True, text=True).stdout
    last = [line for line in out.splitlines() if line.strip().startswith("{")][-1]
    return json.loads(last)


class _Counting:
    """Stands in for the ctypes library and counts the calls made."""

    def __init__(self, lib: object) -> None:
        self._lib = lib
        self.calls: Dict[str, int] = {}

    def __getattr__(self, name: str) -> object:
        fn = getattr(self._lib, name)
        self.calls[name] = self.calls.get(name, 0) + 1
        return fn


def count_crossings(namesrv: str, topic: str, size: int, sends: int = 200) -> Dict[str, float]:
    """libmq calls per ``Producer.send`` (one thread, not timed)."""
    import mq
    from mq import _lib

    body = os.urandom(size)
    with mq.Producer(namesrv_addr=namesrv, group="py_bench_counting") as producer:
        producer.send(topic, body)
        counting = _Counting(_lib.lib)
        real, _lib.lib = _lib.lib, counting  # type: ignore[assignment]
        try:
            for _ in range(sends):
                producer.send(topic, body)
        finally:
            _lib.lib = real
    return {name: n / sends for name, n in sorted(counting.calls.items())}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--release-dir", type=Path, default=HERE.parents[1] / "target" / "release")
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--threads", type=int, default=16)
    parser.add_argument("--size", type=int, default=1024)
    parser.add_argument("--rounds", type=int, default=1, help="mqctl then Python, this many times")
    parser.add_argument("--count-crossings", action="store_true")
    args = parser.parse_args()

    release = args.release_dir.resolve()
    mqd_bin, mqctl, libmq = release / "mqd", release / "mqctl", release / "libmq.so"
    for f in (mqd_bin, mqctl, libmq):
        if not f.exists():
            print(f"bench: {f} not found (cargo build --release -p mq-capi -p mq-daemon -p mqctl)", file=sys.stderr)
            return 2
    os.environ.setdefault("MQ_LIBRARY", str(libmq))
    import mq

    print(f"libmq {mq.library_version} from {mq.library_path}; mqd {mqd_bin}; mqctl {mqctl}")
    print(f"load average before: {os.getloadavg()}")
    directory = Path(tempfile.mkdtemp(prefix="mq-py-bench-"))
    topic = "PyBenchTopic"
    daemon = Mqd(mqd_bin, directory, BENCH_STORE)
    results: List[Tuple[float, float]] = []
    try:
        # Create the topic once (auto-created, 4 queues) for both clients.
        with mq.Producer(namesrv_addr=daemon.namesrv, group="py_bench_setup") as p:
            p.send(topic, b"x")
        if args.count_crossings:
            per_send = count_crossings(daemon.namesrv, topic, args.size)
            total = sum(per_send.values())
            print(f"libmq calls per Producer.send: {total:g} " + json.dumps(per_send))
        for r in range(args.rounds):
            rust = mqctl_bench(mqctl, daemon.namesrv, topic, args.seconds, args.threads, args.size)
            py_tps, sent, errors = python_bench(daemon.namesrv, topic, args.seconds, args.threads, args.size)
            rust_tps = float(rust["tps"])
            results.append((rust_tps, py_tps))
            print(
                f"round {r + 1}: mqctl bench produce sync x{args.threads}: {rust_tps:,.0f} msg/s "
                f"(p50 {rust.get('p50_ms')} ms, errors {rust.get('errors')}); "
                f"python x{args.threads} threads: {py_tps:,.0f} msg/s ({sent} sent, {errors} errors); "
                f"ratio {py_tps / rust_tps:.0%}"
            )
    finally:
        daemon.stop()
        shutil.rmtree(directory, ignore_errors=True)
    rust_mean = sum(r for r, _ in results) / len(results)
    py_mean = sum(p for _, p in results) / len(results)
    print(f"load average after: {os.getloadavg()}")
    print(
        f"bench python: mqctl {rust_mean:,.0f} msg/s, python {py_mean:,.0f} msg/s, "
        f"ratio {py_mean / rust_mean:.0%} (target >= 50%)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
