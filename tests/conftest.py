"""Shared test settings: hypothesis runs reproducibly and without per-example deadlines.

The machine is shared and slow to start torch, so a wall-clock deadline would only make
property tests flaky; derandomize makes every run explore the same examples.
"""

from hypothesis import settings

settings.register_profile("ci", deadline=None, derandomize=True)
settings.load_profile("ci")
