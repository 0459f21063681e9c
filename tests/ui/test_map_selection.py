"""Selecting on a subsampled map: a box or lasso takes every mapped sample inside it, and the page says so.

The regions are crafted in data coordinates, as Streamlit reports them (a box as its two x
and two y bounds, a lasso as its path's vertices); the frame's points sit on a grid so the
right answer can be read off by hand.
"""

import numpy as np
import pandas as pd
import pytest

from hamu_core.evaluation.embedding import embed
from hamu_ui.figures import selected_ids, selection_regions
from hamu_ui.forget_set import map_note

GRID = pd.DataFrame({"id": np.arange(100, 125), "x": np.repeat(np.arange(5.0), 5), "y": np.tile(np.arange(5.0), 5)})
GRID["drawn"] = GRID["id"] % 3 == 0  # a third drawn, as on a subsampled map


def event(points=(), box=(), lasso=()):
    return {"selection": {"points": [{"customdata": [i]} for i in points], "point_indices": [],
                          "box": [{"xref": "x", "yref": "y", "x": list(b[0]), "y": list(b[1])} for b in box],
                          "lasso": [{"xref": "x", "yref": "y", "x": list(x), "y": list(y)} for x, y in lasso]}}


def grid_ids(cells) -> list[int]:
    return sorted(100 + 5 * int(x) + int(y) for x, y in cells)


def test_a_box_selects_every_mapped_sample_inside_not_only_the_drawn_ones():
    box = event(points=[102], box=[((0.5, 2.5), (-0.5, 1.5))])  # the browser reported one drawn point
    expected = grid_ids([(1, 0), (1, 1), (2, 0), (2, 1)])
    assert selected_ids(box, GRID).tolist() == sorted({102, *expected})
    assert selected_ids(box).tolist() == [102]  # without the frame only the reported points


def test_a_lasso_and_a_box_together_select_their_union():
    triangle = ((-0.5, 4.5, -0.5), (-0.5, -0.5, 4.5))  # below the anti-diagonal x + y = 4
    both = event(lasso=[triangle], box=[((3.5, 4.5), (3.5, 4.5))])
    below = [(x, y) for x in range(5) for y in range(5) if x + y < 4]
    assert selected_ids(both, GRID).tolist() == grid_ids(below + [(4, 4)])


def test_regions_are_polygons_in_data_coordinates():
    regions = selection_regions(event(box=[((2, 0), (1, 3))], lasso=[((0, 1, 1), (0, 0, 1))]))
    assert regions == (((2.0, 0.0, 0.0, 2.0), (1.0, 1.0, 3.0, 3.0)), ((0.0, 1.0, 1.0), (0.0, 0.0, 1.0)))
    assert selection_regions(None) == () and selection_regions({"selection": {"points": []}}) == ()


def test_map_note_says_what_is_drawn_and_what_a_lasso_reaches():
    assert map_note(GRID.assign(drawn=True), "pca", 25) is None
    pca = map_note(GRID, "pca", 25)
    assert "draws 8 of 25 samples" in pca and "every sample inside it, drawn or not" in pca
    tsne = map_note(GRID.iloc[:10].assign(drawn=True), "tsne", 25)
    assert "t-SNE map holds 10 of 25 samples" in tsne and "among these only" in tsne


@pytest.mark.parametrize("method", ["pca", "tsne"])
def test_a_lasso_on_a_real_subsampled_map(digits, model, method):
    """Round trip on digits: every mapped sample inside a lasso around the map's centre, drawn or not."""
    frame = embed(model, digits, method=method, max_points=300, seed=0)
    assert frame["drawn"].sum() == 300 and len(frame) == (len(digits.ids) if method == "pca" else 300)
    (x0, x1), (y0, y1) = frame["x"].quantile([0.3, 0.7]), frame["y"].quantile([0.3, 0.7])
    lasso = ((x0, x1, x1, x0), (y0, y0, y1, y1))
    inside = frame[frame["x"].between(x0, x1) & frame["y"].between(y0, y1)]["id"]
    drawn_inside = inside[frame.loc[inside.index, "drawn"]]
    chosen = selected_ids(event(points=drawn_inside.tolist(), lasso=[lasso]), frame)
    assert chosen.tolist() == sorted(inside)
    assert len(chosen) > len(drawn_inside) if method == "pca" else len(chosen) == len(drawn_inside)
