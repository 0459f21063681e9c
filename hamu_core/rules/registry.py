"""The explicit registry of update rules: method name → rule class, plus one-line help.

A plain dict, filled here and nowhere else (no registration by import side effect), so
the comparison page, the CLI and the conformance tests all iterate the same list.
"""

from __future__ import annotations

from hamu_core.rules.baselines import (
    FineTune,
    GradientAscent,
    GradientDifference,
    GradientRectified,
    KLRetain,
    NegGradPlus,
    PCGrad,
    Scrub,
)
from hamu_core.rules.hamu import HamuQ, HamuU
from hamu_core.rules.rule import UpdateRule

METHODS: dict[str, type[UpdateRule]] = {
    "hamu-q": HamuQ,
    "hamu-u": HamuU,
    "ft": FineTune,
    "ga": GradientAscent,
    "gdiff": GradientDifference,
    "neggrad+": NegGradPlus,
    "kl": KLRetain,
    "scrub": Scrub,
    "gru": GradientRectified,
    "pcgrad": PCGrad,
}

METHOD_HELP: dict[str, str] = {
    "hamu-q": "HAMU-Q: guarantee forget progress B per step at the least retain cost.",
    "hamu-u": "HAMU-U: guarantee the retain loss falls by B per step, forget as much as possible.",
    "ft": "Fine-tune on retain data only; forgetting happens by drift.",
    "ga": "Gradient ascent on the forget loss; fast, but nothing protects retain utility.",
    "gdiff": "Gradient difference: average of retain descent and forget ascent.",
    "neggrad+": "Weighted gradient difference: α·retain descent + (1−α)·forget ascent.",
    "kl": "Forget ascent while keeping retain outputs close (KL) to the original model.",
    "scrub": "SCRUB: stay near the original on retain data, move away from it on forget data.",
    "gru": "Gradient-rectified: forget ascent with its retain-harming part projected out.",
    "pcgrad": "PCGrad: project retain and forget directions off each other when they conflict.",
}


def make_rule(method: str, **settings) -> UpdateRule:
    """Build the rule registered under ``method`` with the given settings.

    Raises ValueError naming the method when it is unknown, and the rule's own ValueError
    naming the field when a setting is out of range.
    """
    if method not in METHODS:
        raise ValueError(f"method must be one of {sorted(METHODS)}, got {method!r}")
    try:
        return METHODS[method](**settings)
    except TypeError as err:
        raise ValueError(f"{method}: {err}") from None
