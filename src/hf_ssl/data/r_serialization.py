"""A reader of R's lazy-load databases and of R's XDR serialization format, in pure Python (no R needed).

Why it exists: Debian's ``r-cran-janeaustenr`` ships Jane Austen's novels (the ``austen`` corpus,
:mod:`.austen`) only in R's format, as the package's lazy-load database ``data/Rdata.rdx`` (the index) +
``data/Rdata.rdb`` (the records). What it reads: the database layout of R's ``makeLazyLoadDB`` (R_decompress1-3
records) and serialization versions 2 and 3 of the values data sets are made of (vectors, lists, pairlists,
symbols, attributes), as described in "R Internals", section "Serialization formats". Closures, environments and
ALTREP objects are out of scope and raise an error.
"""

from __future__ import annotations

import gzip
import struct
import zlib
from typing import Any

import numpy as np

from ..errors import HfSslError, first_line

__all__ = ["read_r_lazyload_db", "unserialize_r"]


def read_r_lazyload_db(prefix: str) -> dict[str, Any]:
    """All objects of an R lazy-load database (``PREFIX.rdx`` index + ``PREFIX.rdb`` records), as Python values.

    The index is an R-serialized list whose ``variables`` element maps each object's name to its (offset, length)
    in the ``.rdb`` file; it is gzip-compressed (``saveRDS``) or, like every record, a 4-byte big-endian
    uncompressed length followed by a zlib stream. Records may also carry a type byte after the length ('Z' zlib,
    '0' none; bzip2 '2' and xz 'X' are decoded with the standard library too)."""
    try:
        with open(prefix + ".rdx", "rb") as f:
            raw_index = f.read()
        with open(prefix + ".rdb", "rb") as f:
            records = f.read()
    except OSError as e:
        raise HfSslError(f"cannot read the R lazy-load database {prefix}: {e}") from None
    try:
        index_bytes = gzip.decompress(raw_index) if raw_index[:2] == b"\x1f\x8b" else _r_decompress(raw_index)
        index = unserialize_r(index_bytes)
        variables = index["variables"]
        objects = {}
        for name, (offset, length) in variables.items():
            offset, length = int(offset), int(length)
            objects[name] = unserialize_r(_r_decompress(records[offset : offset + length]))
    except (ValueError, KeyError, TypeError, IndexError, struct.error, zlib.error, EOFError, OSError) as e:
        raise HfSslError(f"{prefix}.rdx/.rdb is not a readable R lazy-load database: {first_line(e)}") from None
    return objects


def _r_decompress(record: bytes) -> bytes:
    """One lazy-load record: 4-byte big-endian length, optional type byte, compressed data (R's R_decompress1-3)."""
    (length,) = struct.unpack(">I", record[:4])
    kind = record[4:5]
    if kind == b"Z":
        data = zlib.decompress(record[5:])
    elif kind == b"0":
        data = record[5:]
    elif kind == b"2":
        import bz2

        data = bz2.decompress(record[5:])
    elif kind == b"X":
        import lzma

        data = lzma.decompress(record[5:])
    else:  # compress = TRUE (the default): no type byte
        data = zlib.decompress(record[4:])
    if len(data) != length:
        raise ValueError(f"record decompresses to {len(data)} bytes, its header says {length}")
    return data


# R's SEXP type codes (R Internals, "Serialization formats").
_NILSXP, _SYMSXP, _LISTSXP, _CHARSXP, _LGLSXP, _INTSXP, _REALSXP, _STRSXP, _VECSXP = 0, 1, 2, 9, 10, 13, 14, 16, 19
_REFSXP, _NILVALUE_SXP, _GLOBALENV_SXP, _EMPTYENV_SXP, _BASEENV_SXP, _MISSINGARG_SXP = 255, 254, 253, 242, 241, 251
_NA_INTEGER = -(2**31)


def unserialize_r(data: bytes) -> Any:
    """Decode R's XDR serialization (version 2 or 3) of the values data sets are made of: NULL, logical, integer,
    double and character vectors, lists, pairlists and symbols, with attributes. A vector with a ``names``
    attribute becomes a dict; other vectors become lists (NA as None). Anything else (closures, environments,
    ALTREP objects) raises ValueError: a data set that holds them is not one this reader is for."""
    return _RReader(data).read_file()


class _RReader:
    def __init__(self, data: bytes) -> None:
        self.data, self.pos, self.refs = data, 0, []

    def read_file(self) -> Any:
        if self.data[:2] != b"X\n":
            raise ValueError(f"not R XDR serialization (starts with {self.data[:2]!r})")
        self.pos = 2
        version = self.int()
        self.int(), self.int()  # the writer's R version and the minimal reader version
        if version == 3:
            encoding_length = self.int()
            self.pos += encoding_length  # skip the native encoding's name
        elif version != 2:
            raise ValueError(f"R serialization version {version} is not supported")
        return self.item()

    def int(self) -> int:
        (value,) = struct.unpack_from(">i", self.data, self.pos)
        self.pos += 4
        return value

    def length(self) -> int:
        n = self.int()
        if n == -1:  # long vector: two more ints
            upper, lower = self.int(), self.int()
            n = (upper << 32) + lower
        return n

    def item(self) -> Any:
        flags = self.int()
        kind, has_attr, has_tag = flags & 0xFF, bool(flags & (1 << 9)), bool(flags & (1 << 10))
        if kind in (_NILVALUE_SXP, _NILSXP, _GLOBALENV_SXP, _EMPTYENV_SXP, _BASEENV_SXP, _MISSINGARG_SXP):
            return None
        if kind == _REFSXP:
            index = flags >> 8 or self.int()
            return self.refs[index - 1]
        if kind == _SYMSXP:
            name = self.item()
            self.refs.append(name)
            return name
        if kind == _CHARSXP:
            n = self.int()
            if n == -1:
                return None  # NA_character_
            text = self.data[self.pos : self.pos + n]
            self.pos += n
            # levels bit 3 marks latin-1; UTF-8, ASCII and native strings decode as UTF-8
            return text.decode("latin-1" if (flags >> 12) & 4 else "utf-8", errors="replace")
        if kind == _LISTSXP:
            attributes = self.item() if has_attr else None
            entries = []
            while True:  # a pairlist: (tag, car) cells linked through cdr; read the cdr chain iteratively
                tag = self.item() if has_tag else None
                entries.append((tag, self.item()))
                flags = self.int()
                if flags & 0xFF in (_NILVALUE_SXP, _NILSXP):
                    break
                if flags & 0xFF != _LISTSXP:
                    raise ValueError(f"pairlist ends in an object of type {flags & 0xFF}")
                has_attr, has_tag = bool(flags & (1 << 9)), bool(flags & (1 << 10))
                if has_attr:
                    self.item()
            del attributes
            return dict(entries) if all(isinstance(t, str) for t, _ in entries) else [v for _, v in entries]
        if kind in (_LGLSXP, _INTSXP):
            n = self.length()
            values = np.frombuffer(self.data, dtype=">i4", count=n, offset=self.pos).astype(np.int64).tolist()
            self.pos += 4 * n
            values = [None if v == _NA_INTEGER else (bool(v) if kind == _LGLSXP else v) for v in values]
        elif kind == _REALSXP:
            n = self.length()
            values = np.frombuffer(self.data, dtype=">f8", count=n, offset=self.pos).astype(np.float64).tolist()
            self.pos += 8 * n
        elif kind in (_STRSXP, _VECSXP):
            values = [self.item() for _ in range(self.length())]
        else:
            raise ValueError(f"R object type {kind} is not supported by this reader")
        attributes = self.item() if has_attr else None
        names = attributes.get("names") if isinstance(attributes, dict) else None
        if isinstance(names, list) and len(names) == len(values):
            return dict(zip(names, values))
        return values
