"""The one place that states how much an uploaded dataset may hold, and why each bound is where it is.

Every loader in ``hamu_core.data.uploads`` compares what a file *declares* (a zip member's
size, an NPZ array header's shape and dtype, an image header's width and height, a CSV's
line and column count) against these limits before it allocates anything, and stops
reading a stream that grows past what was declared. A file that breaks one is refused with
a ``DataError`` naming the file and the limit (``Limits.<field>``), so a user knows which
number to change, and a server with several sessions open keeps a bounded footprint.

The defaults fit a 2-core laptop that trains on the CPU: they admit every built-in
dataset's shape (Fashion-MNIST's 28×28 images, CIFAR-style 32×32 colour images) with room
to spare, and refuse what would only train for hours or exhaust memory.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

MiB = 2**20


@dataclass(frozen=True)
class Limits:
    """Bounds on an upload (all upper but the last); the comment above each says why it is where it is."""

    # the upload itself: Streamlit's own cap is 200 MB; 50 MB holds ~20,000 32×32 colour PNGs
    max_file_bytes: int = 50 * MiB
    # everything decoded from one file (members, arrays, images, float model inputs): four sessions' uploads ≤ 1 GB
    max_decoded_bytes: int = 256 * MiB
    # samples: above Fashion-MNIST (70,000, the largest built-in set), the size the Studio is timed at
    max_rows: int = 100_000
    # values per sample (columns, or channels × height × width): a 128×128 grey image; 32×32 colour is 3,072
    max_features: int = 16_384
    # width × height from an image's header, judged before decoding: a pixel bomb stops here
    max_pixels_per_image: int = 128 * 128
    # entries in a zip's directory: Python builds an object per entry as soon as it opens a zip
    max_zip_members: int = 100_000
    # rows × columns of a CSV: pandas holds each cell as a Python string (~60 bytes) while checking it
    max_csv_cells: int = 2_000_000
    # distinct labels: the per-class views and the report list every class
    max_classes: int = 1_000
    # a lower bound: at a 20% test split, one test sample and two to train on (one to forget, one to retain)
    min_samples_per_class: int = 3

    def __post_init__(self) -> None:
        for item in fields(self):
            if getattr(self, item.name) < 1:
                raise ValueError(f"Limits.{item.name} must be at least 1, got {getattr(self, item.name)}")


DEFAULT_LIMITS = Limits()
