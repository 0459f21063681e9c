"""The picture of one HAMU problem, and the teaching view that shows it.

The figure is checked against the ``PlaneProblem`` it draws: the HAMU arrow ends at the
step, the disc has radius R, the half-plane holds only points that meet the guarantee, and
a step too long for the chart is named instead of drawn. The view runs under ``AppTest``
on a real HAMU run: replay slider, what-if sliders that move the branch, and no exception.
"""

from __future__ import annotations

import numpy as np
import pytest
from streamlit.testing.v1 import AppTest

from hamu_core.data.selection import select_class
from hamu_core.rules.plane import plane_problem
from hamu_core.runs.live import LiveRun
from hamu_ui.plane_figures import half_plane, plane_figure
from hamu_ui.session import StudioSession
from hamu_ui.teaching_view import EXPANDER_KEY, FORMULAS, branch_words

CASES = {
    "rectified": (1.0, 1.0, 0.3, 1.0, 0.5),
    "direct": (1.0, 1.0, -0.9, 1.0, 0.5),
    "colinear": (1.0, 1.0, 1.0, 1.0, 0.5),
    "infeasible": (1.0, 0.1, 0.3, 1.0, 0.5),
    "zero_forget_grad": (1.0, 0.0, 0.0, 1.0, 0.5),
}


def trace(fig, prefix: str):
    matches = [t for t in fig.data if t.name.startswith(prefix)]
    assert len(matches) == 1, [t.name for t in fig.data]
    return matches[0]


@pytest.mark.parametrize("variant", ["hamu-q", "hamu-u"])
@pytest.mark.parametrize("branch", list(CASES))
def test_the_hamu_arrow_ends_at_the_step_inside_the_drawn_disc(branch, variant):
    problem = plane_problem(*CASES[branch], variant=variant)
    fig = plane_figure(problem)
    step = trace(fig, "HAMU step")
    assert step.name == f"HAMU step ({problem.branch})"
    np.testing.assert_allclose([step.x[-1], step.y[-1]], problem.step)
    disc = trace(fig, "Radius R")
    np.testing.assert_allclose(np.hypot(disc.x, disc.y), problem.radius)
    for name in ("GDiff", "GA", "PCGrad"):
        arrow = trace(fig, name)
        np.testing.assert_allclose([arrow.x[-1], arrow.y[-1]], problem.baselines[name])
        assert "scaled to R" in arrow.name
    assert {"g_r: retain gradient (direction)", "g_f: forget gradient (direction)"} <= {t.name for t in fig.data}


def test_the_half_plane_holds_only_steps_that_meet_the_guarantee():
    problem = plane_problem(1.0, 1.0, 0.3, 1.0, 0.5)
    area = trace(plane_figure(problem), "Half-plane")
    corners = np.column_stack([area.x, area.y])
    assert np.all(corners @ problem.constraint_normal >= problem.constraint - 1e-12)
    # The boundary line itself is drawn: two corners lie on g_f·Δ = B.
    assert np.sum(np.isclose(corners[:-1] @ problem.constraint_normal, problem.constraint)) == 2


def test_half_plane_clipping_of_the_view_square():
    normal = np.array([1.0, 0.0])
    np.testing.assert_allclose(half_plane(normal, 0.0, 1.0), [[0, -1], [1, -1], [1, 1], [0, 1]])
    assert half_plane(normal, 2.0, 1.0) is None  # the half-plane starts outside the view
    assert len(half_plane(np.array([1.0, 1.0]), 0.0, 1.0)) == 3  # a diagonal cut leaves a triangle


def test_a_step_far_outside_the_radius_is_named_not_drawn():
    problem = plane_problem(1.0, 0.001, 0.3, 1.0, 0.5)  # the paper's step: 500 R
    fig = plane_figure(problem)
    assert problem.branch == "infeasible"
    assert fig.layout.xaxis.range[1] < 2  # the view stays on the disc
    assert any("500× R" in a.text for a in fig.layout.annotations)
    assert not [t for t in fig.data if t.name.startswith("Paper's")]
    near = plane_figure(plane_problem(1.0, 0.4, 0.3, 1.0, 0.5))  # the paper's step: 1.25 R, drawn
    np.testing.assert_allclose(trace(near, "Paper's")["x"][-1], 1.25)


@pytest.mark.parametrize("branch", list(CASES))
def test_every_branch_has_words_and_a_formula(branch):
    problem = plane_problem(*CASES[branch])
    assert problem.branch in FORMULAS
    label = "zero gradient" if branch == "zero_forget_grad" else branch
    assert f"({label})" in branch_words(problem, capped=True)


def view(session):
    from hamu_ui import teaching_view

    teaching_view.show(session)


def opened(at: AppTest) -> AppTest:
    """The view with its expander open, as a click would leave it (AppTest cannot click one)."""
    at.session_state[EXPANDER_KEY] = True
    return at


@pytest.fixture(scope="module")
def session(digits, model):
    live = LiveRun(("key",), digits, model, select_class(digits, 3), "hamu-q",
                   {"lr": 0.05, "constraint": 0.01, "mode": "full"}, seed=0)
    live.step(3)
    studio = StudioSession()
    studio.live = live
    return studio


def test_the_view_replays_steps_and_what_if_moves_the_branch(session):
    at = opened(AppTest.from_function(view, args=(session,), default_timeout=60)).run()
    assert not at.exception, [e.message for e in at.exception]
    assert at.select_slider(key="unlearn.plane.step").options == ["1", "2", "3"]
    assert "Full-gradient mode: this picture is exact" in " ".join(c.value for c in at.caption)
    at.select_slider(key="unlearn.plane.step").set_value(1).run()
    at.toggle(key="unlearn.plane.whatif").set_value(True).run()
    assert "this picture is exact" not in " ".join(c.value for c in at.caption)  # a what-if is no replay
    at.slider(key="unlearn.plane.1.theta").set_value(179.0).run()
    assert not at.exception
    assert any("(direct)" in m.value for m in at.markdown)  # opposite gradients: the easy branch
    slider_b = at.slider(key="unlearn.plane.1.B")
    at.slider(key="unlearn.plane.1.theta").set_value(10.0).run()
    slider_b.set_value(slider_b.max).run()
    assert any("(infeasible)" in m.value for m in at.markdown)
    at.toggle(key="unlearn.plane.formulas").set_value(True).run()
    assert at.latex and not at.exception


def test_before_any_step_the_view_offers_only_the_example(digits, model):
    studio = StudioSession()
    studio.live = LiveRun(("key",), digits, model, select_class(digits, 4), "hamu-q", {}, seed=0)
    at = opened(AppTest.from_function(view, args=(studio,), default_timeout=60)).run()
    assert not at.exception, [e.message for e in at.exception]
    assert not at.select_slider and at.slider(key="unlearn.plane.0.theta")


def test_a_full_gradient_runs_steps_are_replayed_exactly(session):
    # The plane holds every full-gradient step, so the replay is the step the run took.
    for record in session.live.history:
        drawn = plane_problem(record.retain_grad_norm, record.forget_grad_norm, record.cos_rf, record.radius,
                              record.constraint)
        assert drawn.branch == record.branch
        assert np.linalg.norm(drawn.step) == pytest.approx(record.step_norm, rel=1e-5)
        assert drawn.forget_gain == pytest.approx(record.info["predicted_constraint_gain"], rel=1e-5, abs=1e-9)


def test_a_closed_view_draws_nothing(session):
    at = AppTest.from_function(view, args=(session,), default_timeout=60).run()
    assert not at.exception and not at.get("plotly_chart") and not at.slider


def test_a_per_tensor_run_is_called_an_approximation(digits, model):
    studio = StudioSession()
    studio.live = LiveRun(("key",), digits, model, select_class(digits, 5), "hamu-q", {}, seed=0)
    studio.live.step(1)
    at = opened(AppTest.from_function(view, args=(studio,), default_timeout=60)).run()
    assert not at.exception, [e.message for e in at.exception]
    assert "an approximation" in " ".join(c.value for c in at.caption)


def test_an_exact_infeasible_step_taken_is_drawn_with_the_view_widened():
    problem = plane_problem(1.0, 0.1, 0.3, 1.0, 0.5, infeasible_step="exact")  # the step itself: 5 R
    fig = plane_figure(problem)
    np.testing.assert_allclose([trace(fig, "HAMU step").x[-1]], [5.0])
    assert fig.layout.xaxis.range[1] >= 5.0 and not [a for a in fig.layout.annotations if "off the chart" in a.text]
