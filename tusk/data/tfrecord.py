"""TFRecord files without TensorFlow: framing reader (CRC-checked) and writer.

A record is ``uint64 length | uint32 masked_crc32c(length) | data | uint32 masked_crc32c(data)``
(little endian). Files may be GZIP-compressed as a whole (the DeepMind multi-object datasets
are), detected from the content. Any damage -- a cut-off file, a bad checksum -- raises
:class:`~tusk.data.errors.DataFileError` naming the file and the record.
"""
from __future__ import annotations

import gzip
import os
import struct
import zlib
from collections.abc import Iterable, Iterator
from pathlib import Path

from .crc32c import masked_crc32c
from .errors import DataFileError, missing_file
from .example_proto import decode_example, encode_example


def _open(path: Path):
    with open(path, "rb") as f:
        magic = f.read(2)
    return gzip.open(path, "rb") if magic == b"\x1f\x8b" else open(path, "rb")


def iter_records(path: str | os.PathLike, *, verify: bool = True) -> Iterator[bytes]:
    """Yield the payload of every record of a TFRecord file (plain or GZIP).

    ``verify`` checks the data CRC of each record (the length CRC is always checked).
    """
    path = Path(path)
    if not path.is_file():
        raise missing_file(path)
    index = 0
    try:
        with _open(path) as f:
            while True:
                header = f.read(12)
                if not header:
                    return
                if len(header) < 12:
                    raise DataFileError(path, f"record {index}: truncated header ({len(header)} of 12 bytes)")
                length, length_crc = struct.unpack("<QI", header)
                if masked_crc32c(header[:8]) != length_crc:
                    raise DataFileError(path, f"record {index}: length checksum mismatch (corrupt file)")
                data = f.read(length)
                footer = f.read(4)
                if len(data) < length or len(footer) < 4:
                    raise DataFileError(path, f"record {index}: truncated (expected {length} bytes)")
                if verify and masked_crc32c(data) != struct.unpack("<I", footer)[0]:
                    raise DataFileError(path, f"record {index}: data checksum mismatch (corrupt file)")
                yield data
                index += 1
    except (EOFError, zlib.error, gzip.BadGzipFile) as exc:
        raise DataFileError(path, f"record {index}: damaged gzip stream ({exc})") from exc


def iter_examples(path: str | os.PathLike, *, verify: bool = True) -> Iterator[dict]:
    """Yield every record of a TFRecord file parsed as a ``tf.train.Example``."""
    for index, record in enumerate(iter_records(path, verify=verify)):
        try:
            yield decode_example(record)
        except ValueError as exc:
            raise DataFileError(path, f"record {index}: not a tf.train.Example ({exc})") from exc


def write_records(path: str | os.PathLike, records: Iterable[bytes], *, compress: bool = False) -> Path:
    """Write raw records as a TFRecord file (GZIP-compressed with ``compress=True``)."""
    path = Path(path)
    opener = (lambda p: gzip.open(p, "wb")) if compress else (lambda p: open(p, "wb"))
    with opener(path) as f:
        for data in records:
            data = bytes(data)
            length = struct.pack("<Q", len(data))
            f.write(length + struct.pack("<I", masked_crc32c(length)))
            f.write(data + struct.pack("<I", masked_crc32c(data)))
    return path


def write_examples(path: str | os.PathLike, examples: Iterable[dict], *, compress: bool = False) -> Path:
    """Write dicts as ``tf.train.Example`` records (see :func:`~tusk.data.example_proto.encode_example`)."""
    return write_records(path, (encode_example(e) for e in examples), compress=compress)
