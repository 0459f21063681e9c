"""The layering of DESIGN.md, checked on the source: pages → hamu_ui → hamu_core, never back,
and inside the core each sub-package imports only the ones below it (``CORE_LAYERS``).

Imports are read with ``ast`` (nothing is imported), so a forbidden import anywhere in a
module — at the top, inside a function, or behind a condition — fails the test.
"""

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def imported_packages(path: Path) -> set[str]:
    """Top-level names of every module that ``path`` imports (absolute imports only)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.add(node.module.split(".")[0])
        elif isinstance(node, ast.Call) and getattr(node.func, "id", None) == "__import__" and node.args:
            if isinstance(node.args[0], ast.Constant):
                found.add(str(node.args[0].value).split(".")[0])
    return found


def modules(folder: str) -> list[Path]:
    """Every module under ``folder``, sub-packages included."""
    return sorted((ROOT / folder).rglob("*.py"))


# What each part of the core may import from the rest of hamu_core. A part never reaches up:
# rules and data stand alone, models learn from data, evaluation measures models, runs unlearn
# and measure, audits run unlearning on shadow models, and the CLI drives everything.
CORE_LAYERS = {
    "rules": set(),
    "data": set(),
    "models": {"data"},
    "evaluation": {"rules", "data", "models"},
    "config": {"rules"},
    "runs": {"rules", "data", "models", "evaluation", "config"},
    "audit": {"rules", "data", "models", "evaluation", "config", "runs"},
}


def core_parts(path: Path) -> set[str]:
    """The parts of hamu_core (sub-package or top-level module) that ``path`` imports."""
    parts = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        names = ([a.name for a in node.names] if isinstance(node, ast.Import)
                 else [node.module] if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module
                 else [])
        for name in names:
            bits = name.split(".")
            if bits[0] == "hamu_core" and len(bits) > 1:
                parts.add(bits[1])
            elif bits[0] == "hamu_core" and isinstance(node, ast.ImportFrom):
                parts.update(a.name for a in node.names)
    return parts


@pytest.mark.parametrize("part", sorted(CORE_LAYERS))
def test_core_parts_import_only_the_layers_below(part):
    folder = ROOT / "hamu_core" / part
    paths = sorted(folder.rglob("*.py")) if folder.is_dir() else [ROOT / "hamu_core" / f"{part}.py"]
    allowed = CORE_LAYERS[part] | {part, "jsonable"}
    for path in paths:
        reached = core_parts(path) - allowed
        assert not reached, f"{path.relative_to(ROOT)} reaches up to {sorted(reached)}"


def test_every_part_of_the_core_has_a_declared_layer():
    parts = {p.name for p in (ROOT / "hamu_core").iterdir() if p.is_dir() and (p / "__init__.py").exists()}
    assert parts <= set(CORE_LAYERS), parts - set(CORE_LAYERS)


def test_the_scanner_sees_every_kind_of_import(tmp_path):
    source = tmp_path / "m.py"
    source.write_text("import os.path\nfrom json import dumps\ndef f():\n    import streamlit as st\n"
                      "if True:\n    from hamu_ui import cache\n__import__('plotly.io')\nfrom . import sibling\n")
    assert imported_packages(source) == {"os", "json", "streamlit", "hamu_ui", "plotly"}


@pytest.mark.parametrize("path", modules("hamu_core"), ids=lambda p: str(p.relative_to(ROOT)))
def test_core_never_imports_streamlit_or_the_ui(path):
    assert not imported_packages(path) & {"streamlit", "hamu_ui", "pages"}, (
        f"{path.name} imports the UI layer; hamu_core must stay usable without Streamlit")


@pytest.mark.parametrize("path", modules("hamu_ui"), ids=lambda p: str(p.relative_to(ROOT)))
def test_ui_never_imports_pages(path):
    assert "pages" not in imported_packages(path)


def test_figures_draw_without_streamlit():
    assert "streamlit" not in imported_packages(ROOT / "hamu_ui" / "figures.py")


def test_there_is_something_to_check():
    assert len(modules("hamu_core")) >= 10 and len(modules("hamu_ui")) >= 4
