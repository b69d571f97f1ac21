"""Body compression as kombu names it in ``headers.compression``."""

from __future__ import annotations

import bz2
import importlib
import lzma
import zlib
from collections.abc import Callable

from skqueue.errors import ProtocolError

_ALIASES = {
    "gzip": "application/x-gzip",
    "zlib": "application/x-gzip",
    "bzip2": "application/x-bz2",
    "bzip": "application/x-bz2",
    "lzma": "application/x-lzma",
    "xz": "application/x-lzma",
    "brotli": "application/x-brotli",
    "zstd": "application/zstd",
    "zstandard": "application/zstd",
}

_BUILTIN: dict[str, tuple[Callable[[bytes], bytes], Callable[[bytes], bytes]]] = {
    "application/x-gzip": (zlib.compress, zlib.decompress),
    "application/x-bz2": (bz2.compress, bz2.decompress),
    "application/x-lzma": (lzma.compress, lzma.decompress),
}

# Optional codecs: (module to import, attribute holding the module object or None for the module itself).
_OPTIONAL = {"application/x-brotli": "brotli", "application/zstd": "zstandard"}


def _codec(name: str) -> tuple[Callable[[bytes], bytes], Callable[[bytes], bytes]]:
    mime = _ALIASES.get(name, name)
    if mime in _BUILTIN:
        return _BUILTIN[mime]
    module_name = _OPTIONAL.get(mime)
    if module_name is None:
        raise ProtocolError(f"unknown compression {name!r}")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ProtocolError(f"compression {name!r} needs the {module_name!r} package") from exc
    if module_name == "zstandard":
        return (
            lambda data: module.ZstdCompressor().compress(data),
            lambda data: module.ZstdDecompressor().decompressobj().decompress(data),
        )
    return module.compress, module.decompress


def decompress(data: bytes, name: str) -> bytes:
    """Undo kombu compression ``name`` (a MIME type or one of kombu's aliases)."""
    _, decode = _codec(name)
    try:
        return decode(data)
    except Exception as exc:
        raise ProtocolError(f"cannot decompress {name} body: {exc}") from exc


def compress(data: bytes, name: str) -> tuple[bytes, str]:
    """Compress ``data``; returns the bytes and the MIME type to put in ``headers.compression``."""
    encode, _ = _codec(name)
    return encode(data), _ALIASES.get(name, name)
