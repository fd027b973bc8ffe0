"""Signing through the binding: ``access_key`` and ``secret_key`` against a
broker with ``aclEnable=true`` (its own mqd, not the session's)."""

from __future__ import annotations

import shutil
import tempfile
import time
from pathlib import Path
from typing import Iterator, List, Tuple

import pytest

import mq
from conftest import MQD
from mqd import SMALL_STORE, Mqd

ACCOUNTS = """\
accounts:
  - accessKey: pyclient
    secretKey: pysecret1
    defaultTopicPerm: DENY
    defaultGroupPerm: SUB
    topicPerms:
      - "{topic}=PUB|SUB"
"""


@pytest.fixture
def acl_mqd(names: Tuple[str, str]) -> Iterator[Mqd]:
    topic, _ = names
    directory = Path(tempfile.mkdtemp(prefix="mq-python-acl-"))
    accounts = directory / "plain_acl.yml"
    accounts.write_text(ACCOUNTS.format(topic=topic))
    settings = SMALL_STORE + [("aclEnable", "true"), ("plainAclFile", str(accounts))]
    daemon = Mqd(MQD, directory, settings=settings)
    try:
        yield daemon
    finally:
        daemon.stop()
        shutil.rmtree(directory, ignore_errors=True)


def test_signed_clients_produce_and_consume_and_unsigned_ones_are_refused(
    acl_mqd: Mqd, names: Tuple[str, str]
) -> None:
    topic, group = names
    keys = {"access_key": "pyclient", "secret_key": "pysecret1"}
    with mq.Producer(namesrv_addr=acl_mqd.namesrv, group=group + "_p", **keys) as producer:
        sent = producer.send(topic, b"signed")
    with mq.PullConsumer(
        namesrv_addr=acl_mqd.namesrv, group=group, consume_from="first", **keys
    ) as consumer:
        consumer.subscribe(topic)
        got: List[mq.Message] = []
        deadline = time.monotonic() + 30
        while not got and time.monotonic() < deadline:
            got += consumer.poll(0.5)
    assert [(m.msg_id, m.body) for m in got] == [(sent.msg_id, b"signed")]

    with mq.Producer(namesrv_addr=acl_mqd.namesrv, group=group + "_u") as producer:
        with pytest.raises(mq.MqError) as info:
            producer.send(topic, b"unsigned")
    assert "No accessKey is configured" in info.value.message

    with pytest.raises(mq.MqConfigError):
        mq.Producer(namesrv_addr=acl_mqd.namesrv, group=group + "_h", access_key="pyclient")
