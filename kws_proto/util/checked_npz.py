"""NumPy ``.npz`` files that carry a JSON header and a SHA-256 checksum over it and their arrays.

Keyword banks (:mod:`kws_proto.spot.bank`) and backgrounds (:mod:`kws_proto.spot.background`) are
written this way: members ``header`` (UTF-8 bytes as ``uint8``), the arrays, and ``checksum`` (the
hex digest as ``uint8``), so a file changed after it was written is refused when it is read.
"""

from __future__ import annotations

import hashlib
import io
from collections.abc import Mapping

import numpy as np


def checksum(header: bytes, arrays: Mapping[str, np.ndarray], named: bool = True) -> str:
    """Hex SHA-256 of ``header`` (length-prefixed) and each array's dtype, shape and bytes, in
    the mapping's order; with ``named`` each array's name is hashed too."""
    h = hashlib.sha256()
    h.update(len(header).to_bytes(8, "little") + header)
    for name, a in arrays.items():
        a = np.ascontiguousarray(a)
        h.update(f"{name if named else ''}{a.dtype.str}{a.shape}".encode())
        h.update(a.tobytes())
    return h.hexdigest()


def checked_npz(header: bytes, arrays: Mapping[str, np.ndarray], named: bool = True) -> bytes:
    """The bytes of an ``.npz`` holding ``header``, ``arrays`` and their :func:`checksum`."""
    digest = checksum(header, arrays, named)
    buf = io.BytesIO()
    np.savez(buf, header=np.frombuffer(header, np.uint8), **arrays,
             checksum=np.frombuffer(digest.encode("ascii"), np.uint8))
    return buf.getvalue()


def stored_checksum(members: Mapping[str, np.ndarray]) -> str:
    """The ``checksum`` member of a loaded file, as text."""
    return members["checksum"].tobytes().decode("ascii", "replace")
