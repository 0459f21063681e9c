"""Hover text of the embedding plot: the sample itself, drawn in characters for images."""

import numpy as np
import pandas as pd

from hamu_core.evaluation.embedding import annotate, embed
from hamu_ui.forget_set import GLYPH_ROWS, SHADES, hover_text, image_glyphs


def test_glyphs_follow_pixel_intensity_row_by_row():
    pixels = np.zeros((8, 8), dtype=np.uint8)
    pixels[:, 4:] = 255
    pixels[0, :] = 128
    rows = image_glyphs(pixels).split("<br>")
    assert len(rows) == 8 and all(len(row) == 16 for row in rows)
    assert rows[1] == SHADES[0] * 8 + SHADES[-1] * 8
    assert rows[0] == SHADES[2] * 16


def test_large_images_are_averaged_down_to_a_few_rows():
    pixels = np.random.default_rng(0).integers(0, 256, size=(28, 28), dtype=np.uint8)
    rows = image_glyphs(pixels).split("<br>")
    assert 1 < len(rows) <= GLYPH_ROWS and len({len(r) for r in rows}) == 1
    flat = np.full((28, 28), 255, dtype=np.uint8)
    assert set(image_glyphs(flat).replace("<br>", "")) == {SHADES[-1]}


def test_digit_hover_shows_id_class_and_picture(digits, model):
    frame = annotate(embed(model, digits, method="pca", seed=0, ids=digits.ids[:20]), np.array([0]))
    hover = hover_text(digits, frame)
    assert isinstance(hover, pd.Series) and len(hover) == len(frame)
    first = hover.iloc[0].split("<br>")
    assert first[0].startswith(f"id {frame['id'].iloc[0]} · ") and len(first) == 1 + 8
    assert hover.iloc[0] != hover.iloc[1]
