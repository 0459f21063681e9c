"""Reading zip members and ``.npy`` arrays within a byte budget, every failure a ``DataError``.

Both the image-zip and the NPZ loaders go through here. Sizes are compared with the
budget as the archive *declares* them (the zip's directory, the array header's shape and
dtype) before anything is decompressed or allocated, and a member is read no further than
its declared size; a member whose bytes disagree with its declaration, a bad CRC-32 or a
corrupt deflate stream is refused with the file and member named, never a raw exception.
"""

from __future__ import annotations

import io
import lzma
import math
import zipfile
import zlib
from collections.abc import Callable

import numpy as np

from hamu_core.data.labelled import DataError
from hamu_core.data.limits import Limits

_CENTRAL_ENTRY = b"PK\x01\x02"  # signature of each entry in a zip's central directory
# What a damaged member raises while it is decompressed: a bad CRC-32 or header (BadZipFile), a
# corrupt deflate (zlib.error) or lzma stream, a stream ending early (EOFError), an encrypted
# member (RuntimeError) or an unsupported compression method (NotImplementedError).
_MEMBER_ERRORS = (zipfile.BadZipFile, zlib.error, lzma.LZMAError, EOFError, RuntimeError,
                  NotImplementedError, OSError, ValueError)


class DecodeBudget:
    """The decoded bytes one file may still produce (``Limits.max_decoded_bytes`` in all)."""

    def __init__(self, filename: str, limits: Limits) -> None:
        self.filename, self.limit, self.left = filename, limits.max_decoded_bytes, limits.max_decoded_bytes

    def take(self, nbytes: int, what: str) -> None:
        """Claim ``nbytes`` for ``what``, or refuse before anything of that size is allocated."""
        if nbytes > self.left:
            raise DataError(f"{self.filename}: {what} would decode to {nbytes / 2**20:,.2f} MB, more than the "
                            f"{self.left / 2**20:,.2f} MB left of Limits.max_decoded_bytes = "
                            f"{self.limit / 2**20:,.0f} MB for the whole file")
        self.left -= nbytes


def open_zip(content: bytes, filename: str, limits: Limits) -> zipfile.ZipFile:
    """The archive, once its entry count is known to be within ``limits.max_zip_members``.

    The count is taken from the raw bytes (each directory entry starts with a fixed
    signature) because ``ZipFile`` builds an object per entry as soon as it opens.
    """
    entries = content.count(_CENTRAL_ENTRY)
    if entries > limits.max_zip_members:
        raise DataError(f"{filename}: the zip lists up to {entries:,} entries, beyond Limits.max_zip_members = "
                        f"{limits.max_zip_members:,}")
    try:
        return zipfile.ZipFile(io.BytesIO(content))
    except (zipfile.BadZipFile, OSError, ValueError, EOFError) as exc:
        raise DataError(f"{filename}: not a valid zip archive ({exc})") from exc


def read_member(archive: zipfile.ZipFile, info: zipfile.ZipInfo, filename: str, budget: DecodeBudget) -> bytes:
    """A member's bytes, read only after its declared size fits the budget, and checked against that size."""
    budget.take(info.file_size, f"member {info.filename!r}")
    try:
        with archive.open(info) as stream:
            data = stream.read()
    except _MEMBER_ERRORS as exc:
        raise DataError(f"{filename}: member {info.filename!r} is damaged: its bytes do not unpack to what the "
                        f"zip declares (the file was cut short or changed after zipping; zip it again). "
                        f"Details: {exc}") from exc
    if len(data) != info.file_size:
        raise DataError(f"{filename}: member {info.filename!r} declares {info.file_size:,} bytes but holds "
                        f"{len(data):,}")
    return data


def read_npy(archive: zipfile.ZipFile, info: zipfile.ZipInfo, filename: str, budget: DecodeBudget,
             check_header: Callable[[tuple[int, ...], np.dtype, str], None]) -> np.ndarray:
    """The array in an ``.npy`` member, its header read and judged before its data.

    ``check_header(shape, dtype, where)`` refuses what the caller cannot use (a dtype, too
    many rows or features) before the array's bytes are claimed from the budget; pickled
    objects are refused here for every array, by the dtype the header declares.
    """
    where = f"{filename}: array {info.filename.removesuffix('.npy')!r}"
    try:
        with archive.open(info) as stream:
            version = np.lib.format.read_magic(stream)
            if version == (1, 0):
                shape, fortran, dtype = np.lib.format.read_array_header_1_0(stream)
            elif version == (2, 0):
                shape, fortran, dtype = np.lib.format.read_array_header_2_0(stream)
            else:
                raise DataError(f"{where} uses .npy format version {version}; save it with numpy.savez")
            if dtype.hasobject:
                raise DataError(f"{where} holds Python objects (pickled); only plain numeric arrays are read")
            check_header(shape, dtype, where)
            nbytes = math.prod(shape) * dtype.itemsize
            budget.take(nbytes, f"array {info.filename!r} of shape {shape}")
            raw = stream.read(nbytes)
    except DataError:
        raise
    except _MEMBER_ERRORS as exc:
        raise DataError(f"{where} is damaged or not an .npy array ({exc})") from exc
    if len(raw) != nbytes:
        raise DataError(f"{where} declares shape {shape} ({nbytes:,} bytes) but holds {len(raw):,} bytes")
    return np.frombuffer(raw, dtype=dtype).reshape(shape, order="F" if fortran else "C")

