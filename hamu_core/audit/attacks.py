"""Per-sample membership attacks on a shadow bank, and what they say about the forget set.

The population loss attack (``hamu_core.evaluation.privacy``) uses one threshold for every sample, so
it confuses "easy" samples with remembered ones. The attacks here calibrate each sample on
the shadows of ``hamu_core.audit.shadows``: LiRA (online and offline), RMIA and, for an unlearned
model, U-LiRA, with the loss attack kept as the cheap baseline. Members are the forget
samples, non-members the test samples; each attack is run on the original, the current and
the retrained model, and every number carries a stratified bootstrap 95 % interval.
``Audit`` gathers the results and reads them: its verdict rests on the strongest attack.
"""

from __future__ import annotations

import copy
import dataclasses
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch
from torch import nn

from hamu_core.audit import attack_scores as S
from hamu_core.audit.attack_verdict import exposure_sentence, interval_text
from hamu_core.audit.shadows import ShadowBank, map_over_shadows, stacked_logits
from hamu_core.config import DEFAULTS
from hamu_core.data.labelled import LabelledData
from hamu_core.data.selection import validate_forget_set
from hamu_core.evaluation.embedding import forward_batched
from hamu_core.evaluation.privacy import Estimate, bootstrap_interval
from hamu_core.evaluation.roc import min_fpr, resolved, roc_auc, roc_curve, tpr_at_fpr
from hamu_core.jsonable import to_jsonable
from hamu_core.models.training import Progress
from hamu_core.runs.experiment import unlearning_run

ATTACKS = ("loss", "lira_offline", "lira", "rmia", "ulira")
ATTACK_NAMES = {"loss": "the loss threshold (Yeom et al. 2018)", "lira_offline": "offline LiRA",
                "lira": "LiRA (Carlini et al. 2022)", "rmia": "RMIA (Zarifzadeh et al. 2024)",
                "ulira": "U-LiRA (Hayes et al. 2025)"}
MODELS = ("original", "current", "retrain")
FPR_LEVELS = (0.001, 0.01)  # the TPRs every result reports
POPULATION = 1000  # RMIA's population samples z, a seeded draw from the pool


def level_name(level: float) -> str:
    """``TPR@0.1%``, ``TPR@1%``: the column and line names of a TPR at an FPR level."""
    return f"TPR@{level:.1%}".replace(".0%", "%")


@dataclass(frozen=True, eq=False)
class AttackResult:
    """One attack on one model: AUC and TPR at each FPR level with intervals, the ROC, per-sample scores."""

    attack: str  # one of ATTACKS
    model: str  # one of MODELS
    auc: Estimate
    tpr: dict[float, Estimate]  # FPR level → TPR at FPR ≤ level
    resolved: dict[float, bool]  # FPR level → False when it lies below min_fpr (only "no false positive" is measured)
    min_fpr: float  # 1 / number of non-members
    roc_fpr: np.ndarray
    roc_tpr: np.ndarray
    scores: pd.DataFrame  # columns id, split ("forget" or "test"), score (higher: more likely a member)

    def to_dict(self) -> dict:
        return {"attack": self.attack, "model": self.model, "auc": self.auc.value, "auc_interval": self.auc.interval,
                "tpr": {str(level): {"value": e.value, "interval": e.interval, "resolved": self.resolved[level]}
                        for level, e in self.tpr.items()},
                "min_fpr": self.min_fpr, "roc": {"fpr": self.roc_fpr, "tpr": self.roc_tpr},
                "scores": self.scores.to_dict(orient="list")}


def attack_result(attack: str, model: str, ids: np.ndarray, is_forget: np.ndarray, scores: np.ndarray, *,
                  n_boot: int, seed: int) -> AttackResult:
    """Score ``scores`` (forget samples = members, the rest = non-members) with stratified bootstrap intervals.

    Every result draws the same resamples (same seed, same group sizes), so the intervals
    of two attacks or two models are paired.
    """
    groups = (scores[is_forget], scores[~is_forget])
    auc = Estimate(roc_auc(*groups), bootstrap_interval(roc_auc, groups, n_boot=n_boot, seed=seed))
    tpr = {level: Estimate(tpr_at_fpr(*groups, level),
                           bootstrap_interval(lambda m, n, lv=level: tpr_at_fpr(m, n, lv), groups, n_boot=n_boot,
                                              seed=seed))
           for level in FPR_LEVELS}
    n_negative = len(groups[1])
    fpr, tpr_curve = roc_curve(*groups)
    frame = pd.DataFrame({"id": ids, "split": np.where(is_forget, "forget", "test"), "score": scores})
    return AttackResult(attack, model, auc, tpr, {lv: resolved(lv, n_negative) for lv in FPR_LEVELS},
                        min_fpr(n_negative), fpr, tpr_curve, frame)


@dataclass(frozen=True, eq=False)
class Audit:
    """Every attack's result on every model, read together."""

    results: dict[tuple[str, str], AttackResult]  # (attack, model) → result
    n_shadows: int
    skipped: dict[str, str]  # attack → why it was not run

    @property
    def attacks(self) -> tuple[str, ...]:
        return tuple(a for a in ATTACKS if (a, MODELS[0]) in self.results)

    def result(self, attack: str, model: str) -> AttackResult:
        return self.results[(attack, model)]

    def table(self) -> pd.DataFrame:
        """Attack × model → "value [low, high]" for AUC, TPR@0.1% and TPR@1% ("unresolved" below 1/n)."""
        rows = {}
        for (attack, model), r in self.results.items():
            row = {"AUC": interval_text(r.auc)}
            row.update({level_name(level): interval_text(r.tpr[level], percent=True)
                        + ("" if r.resolved[level] else " unresolved") for level in FPR_LEVELS})
            rows[(attack, model)] = row
        table = pd.DataFrame.from_dict(rows, orient="index")
        table.index = pd.MultiIndex.from_tuples(table.index, names=["attack", "model"])
        first = next(iter(self.results.values()))
        table.attrs["note"] = (f"unresolved: an FPR below 1/{round(1 / first.min_fpr)} = {first.min_fpr:.2%} cannot be "
                               "measured with this many test samples; the TPR shown is that of zero false positives")
        return table

    def strongest(self) -> str:
        """The attack with the highest lower bound of TPR@1% FPR on the original model (AUC if 1% is unresolved).

        Ties go to the higher TPR, then the higher AUC lower bound, then the earlier attack in ATTACKS.
        """
        def key(attack: str):
            r = self.result(attack, "original")
            level = FPR_LEVELS[-1]
            if not r.resolved[level]:
                return (r.auc.low, r.auc.value)
            return (r.tpr[level].low, r.tpr[level].value, r.auc.low)

        return max(self.attacks, key=lambda a: (key(a), -ATTACKS.index(a)))

    def exposure(self, model: str) -> pd.Series:
        """Forget-sample id → the strongest attack's score on ``model`` (higher: more exposed)."""
        attack = self.strongest()
        scores = self.result(attack, model).scores
        forget = scores[scores["split"] == "forget"]
        return pd.Series(forget["score"].to_numpy(), index=pd.Index(forget["id"].to_numpy(), name="id"),
                         name=f"{attack} score")

    def verdict(self) -> str:
        """Words on the strongest attack comparing now with the original and the retrained model, with intervals."""
        attack, level = self.strongest(), FPR_LEVELS[-1]
        results = {m: self.result(attack, m) for m in MODELS}
        if results["original"].resolved[level]:
            return exposure_sentence(ATTACK_NAMES[attack], {m: r.tpr[level] for m, r in results.items()}, level)
        return exposure_sentence(ATTACK_NAMES[attack], {m: r.auc for m, r in results.items()}, None)

    def to_dict(self) -> dict:
        """JSON-safe: every result with its ROC and per-sample scores, the strongest attack and the verdict."""
        return to_jsonable({"attacks": self.attacks, "models": MODELS, "fpr_levels": FPR_LEVELS,
                          "n_shadows": self.n_shadows, "skipped": self.skipped, "strongest": self.strongest(),
                          "verdict": self.verdict(), "results": [r.to_dict() for r in self.results.values()]})


def _confidence(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> np.ndarray:
    return S.logit_confidence(forward_batched(model, x), y)


def audit(models: dict[str, nn.Module], data: LabelledData, forget_ids, bank: ShadowBank, *, attacks=ATTACKS,
          unlearned_shadows: tuple[nn.Module, ...] | None = None, seed: int = 0, n_boot: int = 200) -> Audit:
    """Run ``attacks`` on the "original", "current" and "retrain" models of ``models``: forget vs test samples.

    LiRA's Gaussians are fitted on the whole pool, with one pooled variance per side when
    the bank has fewer than ``attack_scores.POOLED_BELOW`` shadows. RMIA compares against
    ``POPULATION`` pool samples drawn with ``seed`` and uses every shadow as a reference
    model (the online form). U-LiRA needs ``unlearned_shadows`` (``unlearn_shadows`` with
    the current model's method, settings and steps); without them it is left out and
    ``Audit.skipped`` says so.
    """
    unknown = [a for a in attacks if a not in ATTACKS]
    if unknown or not attacks:
        raise ValueError(f"attacks must name some of {ATTACKS}, got {list(attacks)}")
    missing = [m for m in MODELS if m not in models]
    if missing:
        raise ValueError(f"models needs {MODELS}; missing {missing}")
    forget = validate_forget_set(data, forget_ids)
    test = np.sort(data.test_ids)
    if len(test) == 0:
        raise ValueError(f"{data.name}: the test split is empty; the attacks need unseen samples")
    ids = np.r_[forget, test]
    is_forget = np.r_[np.ones(len(forget), bool), np.zeros(len(test), bool)]
    positions = bank.positions(ids)  # KeyError naming ids the shadows never drew from
    member = bank.masks[:, positions]  # (K, n)
    pooled = len(bank) < S.POOLED_BELOW
    skipped = {}
    if "ulira" in attacks and unlearned_shadows is None:
        skipped["ulira"] = "U-LiRA needs the shadows unlearned with the current model's method and steps"
    chosen = [a for a in ATTACKS if a in attacks and a not in skipped]
    if not chosen:
        raise ValueError(f"no attack left to run: {skipped['ulira']}")
    all_stat = bank.confidence(data)  # (K, n_pool)
    gaussians = S.fit_gaussians(all_stat, bank.masks, pooled=pooled).columns(positions)
    population = np.sort(np.random.default_rng(seed).choice(bank.pool_ids, min(POPULATION, len(bank.pool_ids)),
                                                            replace=False))
    reference = S.reference_log_probability(all_stat, bank.masks, offline=False)  # (n_pool,)
    reference_x, reference_z = reference[positions], reference[bank.positions(population)]
    x, y = data.tensors(ids)
    x_z, y_z = data.tensors(population)
    ulira = None
    if "ulira" in chosen:
        if len(unlearned_shadows) != len(bank):
            raise ValueError(f"unlearned_shadows has {len(unlearned_shadows)} models; the bank has {len(bank)}")
        ulira = S.ulira_gaussians(S.logit_confidence(stacked_logits(tuple(unlearned_shadows), x), y), member,
                                  is_forget, y.numpy(), pooled=pooled, seed=seed)
    results = {}
    for name in MODELS:
        phi = _confidence(models[name], x, y)
        # Scores are computed only for the attacks chosen; each closure binds this model's φ and name.
        scores = {"loss": lambda phi=phi: S.log_probability(phi),
                  "lira_offline": lambda phi=phi: S.lira_offline(phi, gaussians),
                  "lira": lambda phi=phi: S.lira_online(phi, gaussians),
                  "rmia": lambda phi=phi, name=name: S.rmia(S.log_probability(phi), reference_x,
                                                            S.log_probability(_confidence(models[name], x_z, y_z)),
                                                            reference_z),
                  "ulira": lambda phi=phi: S.lira_online(phi, ulira)}
        for attack in chosen:
            results[(attack, name)] = attack_result(attack, name, ids, is_forget, scores[attack](), n_boot=n_boot,
                                                    seed=seed)
    ordered = {(a, m): results[(a, m)] for a in chosen for m in MODELS}
    return Audit(ordered, len(bank), skipped)


def members_view(data: LabelledData, members: np.ndarray) -> LabelledData:
    """``data`` as a shadow saw it: its ``members`` form the training split, every other sample the test split."""
    trained = np.zeros(len(data.ids), dtype=bool)
    trained[data.rows(members)] = True
    return dataclasses.replace(data, is_test=~trained)


def unlearn_shadow(data: LabelledData, shadow: nn.Module, members: np.ndarray, forget: np.ndarray, method: str,
                   settings: dict, steps: int, seed: int, retain_batch_size: int) -> nn.Module:
    """One shadow after ``steps`` steps of ``method`` forgetting ``forget`` and keeping its other ``members``."""
    run = unlearning_run(members_view(data, members), copy.deepcopy(shadow).requires_grad_(True), forget, method,
                         settings, seed=seed, retain_batch_size=retain_batch_size)
    for _ in run.steps(steps, None):
        pass
    return run.model_.eval().requires_grad_(False)


def unlearn_shadows(bank: ShadowBank, data: LabelledData, forget_ids, method: str, settings: dict, steps: int,
                    seed: int, *, retain_batch_size: int = DEFAULTS.retain_batch_size, workers: int = 1,
                    progress: Progress | None = None) -> tuple[nn.Module, ...]:
    """Every shadow after the current model's request: U-LiRA's models (Hayes et al., SaTML 2025).

    Shadow k forgets the forget samples it trained on (forget ∩ its members) and keeps its
    other members, with the same method, settings, seed and number of steps as the target,
    built by ``experiment.unlearning_run`` exactly as the Studio builds the target's run and
    stepped with no stop rule. A shadow that holds no forget sample has nothing to unlearn
    and is returned as it is. ``workers`` > 1 spreads the shadows over spawned processes
    (``shadows.map_over_shadows``). The models line up with ``bank.models``.
    """
    if steps < 0:
        raise ValueError(f"steps must be >= 0, got {steps}")
    forget = validate_forget_set(data, forget_ids)
    member = bank.membership(forget)
    unlearned = list(bank.models)
    tasks = {k: (bank.models[k], bank.pool_ids[bank.masks[k]], forget[member[k]], method, dict(settings), steps, seed,
                 retain_batch_size) for k in range(len(bank)) if steps and member[k].any()}
    done = []

    def finished(k: int, model: nn.Module) -> None:
        unlearned[k] = model
        done.append(k)
        if progress is not None:
            progress(len(done) / len(tasks), f"U-LiRA: {len(done)} of {len(tasks)} shadows unlearned")

    map_over_shadows(unlearn_shadow, data, tasks, workers=workers, done=finished)
    return tuple(unlearned)
