"""Serializers: JSON by default (orjson), msgpack when installed, pickle only when accepted.

A serializer is chosen by name (``json``, ``msgpack``, ``pickle``) and identified on the wire by
its content type. Decoding refuses any content type that is not in ``accept_content``; pickle
is never decoded unless it is listed there.
"""

from __future__ import annotations

import base64
import datetime as dt
import decimal
import pickle
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import orjson

from .exceptions import ContentDisallowed, DecodeError, EncodeError


@dataclass(frozen=True)
class Serializer:
    name: str
    content_type: str
    dumps: Callable[[Any], bytes]
    loads: Callable[[bytes], Any]


def _json_default(obj: Any) -> Any:
    if isinstance(obj, decimal.Decimal):
        return str(obj)
    if isinstance(obj, set | frozenset):
        return list(obj)
    if isinstance(obj, bytes | bytearray):
        try:
            return bytes(obj).decode("utf-8")
        except UnicodeDecodeError:
            return {"__bytes__": base64.b64encode(obj).decode("ascii")}
    to_json = getattr(obj, "__json__", None)
    if callable(to_json):
        return to_json()
    raise TypeError(f"Object of type {type(obj).__qualname__} is not JSON serializable")


_JSON_OPTS = orjson.OPT_NON_STR_KEYS | orjson.OPT_SERIALIZE_NUMPY


def json_dumps(obj: Any) -> bytes:
    try:
        return orjson.dumps(obj, default=_json_default, option=_JSON_OPTS)
    except (TypeError, orjson.JSONEncodeError) as exc:
        raise EncodeError(f"cannot serialise with json: {exc}") from None


def json_loads(data: bytes | str) -> Any:
    return orjson.loads(data)


def _msgpack() -> Any:
    try:
        import msgpack
    except ImportError:
        raise EncodeError("the msgpack serializer needs: pip install 'celeriac[msgpack]'") from None
    return msgpack


def _msgpack_default(obj: Any) -> Any:
    if isinstance(obj, dt.datetime | dt.date | dt.time):
        return obj.isoformat()
    if isinstance(obj, uuid.UUID):
        return str(obj)
    return _json_default(obj)


def _msgpack_dumps(obj: Any) -> bytes:
    try:
        return bytes(_msgpack().packb(obj, default=_msgpack_default, use_bin_type=True))
    except TypeError as exc:
        raise EncodeError(f"cannot serialise with msgpack: {exc}") from None


def _msgpack_loads(data: bytes) -> Any:
    return _msgpack().unpackb(data, raw=False, strict_map_key=False)


def _pickle_dumps(obj: Any) -> bytes:
    try:
        return pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL)
    except Exception as exc:
        raise EncodeError(f"cannot serialise with pickle: {exc}") from None


SERIALIZERS: dict[str, Serializer] = {
    s.name: s
    for s in (
        Serializer("json", "application/json", json_dumps, json_loads),
        Serializer("msgpack", "application/x-msgpack", _msgpack_dumps, _msgpack_loads),
        Serializer("pickle", "application/x-python-serialize", _pickle_dumps, pickle.loads),
    )
}
_BY_CONTENT_TYPE = {s.content_type: s for s in SERIALIZERS.values()}


def get_serializer(name_or_type: str) -> Serializer:
    """Look a serializer up by name (``json``) or content type (``application/json``)."""
    found = SERIALIZERS.get(name_or_type) or _BY_CONTENT_TYPE.get(name_or_type)
    if found is None:
        known = ", ".join(SERIALIZERS)
        raise EncodeError(f"unknown serializer {name_or_type!r} (known: {known})")
    return found


def content_types(accept: Iterable[str]) -> frozenset[str]:
    """Turn ``accept_content`` (names or content types) into a set of content types."""
    return frozenset(get_serializer(a).content_type for a in accept)


def loads_checked(data: bytes, content_type: str, accepted: frozenset[str]) -> Any:
    """Decode ``data`` if its content type is accepted; raise otherwise."""
    if content_type not in accepted:
        raise ContentDisallowed(
            f"refusing to decode content of type {content_type!r} "
            f"(accept_content allows {sorted(accepted)})"
        )
    try:
        return _BY_CONTENT_TYPE[content_type].loads(data)
    except ContentDisallowed:
        raise
    except Exception as exc:
        raise DecodeError(f"cannot decode {content_type} content: {exc}") from None
