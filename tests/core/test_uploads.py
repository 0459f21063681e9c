"""Uploaded CSV, NPZ and image-zip files: good files load, every bad one is refused by name and rule."""

from __future__ import annotations

import io
import zipfile

import numpy as np
import pytest
from PIL import Image

from hamu_core.data.labelled import DataError
from hamu_core.data.limits import Limits
from hamu_core.data.uploads import UploadConfig, load_csv, load_image_zip, load_npz, load_upload


def csv_bytes(rows: list[str]) -> bytes:
    return ("\n".join(rows) + "\n").encode()


TAIL = ["5,6,a", "7,8,b", "9,1,a", "2,3,b"]  # good rows that give each of classes a and b three samples
GOOD_CSV = csv_bytes(["x1,x2,label"] + [f"{i},{i * 2 % 7},{'cat' if i % 2 else 'dog'}" for i in range(20)])


def npz_bytes(**arrays) -> bytes:
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    return buffer.getvalue()


def png_bytes(size=(6, 5), value=128, mode="L") -> bytes:
    buffer = io.BytesIO()
    Image.new(mode, size, value if mode == "L" else (value, 0, 0)).save(buffer, format="PNG")
    return buffer.getvalue()


def zip_bytes(files: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, content in files.items():
            archive.writestr(name, content)
    return buffer.getvalue()


def test_numeric_csv_loads_standardised():
    data = load_csv(GOOD_CSV, "pets.csv")
    assert data.kind == "tabular" and data.classes == ("cat", "dog")
    assert data.X.shape == (20, 2) and data.X.dtype == np.float32
    assert np.allclose(data.X[~data.is_test].mean(axis=0), 0, atol=1e-6)
    assert data.is_test.sum() == 4 and data.meta["feature_columns"] == ["x1", "x2"]


def test_text_csv_becomes_tfidf():
    content = csv_bytes(["review,stars"] + [f"{'great fun' if i % 2 else 'dull slow'} {i},{i % 2}" for i in range(10)])
    data = load_csv(content, "reviews.csv", UploadConfig(label_column="stars", text_column="review"))
    assert data.kind == "text" and data.texts[0] == "dull slow 0" and data.classes == ("0", "1")


def test_npz_tabular_and_images():
    rng = np.random.default_rng(0)
    tabular = load_npz(npz_bytes(X=rng.normal(size=(30, 4)), y=np.arange(30) % 3), "t.npz")
    assert tabular.kind == "tabular" and tabular.X.shape == (30, 4) and tabular.n_classes == 3
    images = load_npz(npz_bytes(X=rng.integers(0, 256, size=(12, 5, 5)), y=np.arange(12) % 2), "i.npz")
    assert images.kind == "image" and images.X.shape == (12, 1, 5, 5) and images.X.max() <= 1.0


def test_image_zip_one_folder_per_class():
    files = {f"shapes/{cls}/{i}.png": png_bytes(value=40 * i, mode="RGB" if i == 0 else "L")
             for cls in ("circle", "square") for i in range(3)}
    data = load_image_zip(zip_bytes({**files, "README.txt": b"ignored"}), "shapes.zip")
    assert data.kind == "image" and data.classes == ("circle", "square")
    assert data.X.shape == (6, 1, 5, 6) and data.images.dtype == np.uint8 and data.images.shape == (6, 5, 6)
    assert data.meta["paths"][0] == "shapes/circle/0.png" and data.y.tolist() == [0, 0, 0, 1, 1, 1]


def test_dispatch_by_extension():
    assert load_upload(GOOD_CSV, "PETS.CSV").kind == "tabular"
    with pytest.raises(DataError, match=r"notes\.txt: unsupported file type"):
        load_upload(b"hello", "notes.txt")


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", r"bad\.csv: the file is empty"),
        (b"  \n\n", r"bad\.csv: the file is empty"),
        (csv_bytes(["x1;x2;label", "1;2;a", "3;4;b"]), r"single column 'x1;x2;label'.*it seems to use ';'"),
        (csv_bytes(["x1,x2,label"]), "header but no data rows"),
        (csv_bytes(["x1,x2,target", "1,2,a", "3,4,b"]), r"no label column 'label'; columns are \['x1', 'x2', 'target'\]"),
        (csv_bytes(["x1,x2,label", "1,2,a", "3,oops,b", *TAIL]), r"column 'x2' is not numeric: row 2 has 'oops'"),
        (csv_bytes(["x1,x2,label", "1,2,a", "3,,b", *TAIL]), r"column 'x2' has a NaN \(missing\) value at row 2"),
        (csv_bytes(["x1,x2,label", "1,nan,a", "3,4,b", *TAIL]), r"column 'x2' has a NaN \(missing\) value at row 1"),
        (csv_bytes(["x1,x2,label", "1,2,a", "inf,4,b", *TAIL]), r"column 'x1' has an infinite value at row 2"),
        (csv_bytes(["x1,x2,label", "1,2,a", "3,4,a", "5,6,a"]), r"only one class \('a'\); at least two are needed"),
        (csv_bytes(["x1,x2,label", "1,2,a", "3,4,", *TAIL]), "label column 'label' is empty at row 2"),
        (csv_bytes(["x1,x2,label", "1,2,a,9,9", "3,4,b"]), "not a readable CSV"),
    ],
)
def test_bad_csv(content, message):
    with pytest.raises(DataError, match=message):
        load_csv(content, "bad.csv")


def test_csv_missing_text_column():
    with pytest.raises(DataError, match="no text column 'body'"):
        load_csv(GOOD_CSV, "pets.csv", UploadConfig(text_column="body"))


def test_file_over_size_limit():
    tiny = UploadConfig(limits=Limits(max_file_bytes=100))
    with pytest.raises(DataError, match=r"big\.csv: file is .* MB, over Limits\.max_file_bytes = 0\.0 MB"):
        load_csv(GOOD_CSV, "big.csv", tiny)
    with pytest.raises(DataError, match=r"over Limits\.max_file_bytes"):
        load_image_zip(zip_bytes({f"{c}/{i}.png": png_bytes() for c in "ab" for i in range(3)}), "big.zip", tiny)


Y6 = np.array([0, 1, 0, 1, 0, 1])


@pytest.mark.parametrize(
    ("arrays", "message"),
    [
        ({"X": np.zeros((4, 2))}, r"needs arrays named 'X' and 'y'; found \['X'\]"),
        ({"X": np.zeros((6, 2)), "y": np.array([0, 1, 0])}, "X has 6 rows but y has 3"),
        ({"X": np.array([["a", "b"]] * 6), "y": Y6}, "array 'X' must be numeric"),
        ({"X": np.array([[0, 1], [2, np.inf], [1, 1], [0, 0], [1, 0], [0, 1]]), "y": Y6},
         r"column 'X\[:, 1\]' has an infinite value at row 2"),
        ({"X": np.zeros((6, 2)), "y": np.zeros(6)}, r"only one class \('0.0'\)"),
        ({"X": np.zeros((6, 2, 2, 2, 2)), "y": Y6}, "array 'X' must be .* got shape"),
        ({"X": np.full((6, 2, 2), 300.0), "y": Y6}, r"image values must lie in \[0, 1\] or \[0, 255\]"),
        ({"X": np.zeros((6, 2, 2, 5)), "y": Y6}, r"array 'X': image arrays need 1 or 3 channels at axis 1 or axis 3"),
    ],
)
def test_bad_npz(arrays, message):
    with pytest.raises(DataError, match=rf"bad\.npz: {message}"):
        load_npz(npz_bytes(**arrays), "bad.npz")


def test_npz_that_is_not_an_archive_or_holds_pickles():
    with pytest.raises(DataError, match=r"bad\.npz: not a valid zip archive"):
        load_npz(b"definitely not numpy", "bad.npz")
    with pytest.raises(DataError, match=r"bad\.npz: array 'X' holds Python objects \(pickled\)"):
        load_npz(npz_bytes(X=np.array([{"a": 1}] * 2, dtype=object), y=np.array([0, 1])), "bad.npz")


@pytest.mark.parametrize(
    ("files", "message"),
    [
        ({"a/1.png": png_bytes(), "../evil/2.png": png_bytes()}, r"unsafe path '\.\./evil/2\.png'.*path traversal"),
        ({"a/1.png": png_bytes(), "/etc/b/2.png": png_bytes()}, r"unsafe path '/etc/b/2\.png'"),
        ({"a/1.png": png_bytes(), "b/../../x.png": png_bytes()}, "path traversal"),
        ({"a/1.png": png_bytes(), "b/2.png": png_bytes(size=(7, 5))}, r"same size: 'a/1\.png' is 6×5 but 'b/2\.png' is 7×5"),
        ({"a/1.png": png_bytes(), "b/2.png": b"not a png"}, r"cannot read image 'b/2\.png'"),
        ({"a/1.png": png_bytes(), "a/2.png": png_bytes()}, r"only one class \('a'\)"),
        ({"a/1.png": png_bytes(), "loose.png": png_bytes()}, r"image 'loose\.png' is not inside a class folder"),
        ({"notes.txt": b"hi"}, "no images found"),
    ],
)
def test_bad_image_zip(files, message):
    with pytest.raises(DataError, match=rf"bad\.zip: .*{message}"):
        load_image_zip(zip_bytes(files), "bad.zip")


def test_zip_that_is_not_a_zip():
    with pytest.raises(DataError, match=r"bad\.zip: not a valid zip archive"):
        load_image_zip(b"PK but not really", "bad.zip")


@pytest.mark.parametrize(("field", "value"), [("test_fraction", 1.0), ("max_text_features", 0), ("test_fraction", 0.1)])
def test_upload_config_validates(field, value):
    with pytest.raises(ValueError, match=field):
        UploadConfig(**{field: value})


@pytest.mark.parametrize("field", ["max_rows", "min_samples_per_class"])
def test_limits_validate(field):
    with pytest.raises(ValueError, match=rf"Limits\.{field} must be at least 1"):
        Limits(**{field: 0})
