"""The mqd the tests run against, and the libmq they load.

``MQD`` names the ``mqd`` binary (default: ``target/debug/mqd`` of the
repository) and ``MQ_LIBRARY`` the ``libmq.so`` (default:
``target/debug/libmq.so``); a missing one fails the run naming it. One
``mqd standalone`` serves the whole session: free loopback ports, a
temporary directory, small store files, transaction checks every 300 ms.
It counts as ready once the broker has registered with the NameServer (a
route for TBW102), as the Rust end-to-end helpers (tests/e2e/support/mqd.rs)
wait.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import uuid
from pathlib import Path
from typing import Iterator, Tuple

import pytest

from mqd import Mqd, MqdMissing

ROOT = Path(__file__).resolve().parents[3]
MQD = Path(os.environ.get("MQD") or ROOT / "target" / "debug" / "mqd")
LIBMQ = Path(os.environ.get("MQ_LIBRARY") or ROOT / "target" / "debug" / "libmq.so")

if not LIBMQ.exists():
    raise pytest.UsageError(
        f"libmq not found at {LIBMQ}: build it (cargo build -p mq-capi) or set MQ_LIBRARY"
    )
os.environ["MQ_LIBRARY"] = str(LIBMQ)
os.environ.pop("NAMESRV_ADDR", None)


@pytest.fixture(scope="session")
def mqd() -> Iterator[Mqd]:
    directory = Path(tempfile.mkdtemp(prefix="mq-python-"))
    try:
        daemon = Mqd(MQD, directory)
    except MqdMissing as e:
        shutil.rmtree(directory, ignore_errors=True)
        raise pytest.UsageError(str(e)) from None
    except BaseException:
        shutil.rmtree(directory, ignore_errors=True)
        raise
    try:
        yield daemon
    finally:
        daemon.stop()
        shutil.rmtree(directory, ignore_errors=True)


@pytest.fixture
def namesrv(mqd: Mqd) -> str:
    return mqd.namesrv


@pytest.fixture
def names(request: pytest.FixtureRequest) -> Tuple[str, str]:
    """A topic and a group of this test's own."""
    tag = uuid.uuid4().hex[:8]
    stem = "".join(c if c.isalnum() else "_" for c in request.node.name)[:40]
    return f"py_{stem}_{tag}", f"g_{stem}_{tag}"


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo) -> Iterator[None]:
    outcome = yield
    report = outcome.get_result()
    if report.failed and "mqd" in getattr(item, "fixturenames", ()):
        daemon = item.funcargs.get("mqd") if hasattr(item, "funcargs") else None
        if isinstance(daemon, Mqd):
            report.sections.append(("mqd log (tail)", daemon.log_tail(60)))
