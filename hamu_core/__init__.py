"""HAMU Studio's core: hardness-aware multi-objective unlearning in plain PyTorch.

No Streamlit here: everything is usable from a notebook, a script or the CLI exactly as
the app uses it.
"""

from hamu_core.rules.solver import HamuSolution, hamu_update

__all__ = ["HamuSolution", "hamu_update"]
