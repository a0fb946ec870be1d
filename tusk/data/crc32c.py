"""CRC-32C (Castagnoli), the checksum of TFRecord framing.

Uses ``google-crc32c`` (hardware-accelerated; the ``data`` extra) when installed. The
fallback is pure numpy: the data is cut into L equal lanes whose CRCs advance together,
one vectorised table lookup per byte position, and the lane CRCs are then joined with
the precomputed "append n zero bytes" operator. ~17 MB/s instead of ~1 MB/s for a Python
byte loop (measured, 1 MB records) -- enough to verify a few records, slow for all of CLEVR
(install the extra for that).
"""
from __future__ import annotations

import functools

import numpy as np

try:  # pragma: no cover - depends on the environment
    import google_crc32c as _google_crc32c
except ImportError:  # pragma: no cover
    _google_crc32c = None

_POLY = 0x82F63B78  # reflected Castagnoli polynomial
_MASK_DELTA = 0xA282EAD8


def _make_table() -> np.ndarray:
    table = np.arange(256, dtype=np.uint32)
    for _ in range(8):
        table = np.where(table & 1, (table >> 1) ^ np.uint32(_POLY), table >> 1).astype(np.uint32)
    return table


_TABLE = _make_table()
_TABLE_LIST = _TABLE.tolist()


def _crc_bytes_python(data: bytes, crc: int) -> int:
    table = _TABLE_LIST
    for b in data:
        crc = table[(crc ^ b) & 0xFF] ^ (crc >> 8)
    return crc


@functools.lru_cache(maxsize=16)
def _zeros_operator(n: int) -> tuple[list[int], list[int], list[int], list[int]]:
    """Byte-sliced tables of the linear map 'feed n zero bytes' on a CRC register."""
    regs = (np.arange(256, dtype=np.uint32)[None, :] << (8 * np.arange(4, dtype=np.uint32))[:, None]).ravel()
    for _ in range(n):
        regs = _TABLE[regs & 0xFF] ^ (regs >> 8)
    t = regs.reshape(4, 256)
    return t[0].tolist(), t[1].tolist(), t[2].tolist(), t[3].tolist()


def _crc_numpy(data: bytes) -> int:
    """Standard CRC-32C (init and final xor 0xFFFFFFFF) of ``len(data) >= 4`` bytes."""
    buf = np.frombuffer(data, dtype=np.uint8).copy()
    buf[:4] ^= 0xFF  # complementing the first 32 bits == starting from register 0xFFFFFFFF
    lanes = max(1, int(np.sqrt(len(buf))))
    n = -(-len(buf) // lanes)
    padded = np.zeros(lanes * n, dtype=np.uint8)
    padded[lanes * n - len(buf):] = buf  # leading zeros leave a zero register unchanged
    columns = np.ascontiguousarray(padded.reshape(lanes, n).T).astype(np.uint32)
    reg = np.zeros(lanes, dtype=np.uint32)
    for column in columns:
        reg = _TABLE[(reg ^ column) & 0xFF] ^ (reg >> 8)
    t0, t1, t2, t3 = _zeros_operator(n)
    crc = 0
    for lane_crc in reg.tolist():
        crc = t0[crc & 0xFF] ^ t1[(crc >> 8) & 0xFF] ^ t2[(crc >> 16) & 0xFF] ^ t3[crc >> 24] ^ lane_crc
    return crc ^ 0xFFFFFFFF


def crc32c(data: bytes, *, backend: str = "auto") -> int:
    """CRC-32C of ``data`` (``crc32c(b"123456789") == 0xE3069283``).

    ``backend``: ``"auto"`` (google-crc32c if installed, else numpy), ``"numpy"``, ``"python"``.
    """
    if backend == "auto" and _google_crc32c is not None:
        return int(_google_crc32c.value(bytes(data)))
    if backend == "python" or len(data) < 256:
        return _crc_bytes_python(data, 0xFFFFFFFF) ^ 0xFFFFFFFF
    if backend in ("auto", "numpy"):
        return _crc_numpy(data)
    raise ValueError(f"backend must be 'auto', 'numpy' or 'python', got {backend!r}")


def masked_crc32c(data: bytes) -> int:
    """The masked CRC stored in TFRecord framing."""
    crc = crc32c(data)
    return (((crc >> 15) | (crc << 17)) + _MASK_DELTA) & 0xFFFFFFFF
