"""``tf.train.Example`` <-> dict of numpy arrays, by hand on the protobuf wire format.

No TensorFlow and no generated code: the message is small and fixed::

    Example  { Features features = 1; }
    Features { map<string, Feature> feature = 1; }   // map entry: key = 1, value = 2
    Feature  { oneof kind { BytesList bytes_list = 1; FloatList float_list = 2;
                            Int64List int64_list = 3; } }
    BytesList { repeated bytes value = 1; }
    FloatList { repeated float value = 1 [packed = true]; }
    Int64List { repeated int64 value = 1 [packed = true]; }

Decoding gives floats as float32 arrays, int64s as int64 arrays and ``bytes`` lists as
``list[bytes]`` -- except a bytes list whose values are all exactly one byte long, returned
as a uint8 array of those bytes: that is how TensorFlow stores a uint8 tensor as
``FixedLenFeature(shape, tf.string)`` + ``decode_raw`` (the DeepMind multi-object datasets
hold ~1M such values per record; one vectorised pass instead of a Python loop). Packed and
unpacked repeated fields are both accepted. Malformed input raises
``ValueError`` (the reader turns it into an error naming the file and record).
"""
from __future__ import annotations

import numpy as np


def _varint(buf: bytes, pos: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        if pos >= len(buf):
            raise ValueError("truncated varint")
        b = buf[pos]
        pos += 1
        result |= (b & 0x7F) << shift
        if not b & 0x80:
            return result, pos
        shift += 7
        if shift > 63:
            raise ValueError("varint too long")


def _fields(buf: bytes):
    """Yield ``(field_number, wire_type, value)``; length-delimited values are ``bytes``."""
    pos, end = 0, len(buf)
    while pos < end:
        key, pos = _varint(buf, pos)
        number, wire = key >> 3, key & 7
        if wire == 0:
            value, pos = _varint(buf, pos)
        elif wire == 1:
            if pos + 8 > end:
                raise ValueError("truncated fixed64")
            value, pos = buf[pos:pos + 8], pos + 8
        elif wire == 2:
            size, pos = _varint(buf, pos)
            if pos + size > end:
                raise ValueError("truncated length-delimited field")
            value, pos = buf[pos:pos + size], pos + size
        elif wire == 5:
            if pos + 4 > end:
                raise ValueError("truncated fixed32")
            value, pos = buf[pos:pos + 4], pos + 4
        else:
            raise ValueError(f"unsupported wire type {wire}")
        yield number, wire, value


def _to_signed64(v: int) -> int:
    return v - (1 << 64) if v >= 1 << 63 else v


def _single_bytes(payload: bytes) -> np.ndarray | None:
    """The values of a BytesList whose every value is 1 byte long (tag 0x0A, length 1,
    byte), read in one vectorised pass; None when the list is not of that form."""
    if not payload or len(payload) % 3:
        return None
    triples = np.frombuffer(payload, dtype=np.uint8).reshape(-1, 3)
    if (triples[:, 0] == 0x0A).all() and (triples[:, 1] == 1).all():
        return triples[:, 2].copy()
    return None


def _decode_feature(buf: bytes):
    for number, wire, value in _fields(buf):
        if number == 1 and wire == 2:  # BytesList
            single = _single_bytes(value)
            if single is not None:
                return single
            return [v for n, w, v in _fields(value) if n == 1 and w == 2]
        if number == 2 and wire == 2:  # FloatList
            parts = []
            for n, w, v in _fields(value):
                if n != 1:
                    continue
                if w == 2:
                    if len(v) % 4:
                        raise ValueError("packed float list length is not a multiple of 4")
                    parts.append(np.frombuffer(v, dtype="<f4"))
                elif w == 5:
                    parts.append(np.frombuffer(v, dtype="<f4"))
            return np.concatenate(parts).astype(np.float32) if parts else np.zeros(0, np.float32)
        if number == 3 and wire == 2:  # Int64List
            values = []
            for n, w, v in _fields(value):
                if n != 1:
                    continue
                if w == 2:
                    pos = 0
                    while pos < len(v):
                        x, pos = _varint(v, pos)
                        values.append(_to_signed64(x))
                elif w == 0:
                    values.append(_to_signed64(v))
            return np.array(values, dtype=np.int64)
    return []  # a Feature with no kind set


def decode_example(buf: bytes, keys=None) -> dict:
    """Parse a serialized ``tf.train.Example`` into ``{name: list[bytes] | ndarray}``.

    ``keys``: decode only these features (the others are skipped unparsed: a reader that
    filters CLEVR scenes by their object colours need not decode 2.5 MB of masks first).
    """
    out = {}
    for number, wire, features in _fields(bytes(buf)):
        if number != 1 or wire != 2:
            continue
        for n, w, entry in _fields(features):
            if n != 1 or w != 2:
                continue
            key, value = None, b""
            for en, ew, ev in _fields(entry):
                if en == 1 and ew == 2:
                    key = ev.decode("utf-8")
                elif en == 2 and ew == 2:
                    value = ev
            if key is None:
                raise ValueError("feature map entry without a key")
            if keys is None or key in keys:
                out[key] = _decode_feature(value)
    return out


def _encode_varint(v: int) -> bytes:
    v &= (1 << 64) - 1
    out = bytearray()
    while True:
        b = v & 0x7F
        v >>= 7
        if v:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def _len_field(number: int, payload: bytes) -> bytes:
    return _encode_varint((number << 3) | 2) + _encode_varint(len(payload)) + payload


def encode_example(features: dict) -> bytes:
    """Serialize ``{name: bytes | list[bytes] | uint8 array | float array | int array}`` as a
    ``tf.train.Example``: a uint8 array becomes one 1-byte string per element (the inverse
    of the decoding rule above), floats packed float32, other integers packed int64."""
    entries = []
    for key, value in features.items():
        if isinstance(value, (bytes, bytearray)):
            value = [bytes(value)]
        if isinstance(value, list) and all(isinstance(v, (bytes, bytearray)) for v in value):
            feature = _len_field(1, b"".join(_len_field(1, bytes(v)) for v in value))
        elif isinstance(value, np.ndarray) and value.dtype == np.uint8:
            # one 1-byte string per element (the decode_raw convention), built vectorised
            triples = np.empty((value.size, 3), dtype=np.uint8)
            triples[:, 0], triples[:, 1], triples[:, 2] = 0x0A, 1, value.ravel()
            feature = _len_field(1, triples.tobytes())
        else:
            arr = np.asarray(value).ravel()
            if np.issubdtype(arr.dtype, np.floating):
                feature = _len_field(2, _len_field(1, arr.astype("<f4").tobytes()))
            elif np.issubdtype(arr.dtype, np.integer) or arr.dtype == bool:
                packed = b"".join(_encode_varint(int(v)) for v in arr.tolist())
                feature = _len_field(3, _len_field(1, packed))
            else:
                raise TypeError(f"feature {key!r}: unsupported value type {arr.dtype}")
        entries.append(_len_field(1, _len_field(1, key.encode("utf-8")) + _len_field(2, feature)))
    return _len_field(1, b"".join(entries))


__all__ = ["decode_example", "encode_example"]
