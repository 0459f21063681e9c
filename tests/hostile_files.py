"""Hostile and careless upload files, built on the fly (nothing large is committed) for the core, CLI, app and
browser tests.

Each builder returns the file's bytes. Bombs are real: their compressed payloads decode to
what their headers declare, written in chunks so that building one never holds the decoded
size in memory. ``HOSTILE`` names every kind with the rule a refusal must name.
"""

from __future__ import annotations

import io
import struct
import zipfile
import zlib

import numpy as np
from PIL import Image

CHUNK = 2**22  # bytes of zeros written per call while building a bomb


def csv_bytes(rows: list[str]) -> bytes:
    return ("\n".join(rows) + "\n").encode()


def png_bytes(size=(6, 5), colour=None) -> bytes:
    buffer = io.BytesIO()
    image = Image.new("RGB", size, colour) if colour else Image.new("L", size, 128)
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def npz_bytes(**arrays) -> bytes:
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    return buffer.getvalue()


def zip_bytes(files: dict[str, bytes], compression=zipfile.ZIP_STORED) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression) as archive:
        for name, content in files.items():
            archive.writestr(name, content)
    return buffer.getvalue()


def class_folders(per_class: int = 3, colour=None) -> dict[str, bytes]:
    """A learnable set of tiny images: two class folders of ``per_class`` images each."""
    return {f"shapes/{c}/{i}.png": png_bytes(colour=colour) for c in ("circle", "square") for i in range(per_class)}


def _payload_offset(content: bytes, member: str) -> tuple[int, int]:
    """Where a member's (compressed) bytes start in the archive, and how many there are."""
    with zipfile.ZipFile(io.BytesIO(content)) as archive:
        info = archive.getinfo(member)
    name_len, extra_len = struct.unpack("<HH", content[info.header_offset + 26:info.header_offset + 30])
    return info.header_offset + 30 + name_len + extra_len, info.compress_size


def corrupt_crc_zip() -> bytes:
    """A stored (uncompressed) member whose bytes no longer match its CRC-32."""
    content = bytearray(zip_bytes(class_folders()))
    start, size = _payload_offset(bytes(content), "shapes/square/2.png")
    content[start + size // 2] ^= 0xFF
    return bytes(content)


def corrupt_deflate_zip() -> bytes:
    """A deflated member whose compressed stream is garbage (an invalid block type)."""
    content = bytearray(zip_bytes(class_folders(), zipfile.ZIP_DEFLATED))
    start, size = _payload_offset(bytes(content), "shapes/circle/1.png")
    content[start:start + size] = b"\xff" * size
    return bytes(content)


def lying_size_zip(declared: int) -> bytes:
    """A member whose central-directory entry declares ``declared`` bytes instead of its real size."""
    content = bytearray(zip_bytes(class_folders()))
    entry = content.rfind(b"PK\x01\x02")  # the last entry: shapes/square/2.png
    content[entry + 24:entry + 28] = struct.pack("<I", declared)
    return bytes(content)


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def pixel_bomb_png(width: int = 8000, height: int = 8000) -> bytes:
    """A valid greyscale PNG of ``width`` × ``height`` black pixels: tens of KB that decode to 64 MB."""
    compressor, row, parts = zlib.compressobj(9), b"\0" * (width + 1), []  # each row: filter byte + pixels
    rows_per_chunk = max(1, CHUNK // len(row))
    for first in range(0, height, rows_per_chunk):
        parts.append(compressor.compress(row * min(rows_per_chunk, height - first)))
    parts.append(compressor.flush())
    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)  # 8-bit greyscale, no interlace
    return b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", header) + _chunk(b"IDAT", b"".join(parts)) + _chunk(b"IEND", b"")


def pixel_bomb_zip(copies: int = 4) -> bytes:
    """Class folders whose images are pixel bombs: a few hundred KB that would decode to GBs."""
    bomb = pixel_bomb_png()
    return zip_bytes({f"bombs/{c}/{i}.png": bomb for c in ("a", "b") for i in range(copies)})


def npy_header(shape: tuple[int, ...], dtype: str = "<f8") -> bytes:
    """A version-1.0 ``.npy`` header declaring ``shape``, padded as numpy pads it."""
    text = f"{{'descr': '{dtype}', 'fortran_order': False, 'shape': {shape!r}, }}"
    pad = 64 - (10 + len(text) + 1) % 64
    return b"\x93NUMPY\x01\x00" + struct.pack("<H", len(text) + pad + 1) + text.encode() + b" " * pad + b"\n"


def npz_bomb(rows: int = 4096, features: int = 8192) -> bytes:
    """An NPZ whose X really holds ``rows`` × ``features`` float64 zeros (256 MiB by default), deflated to ~1 MB."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as archive:
        archive.writestr("y.npy", _npy(np.arange(rows) % 2))
        with archive.open("X.npy", "w", force_zip64=True) as member:
            member.write(npy_header((rows, features)))
            left = rows * features * 8
            zeros = bytes(CHUNK)
            while left:
                member.write(zeros[:min(left, CHUNK)])
                left -= min(left, CHUNK)
    return buffer.getvalue()


def impossible_shape_npz(shape=(10**7, 10**7)) -> bytes:
    """An NPZ whose X header declares ``shape`` (728 TiB of float64) over a few bytes of data."""
    return zip_bytes({"X.npy": npy_header(shape) + bytes(64), "y.npy": _npy(np.arange(6) % 2)})


def _npy(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array)
    return buffer.getvalue()


Y6 = np.arange(6) % 2
LONG_NAME = "ü" * 120 + "/../" + "n" * 127 + ".csv"  # 255 characters, Unicode and path-like
LONG_FILE_NAME = "ü" * 100 + "n" * 51 + ".csv"  # 255 bytes in UTF-8: the longest name a Linux folder can hold
GOOD_CSV = csv_bytes(["x1,x2,label"] + [f"{i},{i * 3 % 7},{'ab'[i % 2]}" for i in range(30)])

# name → (file name, content builder, text the refusal must contain)
HOSTILE = {
    "corrupt-crc": ("crc.zip", corrupt_crc_zip, r"member 'shapes/square/2.png' is damaged: .*Details: Bad CRC-32"),
    "corrupt-deflate": ("deflate.zip", corrupt_deflate_zip, r"member 'shapes/circle/1.png' is damaged"),
    "size-lies-small": ("small.zip", lambda: lying_size_zip(10), r"member 'shapes/square/2.png' is damaged"),
    "size-lies-large": ("large.zip", lambda: lying_size_zip(4000), r"declares 4,000 bytes but holds"),
    "size-lies-huge": ("huge.zip", lambda: lying_size_zip(2**32 - 1), r"Limits\.max_decoded_bytes"),
    "pixel-bomb": ("bomb.zip", pixel_bomb_zip, r"8,000×8,000 = 64,000,000 pixels, beyond Limits\.max_pixels_per_image"),
    "npz-bomb": ("bomb.npz", npz_bomb, r"Limits\.max_decoded_bytes"),
    "impossible-shape": ("shape.npz", impossible_shape_npz, r"10,000,000 rows, beyond Limits\.max_rows"),
    "scalar-X": ("scalar.npz", lambda: npz_bytes(X=np.float64(3.0), y=Y6), r"array 'X' is a scalar"),
    "zero-rows": ("empty.npz", lambda: npz_bytes(X=np.zeros((0, 4)), y=np.zeros(0)), "the file holds no samples"),
    "zero-features": ("narrow.npz", lambda: npz_bytes(X=np.zeros((6, 0)), y=Y6), "zero features"),
    "empty-images": ("blank.npz", lambda: npz_bytes(X=np.zeros((6, 0, 0)), y=Y6), "zero features"),
    "complex-X": ("complex.npz", lambda: npz_bytes(X=np.ones((6, 2), complex), y=Y6), r"is complex \(complex128\)"),
    "two-rows": ("two.csv", lambda: csv_bytes(["x1,x2,label", "1,2,a", "3,4,b"]), r"Limits\.min_samples_per_class"),
    "unique-labels": ("unique.csv", lambda: csv_bytes(["x,label"] + [f"{i},row{i}" for i in range(20)]),
                      r"20 samples allow at most 6 classes"),
}
