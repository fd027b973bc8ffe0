"""Client configuration: string key/value pairs, as libmq takes them.

Keys are libmq's (the Rust client's field names: ``namesrv_addr``,
``group``, ``send_timeout_ms``, ``consume_from``, ``message_model``,
``orderly``, ``consume_threads``, ...) or their Java aliases
(``namesrvAddr``, ``sendMsgTimeout``...). libmq checks each key when it is
set: an unknown key or a bad value raises :class:`mq.MqConfigError` naming
it, when the client is created.
"""

from __future__ import annotations

import os
from ctypes import byref, c_void_p
from datetime import timedelta
from typing import Any, Dict, Iterator, Mapping, MutableMapping, Optional, Union

from . import _lib
from .errors import check

ConfigValue = Union[str, int, bool, timedelta]


def _text(key: str, value: ConfigValue) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, timedelta):
        return str(int(value.total_seconds() * 1000))
    if isinstance(value, (list, tuple)) and key in ("namesrv_addr", "namesrvAddr"):
        return ";".join(str(v) for v in value)
    return str(value)


class Config(MutableMapping[str, ConfigValue]):
    """Settings for a producer or consumer.

    ``Config(namesrv_addr="127.0.0.1:9876", group="g1")``, or from a mapping
    (``Config({"namesrvAddr": ...})``), or both. Values may be strings,
    ints, bools (``true``/``false``), ``timedelta`` (for ``*_ms`` keys) or,
    for ``namesrv_addr``, a list of addresses. When ``namesrv_addr`` is not
    given, the ``NAMESRV_ADDR`` environment variable is used (as RocketMQ's
    clients and ``mqctl`` do).
    """

    def __init__(self, settings: Optional[Mapping[str, ConfigValue]] = None, **options: ConfigValue) -> None:
        self._entries: Dict[str, ConfigValue] = {}
        if settings:
            self._entries.update(settings)
        self._entries.update(options)

    def __getitem__(self, key: str) -> ConfigValue:
        return self._entries[key]

    def __setitem__(self, key: str, value: ConfigValue) -> None:
        self._entries[key] = value

    def __delitem__(self, key: str) -> None:
        del self._entries[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._entries)

    def __len__(self) -> int:
        return len(self._entries)

    def __repr__(self) -> str:
        return f"Config({self._entries!r})"

    def merged(self, **options: Any) -> "Config":
        """A copy with ``options`` added (None values are left out)."""
        c = Config(self._entries)
        c._entries.update({k: v for k, v in options.items() if v is not None})
        return c

    def _native(self) -> "_NativeConfig":
        return _NativeConfig(self)


class _NativeConfig:
    """An ``mq_config_t`` for the length of a ``with`` block."""

    def __init__(self, config: Config) -> None:
        self.config = config
        self.ptr: Optional[int] = None

    def __enter__(self) -> int:
        lib = _lib.lib
        out = c_void_p()
        check(lib.mq_config_new(byref(out)))
        self.ptr = out.value
        try:
            entries = dict(self.config)
            if "namesrv_addr" not in entries and "namesrvAddr" not in entries:
                env = os.environ.get("NAMESRV_ADDR")
                if env:
                    entries["namesrv_addr"] = env
            for key, value in entries.items():
                if value is None:
                    continue
                check(lib.mq_config_set(self.ptr, key.encode(), _text(key, value).encode()))
        except BaseException:
            self.__exit__()
            raise
        return self.ptr  # type: ignore[return-value]

    def __exit__(self, *exc: Any) -> None:
        if self.ptr is not None:
            _lib.lib.mq_config_free(self.ptr)
            self.ptr = None


def make(config: Optional[Mapping[str, ConfigValue]], options: Mapping[str, Any]) -> Config:
    """The config of a client made with ``(config, **options)``."""
    c = Config(config) if config is not None else Config()
    for k, v in options.items():
        if v is not None:
            c[k] = v
    return c
