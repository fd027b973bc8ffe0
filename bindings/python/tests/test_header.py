"""The binding cannot drift from include/mq.h: every function the header
declares is bound with the same arity and compatible ctypes types, the
message and send-result views have the header's fields in the header's
order, the constants
the binding mirrors have the header's values, and every status in libmq's
table has its exception class."""

from __future__ import annotations

import ctypes
import re
from pathlib import Path
from typing import Dict, List, Tuple

import pytest

import mq
from mq import _lib, errors
from mq.message import ConsumeStatus, SendStatus, TxnState

HEADER = Path(__file__).resolve().parents[3] / "include" / "mq.h"


def _source() -> str:
    text = HEADER.read_text()
    text = re.sub(r"/\*.*?\*/", "", text, flags=re.S)
    text = re.sub(r"//[^\n]*", "", text)
    return "\n".join(line for line in text.splitlines() if not line.lstrip().startswith("#"))


def declared_functions() -> Dict[str, Tuple[str, List[str]]]:
    """name -> (return type, parameter types), from the header."""
    found: Dict[str, Tuple[str, List[str]]] = {}
    for ret, name, params in re.findall(
        r"([A-Za-z_][\w\s\*]*?)\b(mq_\w+)\s*\(([^;{()]*)\)\s*;", _source()
    ):
        ret = " ".join(ret.split())
        params = " ".join(params.split())
        types = []
        if params and params != "void":
            for p in params.split(","):
                p = p.strip()
                # drop the parameter name: the last identifier
                m = re.match(r"^(.*?)(\w+)$", p)
                assert m, p
                types.append(" ".join(m.group(1).split()))
        found[name] = (ret, types)
    return found


def defines() -> Dict[str, int]:
    return {
        name: int(value)
        for name, value in re.findall(r"#define\s+(MQ_\w+)\s+(-?\d+)\b", HEADER.read_text())
    }


SCALARS = {
    "int32_t": ctypes.c_int32,
    "mq_status_t": ctypes.c_int32,
    "uint32_t": ctypes.c_uint32,
    "uint64_t": ctypes.c_uint64,
    "int64_t": ctypes.c_int64,
    "size_t": ctypes.c_size_t,
}


def compatible(ctype: str, bound: object, is_return: bool) -> bool:
    """Whether a bound ctypes type fits a C type of the header."""
    ctype = ctype.replace(" *", "*").replace("* ", "*").strip()
    if ctype == "void":
        return bound is None
    if ctype == "mq_report_handler_t":
        return bound is _lib.REPORT_HANDLER
    if ctype == "mq_batch_handler_t":
        return bound is _lib.BATCH_HANDLER
    if "*" not in ctype:
        base = ctype.replace("const ", "")
        return bound is SCALARS[base]
    stars = ctype.count("*")
    base = ctype.replace("const", "").replace("*", "").strip()
    if stars == 1 and base == "char":
        return bound is ctypes.c_char_p
    if stars == 1 and base in SCALARS:
        if is_return:
            return bound is ctypes.c_void_p
        return bound is ctypes.c_void_p or bound is ctypes.POINTER(SCALARS[base]) or (
            base == "uint8_t"
        )
    if stars == 1 and base == "uint8_t":
        return bound in (ctypes.c_void_p, ctypes.c_char_p)
    if stars == 1 and base == "mq_message_view_t":
        return bound is ctypes.POINTER(_lib.MessageView)
    if stars == 1 and base == "mq_send_result_view_t":
        return bound is ctypes.POINTER(_lib.SendResultView)
    if stars == 1:  # an opaque handle
        return bound is ctypes.c_void_p
    if stars == 2 and base == "char":
        return bound is ctypes.POINTER(ctypes.c_char_p)
    if stars == 2:  # T **out, const T *const *
        return bound is ctypes.POINTER(ctypes.c_void_p)
    return False


def test_every_function_of_the_header_is_bound_with_its_signature() -> None:
    declared = declared_functions()
    assert len(declared) >= 85, f"the header parser found only {len(declared)} functions"
    assert set(declared) == set(_lib.SIGNATURES), (
        f"not bound: {sorted(set(declared) - set(_lib.SIGNATURES))}; "
        f"bound but not declared: {sorted(set(_lib.SIGNATURES) - set(declared))}"
    )
    problems = []
    for name, (ret, params) in sorted(declared.items()):
        fn = getattr(_lib.lib, name)
        if fn.argtypes is None or len(fn.argtypes) != len(params):
            problems.append(f"{name}: {len(params)} parameters in mq.h, argtypes {fn.argtypes}")
            continue
        if not compatible(ret, fn.restype, True):
            problems.append(f"{name}: returns {ret}, restype {fn.restype}")
        for i, (ctype, bound) in enumerate(zip(params, fn.argtypes)):
            if not compatible(ctype, bound, False):
                problems.append(f"{name}: parameter {i} is {ctype}, bound as {bound}")
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize(
    "c_name, structure",
    [("mq_message_view_t", _lib.MessageView), ("mq_send_result_view_t", _lib.SendResultView)],
)
def test_the_views_match_the_header(c_name: str, structure: type) -> None:
    body = re.search(r"typedef struct \{([^{}]*)\} " + c_name + ";", _source())
    assert body, f"{c_name} not found in mq.h"
    fields = re.findall(r"([\w\s\*]+?)\s*\b(\w+)\s*;", body.group(1))
    header = [(" ".join(t.split()), n) for t, n in fields]
    bound = [(n, t) for n, t in structure._fields_]  # type: ignore[attr-defined]
    # The binding may know fewer fields than a newer header (appended
    # only), never other ones.
    assert [n for _, n in header][: len(bound)] == [n for n, _ in bound]
    assert len(bound) == len(header), f"mq.h has {c_name} fields the binding does not read"
    for (ctype, name), (_, btype) in zip(header, bound):
        ctype = ctype.replace(" *", "*")
        if "*" in ctype:
            assert btype in (ctypes.c_char_p, ctypes.c_void_p), name
        else:
            assert btype is SCALARS[ctype], name


def test_constants_match_the_header() -> None:
    d = defines()
    assert d["MQ_VERSION_MAJOR"] == _lib.EXPECTED_MAJOR
    for enum_type, prefix in ((SendStatus, "MQ_SEND_"), (TxnState, "MQ_TXN_"), (ConsumeStatus, "MQ_CONSUME_")):
        in_header = {k[len(prefix):]: v for k, v in d.items() if k.startswith(prefix)}
        assert in_header == {m.name: m.value for m in enum_type}, prefix
    for name in ("MQ_OK", "MQ_ERR_TIMEOUT", "MQ_ERR_CLOSED", "MQ_ERR_QUEUE_FULL", "MQ_ERR_FORKED"):
        assert getattr(_lib, name) == d[name], name


def test_every_status_has_its_exception_class() -> None:
    statuses = {k: v for k, v in defines().items() if k.startswith("MQ_ERR_")}
    assert statuses
    for name, code in statuses.items():
        cls = errors.by_name[name]
        assert cls.status_code == code
        assert errors.by_code[code] is cls
        assert issubclass(cls, mq.MqError)
        assert cls.__name__ == errors.class_name(name)
        err = errors.from_status(code, "detail")
        assert (err.code, err.name, err.message) == (code, name, "detail")
    assert mq.MqForkedError.status_code == statuses["MQ_ERR_FORKED"]
    # A code the table does not know still raises an MqError.
    unknown = errors.from_status(12345, "x")
    assert type(unknown) is mq.MqError and unknown.code == 12345


def test_the_library_version_is_checked() -> None:
    assert _lib.lib.mq_version() >> 16 == _lib.EXPECTED_MAJOR
    assert mq.library_version == _lib.lib.mq_version_str().decode()


def test_last_error_copy_and_config_errors() -> None:
    with pytest.raises(mq.MqConfigError) as info:
        mq.Producer(namesrv_addr="127.0.0.1:1", group="g", no_such_key="1")
    assert "no_such_key" in info.value.message
    assert info.value.name == "MQ_ERR_CONFIG"
    buf = ctypes.create_string_buffer(256)
    n = _lib.lib.mq_last_error_copy(buf, len(buf))
    assert n > 0 and b"no_such_key" in buf.value


def test_a_missing_or_wrong_library_fails_clearly(tmp_path: Path) -> None:
    import subprocess
    import sys

    env = {k: v for k, v in __import__("os").environ.items() if k != "PYTHONPATH"}
    env["MQ_LIBRARY"] = str(tmp_path / "libmq.so")
    proc = subprocess.run([sys.executable, "-c", "import mq"], env=env, capture_output=True, text=True)
    assert proc.returncode != 0
    assert "MqLibraryError" in proc.stderr and "no such file" in proc.stderr

    class Old:
        def mq_version(self) -> int:
            return 7 << 16

        def mq_version_str(self) -> bytes:
            return b"7.0.0"

    with pytest.raises(_lib.MqLibraryError, match="major 7"):
        _lib._check_version(Old(), "/somewhere/libmq.so")  # type: ignore[arg-type]
