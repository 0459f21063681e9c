"""Everything a user needs to judge one unlearned model, in one call: ``evaluate``.

Numbers are reported on the three splits (forget, retain, held-out test) and, where a
retrained model is given, against it: retraining on the retain set alone is exact
unlearning, so the target is "behave like the retrained model", not "score zero on the
forget set" (for random forgetting the retrained model still classifies most forget
samples correctly). The attacks live in ``hamu_core.evaluation.privacy`` and layer-wise CKA in
``hamu_core.evaluation.embedding``; this module computes per-sample outputs once per model, assembles
the result, and ``verdict`` turns it into three plain sentences, each number with its
interval, that say when a test cannot tell at the sample size at hand.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from scipy.stats import ks_2samp, norm
from torch import nn

from hamu_core.data.labelled import LabelledData
from hamu_core.data.selection import validate_forget_set
from hamu_core.evaluation.embedding import forward_batched, layer_cka
from hamu_core.evaluation.privacy import (
    AS_RETRAINING,
    CANNOT_TELL,
    CLOSE_EFFICACY,
    FAR_AUC,
    OVER_FORGOTTEN,
    REMEMBERED,
    AttackResult,
    Estimate,
    cannot_tell,
    membership_attacks,
    read_auc,
)
from hamu_core.jsonable import to_jsonable
from hamu_core.models.training import retain_ids

SPLITS = ("forget", "retain", "test")
PROBE_SIZE = 512  # samples in the fixed probe batch for layer-wise CKA
GREEN, AMBER, RED, GREY = "green", "amber", "red", "grey"  # the verdict's statuses
STATUS_WORDS = {GREEN: "within noise", AMBER: "some way off", RED: "far off",
                GREY: "cannot tell at this size"}  # each status in words, for badges
EFFICACY_WORDS = {AS_RETRAINING: "the same within noise",  # MIA-efficacy against the retrained model's
                  REMEMBERED: "lower, so it calls more of them members than after retraining",
                  OVER_FORGOTTEN: "higher, so it calls more of them unseen than after retraining"}
CLOSE_ACCURACY = 0.03  # |Δ accuracy| at most this (3 points) reads as "as good as retraining"
FAR_ACCURACY = 0.10  # beyond this (10 points) the difference is plain to see


@dataclass(frozen=True, eq=False)
class SampleOutputs:
    """One model's per-sample numbers on a list of ids (all arrays aligned with ``ids``)."""

    ids: np.ndarray
    labels: np.ndarray
    pred: np.ndarray  # argmax class
    loss: np.ndarray  # cross-entropy −log p(label)
    entropy: np.ndarray  # −Σ p log p of the predicted distribution
    max_prob: np.ndarray  # top-class probability

    @classmethod
    def from_logits(cls, ids: np.ndarray, logits: torch.Tensor, labels: torch.Tensor) -> SampleOutputs:
        """Per-sample numbers from (n, classes) logits; ValueError if any logit is NaN or Inf."""
        bad = ~torch.isfinite(logits).all(dim=1)
        if bad.any():
            bad_ids = np.asarray(ids)[bad.numpy()][:10].tolist()
            raise ValueError(f"the model outputs NaN or Inf for sample ids {bad_ids}")
        log_p = F.log_softmax(logits.double(), dim=1)
        return cls(ids=np.asarray(ids), labels=labels.numpy(), pred=log_p.argmax(1).numpy(),
                   loss=F.nll_loss(log_p, labels, reduction="none").numpy(),
                   entropy=-(log_p.exp() * log_p).sum(1).numpy(), max_prob=log_p.max(1).values.exp().numpy())

    @property
    def accuracy(self) -> float:
        return float(np.mean(self.pred == self.labels))

    def attack_features(self) -> np.ndarray:
        """(n, 3) array in ``privacy.ATTACK_FEATURES`` order."""
        return np.column_stack([self.loss, self.entropy, self.max_prob])


def sample_outputs(model: nn.Module, data: LabelledData, ids: np.ndarray) -> SampleOutputs:
    """Per-sample loss, entropy, confidence and prediction of ``model`` on ``ids``."""
    x, y = data.tensors(ids)
    return SampleOutputs.from_logits(ids, forward_batched(model, x), y)


def split_ids(data: LabelledData, forget_ids) -> dict[str, np.ndarray]:
    """Sorted forget, retain and test ids; ValueError for an empty, unknown or test forget set."""
    forget = validate_forget_set(data, forget_ids)
    if len(data.test_ids) == 0:
        raise ValueError(f"{data.name}: the test split is empty; evaluation compares against held-out samples")
    return {"forget": forget, "retain": retain_ids(data, forget), "test": np.sort(data.test_ids)}


def wilson_interval(proportion: float, n: int, level: float = 0.95) -> tuple[float, float]:
    """Wilson score interval of a proportion measured on ``n`` samples (Wilson 1927).

    The set of true proportions p for which the observed one lies within z standard errors
    sqrt(p(1 − p)/n): unlike the normal approximation it stays inside [0, 1] and does not
    shrink to a point at 0% or 100%, which is where forget accuracies live.
    """
    if n < 1:
        raise ValueError(f"n must be at least 1, got {n}")
    z = norm.ppf(0.5 + level / 2)
    centre = (proportion + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(proportion * (1 - proportion) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return max(0.0, centre - half), min(1.0, centre + half)


def mean_gap_half_width(a: np.ndarray, b: np.ndarray, level: float = 0.95) -> float:
    """Half-width of the normal ``level`` interval of mean(a) − mean(b) for two samples of per-sample numbers.

    The standard error of a difference of means, √(s_a²/n_a + s_b²/n_b): what "the same
    mean loss within noise" means for the forget set's losses under two models.
    """
    if len(a) < 2 or len(b) < 2:
        return math.inf
    spread = math.sqrt(float(np.var(a, ddof=1)) / len(a) + float(np.var(b, ddof=1)) / len(b))
    return float(norm.ppf(0.5 + level / 2)) * spread


@dataclass(frozen=True)
class ModelScores:
    """One model's accuracy, mean loss and membership-attack results on the three splits."""

    accuracy: dict[str, float]  # split → fraction correct in [0, 1]
    loss: dict[str, float]  # split → mean cross-entropy
    mia_auc: float  # privacy.loss_attack_auc on forget vs test
    mia_auc_interval: tuple[float, float]
    mia_efficacy: float  # privacy.membership_attacks: fraction of forget called non-member
    mia_efficacy_interval: tuple[float, float]

    def salun_row(self) -> dict[str, float]:
        """The SalUn table's columns in percent (Fan et al. 2024, "SalUn", Table 1).

        UA (unlearning accuracy) = 100 − forget accuracy; RA = retain accuracy; TA = test
        accuracy; MIA-efficacy as defined in ``privacy.membership_attacks``.
        """
        return {"UA": 100 * (1 - self.accuracy["forget"]), "RA": 100 * self.accuracy["retain"],
                "TA": 100 * self.accuracy["test"], "MIA-efficacy": 100 * self.mia_efficacy}


def _scores(outputs: dict[str, SampleOutputs], attacks: AttackResult) -> ModelScores:
    return ModelScores(
        accuracy={s: o.accuracy for s, o in outputs.items()},
        loss={s: float(o.loss.mean()) for s, o in outputs.items()},
        mia_auc=attacks.auc, mia_auc_interval=attacks.auc_interval,
        mia_efficacy=attacks.efficacy, mia_efficacy_interval=attacks.efficacy_interval)


def avg_gap(scores: ModelScores, reference: ModelScores) -> float:
    """SalUn's Avg. Gap: mean absolute difference of UA, RA, TA and MIA-efficacy (percent) to the reference."""
    row, ref = scores.salun_row(), reference.salun_row()
    return float(np.mean([abs(row[k] - ref[k]) for k in row]))


def tug_of_war(accuracy: dict[str, float], reference: dict[str, float]) -> float:
    """RUM's tug-of-war score, (1 − |ΔA_f|)·(1 − |ΔA_r|)·(1 − |ΔA_t|), accuracies in [0, 1].

    Zhao et al. 2024, "What makes unlearning hard and what to do about it": Δ is the
    accuracy difference to the retrained model on forget, retain and test; 1 is a perfect match.
    """
    return math.prod(1 - abs(accuracy[s] - reference[s]) for s in SPLITS)


def probe_ids(data: LabelledData, seed: int) -> np.ndarray:
    """A fixed, seeded batch of up to ``PROBE_SIZE`` sample ids from the whole dataset."""
    rng = np.random.default_rng(seed)
    return np.sort(rng.choice(np.sort(data.ids), min(PROBE_SIZE, len(data.ids)), replace=False))


def class_accuracy(data: LabelledData, outputs: dict[str, dict[str, SampleOutputs]]) -> pd.DataFrame:
    """Per-class accuracy on the forget and test splits, one column per model (original/current/retrain)."""
    rows = []
    for split in ("forget", "test"):
        labels = outputs["current"][split].labels
        for label in np.unique(labels):
            mask = labels == label
            row = {"split": split, "class": data.classes[label], "n": int(mask.sum())}
            row.update({model: float(np.mean(o[split].pred[mask] == label)) for model, o in outputs.items()})
            rows.append(row)
    return pd.DataFrame(rows, columns=["split", "class", "n", *outputs])


def attack_frame(outputs: dict[str, SampleOutputs], attacks: AttackResult) -> pd.DataFrame:
    """Per-sample loss, entropy and member probability under the attack, with an ``id`` column."""
    return pd.concat([pd.DataFrame({"id": o.ids, "split": split, "label": o.labels, "loss": o.loss,
                                    "entropy": o.entropy, "attack_score": attacks.member_probability[split]})
                      for split, o in outputs.items()], ignore_index=True)


@dataclass(frozen=True, eq=False)
class Evaluation:
    """The result of ``evaluate``: scores per model, comparisons to the retrain reference, tables.

    Forget quality follows TOFU (Maini et al. 2024, "TOFU: a task of fictitious unlearning"),
    which takes the p-value of a two-sample Kolmogorov–Smirnov test between the unlearned and
    the retrained model's per-sample statistics on the forget set; here the statistic is the
    per-sample loss (TOFU uses a truth ratio, which needs paraphrased answers). A high p-value
    means the two loss distributions cannot be told apart. Agreement is the fraction of forget
    samples on which both models predict the same class. Comparisons that need the retrained
    model (gaps, KS, agreement, ToW, Avg. Gap) are NaN without it; ``cka`` is empty without
    the original model.
    """

    sizes: dict[str, int]  # split → number of samples
    n_classes: int  # classes in the dataset: guessing scores 1 / n_classes
    current: ModelScores
    retrain: ModelScores | None
    original: ModelScores | None
    ks_statistic: float  # two-sample KS statistic, forget losses of current vs retrained model
    ks_pvalue: float  # its p-value: TOFU's forget quality, on losses; high = alike
    agreement: float  # fraction of forget samples where current and retrained model predict the same class
    forget_loss_gap: tuple[float, float]  # (mean forget loss − the retrained model's, its 95% half-width); NaN without
    tug_of_war: float  # see tug_of_war()
    avg_gap: float  # see avg_gap(), in percentage points
    class_accuracy: pd.DataFrame  # see class_accuracy()
    samples: pd.DataFrame  # see attack_frame(), current model
    cka: pd.DataFrame  # columns layer, cka: current vs original on the probe batch (layer_cka)

    def gaps(self) -> dict[str, dict[str, float]]:
        """Current minus retrained model, accuracy and mean loss per split (NaN without retrain)."""
        ref = self.retrain
        return {metric: {s: getattr(self.current, metric)[s] - (math.nan if ref is None else getattr(ref, metric)[s])
                         for s in SPLITS} for metric in ("accuracy", "loss")}

    def auc_estimate(self, name: str) -> Estimate | None:
        """The loss-attack AUC of model ``name`` ("current", "retrain" or "original") with its interval."""
        scores = getattr(self, name)
        return None if scores is None else Estimate(scores.mia_auc, tuple(scores.mia_auc_interval))

    def accuracy_estimate(self, name: str, split: str) -> Estimate | None:
        """Model ``name``'s accuracy on ``split`` with its Wilson 95% interval (``wilson_interval``)."""
        scores = getattr(self, name)
        if scores is None:
            return None
        return Estimate(scores.accuracy[split], wilson_interval(scores.accuracy[split], self.sizes[split]))

    def to_dict(self) -> dict:
        """Scalars and small tables as plain Python (NaN → None): safe for ``json.dumps``."""
        out = {f.name: getattr(self, f.name) for f in fields(self)}
        out = {k: v for k, v in out.items() if not isinstance(v, pd.DataFrame)}
        out.update({k: None if out[k] is None else asdict(out[k]) for k in ("current", "retrain", "original")})
        out["gaps"] = self.gaps()
        out["class_accuracy"] = self.class_accuracy.to_dict(orient="records")
        out["cka"] = self.cka.to_dict(orient="records")
        return to_jsonable(out)


def evaluate(model: nn.Module, data: LabelledData, forget_ids, *, retrain: nn.Module | None = None,
             original: nn.Module | None = None, seed: int = 0, n_boot: int = 200) -> Evaluation:
    """Evaluate ``model`` after forgetting ``forget_ids``, against the retrain reference if given.

    Runs one batched no-grad forward pass per model and split, both membership attacks per
    model (seeded, ``n_boot`` bootstrap resamples for the intervals), and layer-wise CKA to the
    original model on a seeded probe batch. No model is changed.
    """
    ids = split_ids(data, forget_ids)
    models = {"original": original, "current": model, "retrain": retrain}
    outputs = {name: {s: sample_outputs(m, data, ids[s]) for s in SPLITS}
               for name, m in models.items() if m is not None}
    attacks = {name: membership_attacks(*(o[s].attack_features() for s in SPLITS), seed=seed, n_boot=n_boot)
               for name, o in outputs.items()}
    scores = {name: _scores(outputs[name], attacks[name]) for name in outputs}
    current, ref = scores["current"], scores.get("retrain")
    has_ref = ref is not None
    ks = ks_2samp(outputs["current"]["forget"].loss, outputs["retrain"]["forget"].loss) if has_ref else None
    agree = np.mean(outputs["current"]["forget"].pred == outputs["retrain"]["forget"].pred) if has_ref else math.nan
    loss_gap = (math.nan, math.nan)
    if has_ref:
        mine, theirs = outputs["current"]["forget"].loss, outputs["retrain"]["forget"].loss
        loss_gap = (float(mine.mean() - theirs.mean()), mean_gap_half_width(mine, theirs))
    cka = pd.DataFrame(columns=["layer", "cka"])
    if original is not None:
        cka = layer_cka(model, original, data.tensors(probe_ids(data, seed))[0])
    return Evaluation(
        sizes={s: len(ids[s]) for s in SPLITS}, n_classes=data.n_classes, current=current, retrain=ref,
        original=scores.get("original"),
        ks_statistic=float(ks.statistic) if has_ref else math.nan, ks_pvalue=float(ks.pvalue) if has_ref else math.nan,
        agreement=float(agree), forget_loss_gap=loss_gap,
        tug_of_war=tug_of_war(current.accuracy, ref.accuracy) if has_ref else math.nan,
        avg_gap=avg_gap(current, ref) if has_ref else math.nan,
        class_accuracy=class_accuracy(data, outputs), samples=attack_frame(outputs["current"], attacks["current"]),
        cka=cka,
    )


@dataclass(frozen=True)
class Finding:
    """One question of the verdict, a status and one plain sentence."""

    question: str  # "Forgotten?", "Cost?" or "Attack?"
    status: str  # GREEN, AMBER, RED or GREY; STATUS_WORDS says each in words
    sentence: str


@dataclass(frozen=True)
class Verdict:
    """Three findings the report page and the CLI print: forgotten? at what cost? what does an attack see?"""

    forgotten: Finding
    cost: Finding
    attack: Finding


def _light(distance: float, close: float, far: float) -> str:
    return GREEN if abs(distance) <= close else AMBER if abs(distance) <= far else RED


def _forgotten(ev: Evaluation) -> Finding:
    """Forget accuracy against retraining; the original model is the remembering reference (``cannot_tell``)."""
    cur, ref, orig = (ev.accuracy_estimate(name, "forget") for name in ("current", "retrain", "original"))
    if ref is None:
        test = ev.accuracy_estimate("current", "test")
        remembered = cur.value - test.value > FAR_ACCURACY and cur.low > test.high
        return Finding("Forgotten?", RED if remembered else AMBER,
                       f"Forget accuracy is {cur.text(True)} and test accuracy {test.text(True)}"
                       + ("; the model still fits the forget samples better than unseen data." if remembered else
                          "; without a retrained model to compare with, this is only a rough guide."))
    head = f"Forget accuracy is {cur.text(True)} against the retrained model's {ref.text(True)}"
    why = cannot_tell(cur, ref, orig, far=FAR_ACCURACY, percent=True)
    delta = cur.value - ref.value
    if why is not None:
        return Finding("Forgotten?", GREY, f"{head}: this test cannot tell at this sample size: {why}.")
    if cur.matches(ref.value, CLOSE_ACCURACY):
        gap, half = ev.forget_loss_gap
        if abs(gap) <= half:
            return Finding("Forgotten?", GREEN, f"{head}, and its mean forget loss is within ±{half:.2g} of the "
                           "retrained model's: it matches retraining within noise at this size, as if never seen.")
        side = ("lower: the model is still more confident on them than retraining would be, so it partly "
                "remembers them" if gap < 0 else "higher: the model is pushed further away from them than retraining "
                "would be (over-forgetting in confidence)")
        return Finding("Forgotten?", AMBER, f"{head}: the accuracies match within noise, but its mean forget loss is "
                       f"{gap:+.3g} from the retrained model's (beyond ±{half:.2g}), {side}.")
    chance = 1 / ev.n_classes
    if delta > 0 and cur.matches(chance, CLOSE_ACCURACY):
        return Finding("Forgotten?", AMBER, f"{head}. That is within noise of chance ({chance:.0%} for {ev.n_classes} "
                       "classes): the model is guessing on the forget samples, not remembering them, where retraining "
                       f"would give {ref.value:.0%}.")
    if delta > 0:
        before = "" if orig is None else f" (original model {orig.text(True)})"
        how = (f"still remembered, as before unlearning{before}" if orig is not None
               and cur.matches(orig.value, CLOSE_ACCURACY) else f"still partly remembered{before}")
    else:
        how = "pushed further than retraining would (over-forgetting)"
    return Finding("Forgotten?", _light(delta, CLOSE_ACCURACY, FAR_ACCURACY), f"{head}: the forget set is {how}.")


def _cost(ev: Evaluation) -> Finding:
    """Retain or test accuracy (whichever is further off) against retraining, else test accuracy against the original.

    Against the original model only a drop counts: unlearning that raises test accuracy costs nothing.
    """
    if ev.retrain is None and ev.original is None:
        retain, test = ev.accuracy_estimate("current", "retain"), ev.accuracy_estimate("current", "test")
        return Finding("Cost?", AMBER, f"Retain accuracy is {retain.text(True)} and test accuracy {test.text(True)}; "
                       "give the original or retrained model to measure the cost.")
    if ev.retrain is not None:
        split = max(("retain", "test"), key=lambda s: abs(ev.current.accuracy[s] - ev.retrain.accuracy[s]))
        reference, model = "retrain", "retrained"
    else:
        split, reference, model = "test", "original", "original"
    cur, ref = ev.accuracy_estimate("current", split), ev.accuracy_estimate(reference, split)
    drop = cur.value - ref.value
    head = (f"{split.capitalize()} accuracy is {cur.text(True)} against the {model} model's {ref.text(True)} "
            f"({drop * 100:+.1f} points)")
    if cur.matches(ref.value, CLOSE_ACCURACY):
        return Finding("Cost?", GREEN, f"{head}: it matches the {model} model within noise at this size.")
    status = _light(drop if ev.retrain is not None else min(drop, 0.0), CLOSE_ACCURACY, FAR_ACCURACY)
    return Finding("Cost?", status, f"{head}: {'below' if drop < 0 else 'above'} the {model} model beyond noise "
                   "at this size.")


def _attack(ev: Evaluation) -> Finding:
    """The loss attack's reading (``privacy.read_auc``), then MIA-efficacy reconciled with it.

    The status follows the loss attack: GREY when it cannot tell, GREEN when it matches
    retraining, else AMBER or RED by the distance to the reference (``FAR_AUC``). MIA-efficacy
    stands "the same" when the retrained model's value lies in the current interval or
    within ``CLOSE_EFFICACY``, else lower (more called members) or higher. When it differs
    from retraining while the loss attack matches, the attacks disagree and GREEN becomes AMBER.
    """
    reading = read_auc(*(ev.auc_estimate(name) for name in ("current", "retrain", "original")))
    status = {CANNOT_TELL: GREY, AS_RETRAINING: GREEN}.get(reading.standing,
                                                         AMBER if abs(reading.distance) <= FAR_AUC else RED)
    efficacy = Estimate(ev.current.mia_efficacy, tuple(ev.current.mia_efficacy_interval))
    said = ("MIA-efficacy (the share of forget samples an attack trained on retain vs test outputs calls unseen) "
            f"is {efficacy.text(True)}")
    if ev.retrain is None:
        return Finding("Attack?", status, f"{reading.sentence} {said}, with no retrained model to compare it with.")
    reference = Estimate(ev.retrain.mia_efficacy, tuple(ev.retrain.mia_efficacy_interval))
    standing = (AS_RETRAINING if efficacy.matches(reference.value, CLOSE_EFFICACY)
                else REMEMBERED if efficacy.value < reference.value else OVER_FORGOTTEN)
    if reading.standing == standing:
        agreement = ", which agrees with the loss threshold"
    elif reading.standing == CANNOT_TELL:
        agreement = "" if standing == AS_RETRAINING else ", a hint the loss threshold cannot confirm at this size"
    else:
        agreement = ", which the loss threshold does not show: the two attacks disagree, so neither settles it alone"
        status = AMBER if status == GREEN else status
    return Finding("Attack?", status, f"{reading.sentence} {said} against the retrained model's "
                   f"{reference.text(True)}: {EFFICACY_WORDS[standing]}{agreement}.")


def verdict(evaluation: Evaluation) -> Verdict:
    """Plain-language reading of an ``Evaluation``, judged against the retrained model when present.

    Every number comes with its 95% interval: bootstrap for the attacks (``privacy``), Wilson
    for accuracies (``wilson_interval``). A difference is "within noise" when the reference
    value lies in the current interval or within the CLOSE_* margin. Forgetting and the attack
    get GREY, "cannot tell at this size", by the rule of ``privacy.cannot_tell``: the
    original's and the retrained model's intervals overlap, or the current interval contains
    both their values (without the original, the retrained value plus the FAR_* margin stands
    in for it). A forget accuracy above retraining's but within noise of chance, 1/n_classes,
    reads as guessing (AMBER), not remembering. Without a retrain reference, forgetting is
    judged against the held-out test accuracy: red when the forget set is still fitted clearly
    better than unseen data beyond noise, otherwise amber (a fair proxy for random forgetting,
    not for a whole class, so never green); the cost is judged against the original model's
    test accuracy.
    """
    return Verdict(_forgotten(evaluation), _cost(evaluation), _attack(evaluation))
