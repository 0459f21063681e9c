"""``python -m hamu_core``: train, run, sweep, report and audit without a browser.

A thin layer over ``hamu_core.runs.experiment`` (one run, built as the app builds it),
``hamu_core.runs.sweep`` (many runs in worker processes) and the run store, so a script gets
exactly the histories the Studio shows and can reopen them there. Every mistake in the
arguments or the data ends with one plain line on stderr and exit code 2, an internal error
with one line and exit code 1; a traceback only with ``--debug``.

The modules that do the work (experiment, sweep, store, metrics, report) are imported
inside the verb that needs them: ``--help`` and a mistyped argument then answer in
about half the time, since scipy, pandas and the store stay unloaded.
"""

from __future__ import annotations

import argparse
import json
import sys
import traceback
from pathlib import Path

from hamu_core.config import DEFAULTS
from hamu_core.data.builtin import BUILTIN_DATASETS, DatasetUnavailable
from hamu_core.models.architectures import ARCHS, ModelConfig
from hamu_core.models.checkpoint import CheckpointError
from hamu_core.models.training import TrainConfig
from hamu_core.rules.registry import METHOD_HELP, METHODS
from hamu_core.rules.setting import declared, parse_setting
from hamu_core.runs.store_schema import StoreError
from hamu_core.runs.unlearner import DEFAULT_STOP, STOP_RULES

PROG = "python -m hamu_core"
EXAMPLES = f"""examples:
  {PROG} train --forget-class 3                 train the original and the retrain reference
  {PROG} run --method hamu-q --forget-class 3 --steps 100
  {PROG} run --method ga --forget-random 0.05 --steps 50 --set lr=0.005 --until infeasible
  torchrun --nproc_per_node 2 -m hamu_core run --method hamu-q --forget-class 3 --distributed   data-parallel steps
  {PROG} sweep --methods hamu-q,gdiff --constraints 0.01,0.025 --seeds 0,1 --forget-class 3 --workers 2 --csv sweep.csv
  {PROG} sweep --methods hamu-q,gdiff --seeds 0,1,2,3 --forget-class 3 --engine ray --address auto   on a Ray cluster
  {PROG} list
  {PROG} report 3f2a --format html --out-dir reports
  {PROG} shadows --shadows 16 --workers 2           train the shadow bank the audit needs, ahead of time
  {PROG} audit 3f2a --attack all --json audit.json   per-sample membership attacks on a stored run

Runs are stored in $HAMU_DATA_DIR/runs.sqlite (default ~/.cache/hamu-studio) or in --store DIR;
the Studio opens the same store, so a run started here can be reopened in the browser.
methods: {", ".join(METHODS)}"""
REPORT_FORMATS = ("html", "json", "csv")
USER_ERRORS = (ValueError, KeyError, FileNotFoundError, StoreError, DatasetUnavailable, CheckpointError)


class UsageError(Exception):
    """A bad argument found after parsing (an unknown run id, a bad setting): exit code 2."""


class _Parser(argparse.ArgumentParser):
    """argparse, but a bad argument prints one line instead of the usage block."""

    def error(self, message: str) -> None:
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


class ProgressBar:
    """The core's ``Progress`` callback (fraction done, message) drawn as a tqdm bar on stderr.

    Only on a terminal and without ``--quiet`` (tqdm's ``disable=None`` turns it off when
    stderr is not a TTY), so a script that reads stdout's ``name value`` lines or captures
    stderr never meets a bar. A fraction of 1 closes the bar; the next phase opens a new one.
    """

    def __init__(self, enabled: bool = True) -> None:
        self.enabled, self.bar = enabled, None

    def __call__(self, fraction: float, message: str) -> None:
        if self.bar is None:
            from tqdm import tqdm  # here, like the verbs' modules: --help stays fast

            self.bar = tqdm(total=1.0, file=sys.stderr, disable=None if self.enabled else True, leave=False,
                            bar_format="{percentage:3.0f}%|{bar:30}| {desc}")
        self.bar.n = min(max(fraction, 0.0), 1.0)
        self.bar.set_description_str(message)  # refreshes the bar
        if fraction >= 1:
            self.bar.close()
            self.bar = None


def _setting(text: str) -> tuple[str, str]:
    """``name=value`` split in two; the value is typed by the rule that declares the name (``_typed_settings``)."""
    name, sep, value = text.partition("=")
    if not sep or not name:
        raise argparse.ArgumentTypeError(f"expected name=value, got {text!r}")
    return name.strip(), value


def _typed_settings(methods: list[str], pairs: list[tuple[str, str]]) -> dict:
    """``--set`` values typed and range-checked by each method that declares the setting.

    The declaration in the rule's dataclass field (``hamu_core.rules.setting``) is the only
    place a range lives, so the CLI refuses exactly what the rule and the settings form refuse.
    """
    rules = [m for m in methods if m in METHODS]  # an unknown method is refused by name elsewhere
    settings = {}
    for name, text in pairs:
        owners = [m for m in rules if name in declared(METHODS[m])]
        if not owners:
            known = sorted({n for m in rules for n in declared(METHODS[m])})
            raise UsageError(f"--set {name}: no such setting for {', '.join(methods)}; settings: {', '.join(known)}")
        try:
            settings[name] = [parse_setting(METHODS[m], name, text) for m in owners][0]
        except ValueError as err:
            raise UsageError(f"--set {name}={text}: {err}") from None
    return settings


def _count(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a whole number >= 1, got {text}")
    return value


def _stop_rules(text: str) -> tuple[str, ...]:
    if text.strip() == "none":
        return ()
    rules = tuple(part.strip() for part in text.split(",") if part.strip())
    unknown = [r for r in rules if r not in STOP_RULES]
    if unknown:
        raise argparse.ArgumentTypeError(f"unknown stop rule {unknown[0]!r}; choose from {', '.join(STOP_RULES)} or none")
    return rules


def _listing(kind):
    def parse(text: str) -> list:
        try:
            return [kind(part) for part in text.split(",") if part.strip()]
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a comma-separated list, got {text!r}") from None
    return parse


def _add_recipe_options(parser: argparse.ArgumentParser) -> None:
    """Options of the data and the model recipe (train, run, sweep, shadows)."""
    data = parser.add_argument_group("data and model")
    data.add_argument("--dataset", default=DEFAULTS.dataset, choices=sorted(BUILTIN_DATASETS), metavar="NAME",
                      help=f"built-in dataset: {', '.join(sorted(BUILTIN_DATASETS))} (default {DEFAULTS.dataset})")
    data.add_argument("--data", metavar="FILE", help="your own CSV, NPZ or zip of class folders instead of --dataset")
    data.add_argument("--arch", default=DEFAULTS.arch, choices=ARCHS, help=f"model (default {DEFAULTS.arch})")
    data.add_argument("--epochs", type=_count, default=TrainConfig.epochs, help="training epochs (default %(default)s)")
    data.add_argument("--train-seed", type=int, default=TrainConfig.seed, help="seed of the models' training")


def _add_experiment_options(parser: argparse.ArgumentParser) -> None:
    """Options shared by train, run and sweep: data, model recipe, device, own model and forget set."""
    _add_recipe_options(parser)
    where = parser.add_argument_group("device and your own model")
    where.add_argument("--device", default="auto", metavar="DEVICE",
                       help="auto (CUDA when PyTorch sees a GPU, else the CPU), cpu, cuda or cuda:N (default auto)")
    where.add_argument("--model-file", metavar="FILE", help="your own model instead of training one: a .safetensors "
                       "state dict for --arch, or a torch.export .pt2 program; no retrain reference is trained")
    forget = parser.add_argument_group("forget set (choose one)")
    which = forget.add_mutually_exclusive_group()
    which.add_argument("--forget-class", metavar="CLASS", help="every training sample of a class (its name, or its index)")
    which.add_argument("--forget-random", type=float, metavar="FRACTION", help="a random share of the training set, e.g. 0.05")
    which.add_argument("--forget-ids", metavar="FILE", help="a text file of training-sample ids (spaces, commas or lines)")
    forget.add_argument("--rho", type=float, help="with --forget-class: swap this share of the class for other classes "
                        "(0 easy, 1 hard)")
    forget.add_argument("--forget-seed", type=int, default=DEFAULTS.seed, help="seed of --forget-random and --rho")


def _add_run_options(parser: argparse.ArgumentParser) -> None:
    """Options shared by run and sweep: how long, where stored, what is measured."""
    group = parser.add_argument_group("running")
    group.add_argument("--steps", type=_count, default=DEFAULTS.max_steps, help="most steps to take (default %(default)s)")
    group.add_argument("--until", type=_stop_rules, default=DEFAULT_STOP, metavar="RULES",
                       help=f"comma-separated stop rules from {', '.join(STOP_RULES)}, or 'none' to take every step "
                       f"(default {','.join(DEFAULT_STOP)}): stop once the retrain reference's forget accuracy and "
                       "loss are reached within noise (or at once when nothing needs to change), once degradation "
                       "becomes unavoidable, or after the first infeasible step")
    group.add_argument("--set", type=_setting, action="append", default=[], metavar="NAME=VALUE",
                       help="change a method setting, e.g. --set lr=0.02 --set split=equal (repeatable; "
                       "in a sweep, each setting goes to every method that has it)")
    group.add_argument("--retain-batch-size", type=_count, default=DEFAULTS.retain_batch_size,
                       help="retain samples drawn per step (default %(default)s)")
    group.add_argument("--no-eval", action="store_true", help="skip the final evaluation (no retrain reference needed)")
    group.add_argument("--store", metavar="DIR", help="run store folder (default $HAMU_DATA_DIR or ~/.cache/hamu-studio)")
    group.add_argument("--quiet", action="store_true", help="no progress bars")


def _non_negative(text: str) -> float:
    value = float(text)
    if not 0 <= value < float("inf"):
        raise argparse.ArgumentTypeError(f"must be a number >= 0, got {text}")
    return value


def _add_engine_options(parser: argparse.ArgumentParser) -> None:
    """Where a sweep's cells run: local worker processes, or Ray tasks (an optional extra)."""
    group = parser.add_argument_group("engine")
    group.add_argument("--engine", choices=("local", "ray"), default="local",
                       help="local: --workers processes on this machine (default); ray: one Ray task per cell, on "
                       "a Ray started here or on the cluster at --address (needs pip install '.[ray]')")
    group.add_argument("--address", metavar="ADDR", help="with --engine ray: an existing Ray cluster, e.g. auto or "
                       "ray://head:10001 (default: start Ray on this machine)")
    group.add_argument("--cpus-per-task", type=_non_negative, metavar="N",
                       help="with --engine ray: CPUs per cell, also its torch threads (default 1)")
    group.add_argument("--gpus-per-task", type=_non_negative, metavar="N",
                       help="with --engine ray: GPUs per cell, fractions allowed, e.g. 0.25 (default 0)")
    group.add_argument("--retries", type=int, metavar="N",
                       help="with --engine ray: reruns of a cell whose worker died (default 2)")


def _sweep_engine(args: argparse.Namespace):
    """The engine the sweep's options name: None for the local one, else a RayEngine (ray checked here)."""
    ray_options = {"--address": ("address", args.address), "--cpus-per-task": ("cpus_per_task", args.cpus_per_task),
                   "--gpus-per-task": ("gpus_per_task", args.gpus_per_task), "--retries": ("max_retries", args.retries)}
    given = {flag: field for flag, field in ray_options.items() if field[1] is not None}  # others: RayEngine's defaults
    if args.engine == "local":
        if given:
            raise UsageError(f"{next(iter(given))} is an option of --engine ray")
        return None
    if args.workers != 1:
        raise UsageError("--workers is an option of --engine local; Ray runs as many cells at once as its CPUs allow")
    from hamu_core.runs.ray_engine import EngineUnavailable, RayEngine

    try:
        return RayEngine(**dict(given.values()))
    except EngineUnavailable as err:
        raise UsageError(str(err)) from None


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog=PROG, description="HAMU Studio without a browser: train models, run and sweep unlearning "
                     "methods, and export reports of stored runs.", epilog=EXAMPLES,
                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--debug", action="store_true", help="on any error, also print the traceback (accepted "
                        "anywhere on the line)")
    verbs = parser.add_subparsers(dest="verb", required=True,
                                  metavar="{train,run,sweep,list,report,shadows,audit,requests}")
    store_only = argparse.ArgumentParser(add_help=False)
    store_only.add_argument("--store", metavar="DIR", help="run store folder (default $HAMU_DATA_DIR)")
    train = verbs.add_parser("train", help="train the original model and the retrain reference",
                             description="Train (or load from the disk cache) the original model and the retrain "
                             "reference for a dataset and forget set.")
    _add_experiment_options(train)
    run = verbs.add_parser("run", help="run one method on a forget set and store it",
                           description="Run one unlearning method on a forget set, storing every step; prints the run "
                           "id and the final numbers against the retrain reference.",
                           epilog="methods:\n" + "\n".join(f"  {name:<9} {text}" for name, text in METHOD_HELP.items()),
                           formatter_class=argparse.RawDescriptionHelpFormatter)
    run.add_argument("--method", default=DEFAULTS.method, choices=list(METHODS), metavar="METHOD",
                     help=f"the unlearning method, listed below (default {DEFAULTS.method})")
    run.add_argument("--seed", type=int, default=DEFAULTS.seed, help="seed of the run's batches")
    run.add_argument("--label", default="", help="a name for the run in the run list and on its report")
    run.add_argument("--request-ref", default="", metavar="REF",
                     help="the request the run answers (ticket id, requester); stored and stated in the report")
    run.add_argument("--distributed", action="store_true",
                     help="one rank of a data-parallel run, launched as torchrun --nproc_per_node N -m hamu_core run "
                     "... --distributed: each process computes its share of every batch (gloo on the CPU, nccl "
                     "with one GPU per process) and rank 0 stores the run")
    _add_experiment_options(run)
    _add_run_options(run)
    sweep = verbs.add_parser("sweep", help="run methods x constraints x seeds in parallel",
                             description="Run every method x constraint x seed as its own stored run, in parallel "
                             "worker processes, and print a summary table. Constraints apply to hamu-q/hamu-u only.")
    sweep.add_argument("--methods", type=_listing(str), default=[DEFAULTS.method], help="comma-separated methods")
    sweep.add_argument("--constraints", type=_listing(float), default=[], help="comma-separated constraints B")
    sweep.add_argument("--seeds", type=_listing(int), default=[DEFAULTS.seed], help="comma-separated seeds")
    sweep.add_argument("--workers", type=_count, default=1, help="worker processes of --engine local (default 1)")
    sweep.add_argument("--csv", metavar="FILE", help="also write the summary table to this CSV file")
    _add_engine_options(sweep)
    _add_experiment_options(sweep)
    _add_run_options(sweep)
    verbs.add_parser("list", parents=[store_only], help="list stored runs, newest first")
    report = verbs.add_parser("report", parents=[store_only], help="export a stored run as HTML, JSON or CSV",
                              description="Export the audit report of a stored run (an id or a unique prefix of one).")
    report.add_argument("run_id", help="the run's id, or a unique prefix of it (see the list verb)")
    report.add_argument("--format", action="append", choices=REPORT_FORMATS, dest="formats",
                        help="html, json (settings, metrics, history) or csv (one row per step); repeatable; default all")
    report.add_argument("--out-dir", default=".", help="folder for the files (default: the current folder)")
    _add_privacy_verbs(verbs, store_only)
    _add_requests_verb(verbs)
    return parser


def _add_requests_verb(verbs) -> None:
    """Sequential deletion requests (issue 11): each unlearned on top of the last.

    The epilog spells the request words out rather than importing ``ledger.REQUEST_WORDS``,
    which would load the experiment modules for every ``--help``.
    """
    requests = verbs.add_parser("requests", help="answer deletion requests one after another",
                                description="Answer the deletion requests in FILE in order, each on the model the "
                                "previous one produced, against the model retrained without every set forgotten so "
                                "far; prints each request's status and numbers as the run verb does.",
                                epilog="one request per line ('#' starts a comment): class CLASS | random FRACTION "
                                "[SEED] | rho CLASS RHO [SEED] | ids FILE | ids ID ID ...; an ids FILE is read "
                                "relative to the requests file")
    requests.add_argument("file", metavar="FILE", help="the requests, one per line, e.g. 'class 3', 'random 0.05'")
    requests.add_argument("--method", default=DEFAULTS.method, choices=list(METHODS), metavar="METHOD",
                          help=f"the unlearning method (default {DEFAULTS.method})")
    requests.add_argument("--seed", type=int, default=DEFAULTS.seed, help="seed of the runs' batches")
    _add_recipe_options(requests)
    _add_run_options(requests)


def _add_privacy_verbs(verbs, store_only: argparse.ArgumentParser) -> None:
    """The shadow bank and the per-sample membership audit (issue 10)."""
    from hamu_core.audit.attacks import ATTACKS  # 0.07 s on top of what the CLI loads anyway (scipy, pandas, torch)
    from hamu_core.audit.shadows import DEFAULT_SHADOWS, MIN_SHADOWS

    def shadow_count(text: str) -> int:
        value = _count(text)
        if value < MIN_SHADOWS:
            raise argparse.ArgumentTypeError(f"must be at least {MIN_SHADOWS} (two shadows on each side of every "
                                             f"sample), got {text}")
        return value

    bank = argparse.ArgumentParser(add_help=False)
    bank.add_argument("--shadows", type=shadow_count, default=DEFAULT_SHADOWS, metavar="K",
                      help=f"shadow models, each trained on a random half of every sample, at least {MIN_SHADOWS} "
                      "(default %(default)s)")
    bank.add_argument("--workers", type=_count, default=1,
                      help="worker processes that train shadows and, for U-LiRA, unlearn them (default 1)")
    bank.add_argument("--quiet", action="store_true", help="no progress bars")
    bank.add_argument("--device", default="auto", metavar="DEVICE",
                      help="where shadows train: auto (CUDA when PyTorch sees a GPU), cpu, cuda or cuda:N")
    shadows = verbs.add_parser("shadows", parents=[bank], help="train the shadow bank of a dataset and recipe",
                               description="Train (or load from the disk cache) K shadow models of the recipe, "
                               "each on a random half of the train and test samples, for the audit verb. "
                               "An interrupted build resumes where it stopped.")
    _add_recipe_options(shadows)
    audit = verbs.add_parser("audit", parents=[bank, store_only], help="per-sample membership attacks on a stored run",
                             description="Reopen a stored run and attack its forget set with the loss threshold, "
                             "LiRA (offline and online), RMIA and U-LiRA on shadow models, on the original, the "
                             "unlearned and the retrained model: forget samples (members) against test samples. "
                             "Prints AUC and TPR at 0.1% and 1% FPR with 95% intervals, one line per attack and "
                             "model, then the verdict.")
    audit.add_argument("run_id", help="the run's id, or a unique prefix of it (see the list verb)")
    audit.add_argument("--step", type=int, help="the run's step to audit (default: its reported step, else the last)")
    audit.add_argument("--attack", default="all", choices=(*ATTACKS, "all"), help="one attack, or all (default)")
    audit.add_argument("--json", metavar="FILE", help="also write every result, with per-sample scores, to FILE")


def _spec(args: argparse.Namespace, method: str = DEFAULTS.method, seed: int = DEFAULTS.seed, settings: tuple = ()):
    """The experiment the arguments describe; a forget-ids file's test and unknown ids are skipped, named on stderr."""
    from hamu_core.runs.experiment import ExperimentSpec, ForgetChoice, load_dataset

    if args.rho is not None and args.forget_class is None:
        raise UsageError("--rho needs --forget-class")
    if args.forget_class is not None:
        forget = ForgetChoice("rho" if args.rho is not None else "class", cls=args.forget_class, rho=args.rho,
                              seed=args.forget_seed)
    elif args.forget_random is not None:
        forget = ForgetChoice("random", fraction=args.forget_random, seed=args.forget_seed)
    elif args.forget_ids is not None:
        if not Path(args.forget_ids).is_file():
            raise UsageError(f"no forget-ids file at {args.forget_ids}")
        text = Path(args.forget_ids).read_text().replace(",", " ").split()
        try:
            forget = ForgetChoice("ids", ids=tuple(int(t) for t in text))
        except ValueError:
            raise UsageError(f"{args.forget_ids}: expected whole-number sample ids") from None
        chosen = forget.choose(load_dataset(args.dataset, args.data))  # the dataset is read once per process
        if chosen.skipped:
            print(f"{PROG}: {args.forget_ids}: {chosen.skipped_note()}", file=sys.stderr)
    else:
        raise UsageError("choose a forget set with --forget-class, --forget-random or --forget-ids")
    return ExperimentSpec(forget=forget, dataset=args.dataset, data_file=args.data,
                          model=ModelConfig(arch=args.arch), train=TrainConfig(epochs=args.epochs, seed=args.train_seed),
                          method=method, settings=settings, seed=seed,
                          retain_batch_size=getattr(args, "retain_batch_size", DEFAULTS.retain_batch_size),
                          device=args.device, model_file=args.model_file)


def _store(folder: str | None):
    from hamu_core.runs.store import RunStore

    if folder is not None and not Path(folder).exists():
        Path(folder).mkdir(parents=True)
    return RunStore(folder)


def _resolve(store, prefix: str) -> str:
    matches = [rid for rid in store.list_runs()["id"] if rid.startswith(prefix)]
    if len(matches) != 1:
        raise UsageError(f"no run {prefix!r} in {store.path}" if not matches else
                         f"{prefix!r} matches {len(matches)} runs; give more of the id")
    return matches[0]


def _print_metrics(metrics: dict) -> None:
    for name, value in metrics.items():
        print(f"  {name:<18} {value:.4f}" if isinstance(value, float) else f"  {name:<18} {value}")


def _train(args: argparse.Namespace) -> int:
    from hamu_core.evaluation.metrics import sample_outputs
    from hamu_core.runs.experiment import prepare

    spec = _spec(args)
    prepared = prepare(spec, progress=ProgressBar())
    for role, model in (("original", prepared.original), ("retrain", prepared.retrain)):
        if model is None:  # an own model (--model-file) has no retrain reference
            continue
        accuracy = sample_outputs(model, prepared.data, prepared.data.test_ids).accuracy
        print(f"{role:<9} test accuracy {accuracy:.4f}")
    print(f"forget set: {len(prepared.forget_ids)} samples ({spec.forget.describe()})")
    return 0


def _run(args: argparse.Namespace) -> int:
    from hamu_core.runs.experiment import execute

    spec = _spec(args, args.method, args.seed, tuple(_typed_settings([args.method], args.set).items()))
    if args.distributed:
        from hamu_core.runs.distributed import run_on_ranks

        if args.store is not None:
            Path(args.store).mkdir(parents=True, exist_ok=True)  # every rank may get here first
        outcome = run_on_ranks(spec, args.store, steps=args.steps, stop_when=args.until, with_eval=not args.no_eval,
                               label=args.label, request_ref=args.request_ref, progress=ProgressBar(not args.quiet))
        if outcome is None:  # a rank other than 0: it took the steps; rank 0 stored and reports them
            return 0
    else:
        with _store(args.store) as store:
            outcome = execute(spec, store, steps=args.steps, stop_when=args.until, with_eval=not args.no_eval,
                              label=args.label, request_ref=args.request_ref, progress=ProgressBar(not args.quiet))
    print(f"run_id: {outcome.run_id}")
    print(f"status: {outcome.stop.kind} ({outcome.status}): {outcome.stop.message}")
    _print_metrics({"steps": outcome.steps, "reported_step": outcome.reported_step, **outcome.metrics})
    return 0 if outcome.status == "finished" else 1


def _sweep(args: argparse.Namespace) -> int:
    from hamu_core.runs.sweep import run_sweep, sweep_specs

    engine = _sweep_engine(args)
    specs = sweep_specs(_spec(args), args.methods, args.constraints, args.seeds,
                        _typed_settings(list(args.methods), args.set))
    with _store(args.store) as store:
        path = store.path
    table = run_sweep(specs, str(path), steps=args.steps, stop_when=args.until, workers=args.workers, engine=engine,
                      with_eval=not args.no_eval, progress=ProgressBar(not args.quiet))
    print(table.to_string(index=False, float_format=lambda v: f"{v:.4f}"))
    if args.csv:
        table.to_csv(args.csv, index=False)
        print(f"summary written to {args.csv}")
    return 0


def _list(args: argparse.Namespace) -> int:
    with _store(args.store) as store:
        runs = store.list_runs()
    print(runs.to_string(index=False) if len(runs) else f"no runs in {store.path}")
    return 0


def _report(args: argparse.Namespace) -> int:
    from hamu_core.runs.experiment import stored_report

    with _store(args.store) as store:
        stored = store.get_run(_resolve(store, args.run_id))
    report, out = stored_report(stored), Path(args.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    texts = {"html": report.to_html, "json": report.to_json, "csv": report.history_csv}
    for fmt in args.formats or REPORT_FORMATS:
        path = out / f"run-{stored.id}.{fmt}"
        path.write_text(texts[fmt](), encoding="utf-8")
        print(path)
    return 0


def _shadows(args: argparse.Namespace) -> int:
    from hamu_core.audit.shadows import bank_folder, build_bank
    from hamu_core.runs.experiment import load_dataset

    data = load_dataset(args.dataset, args.data)
    model_config, train_config = ModelConfig(arch=args.arch), TrainConfig(epochs=args.epochs, seed=args.train_seed)
    bank = build_bank(data, model_config, train_config, k=args.shadows, workers=args.workers,
                      progress=ProgressBar(not args.quiet), device=args.device)
    print(f"shadows: {len(bank)} of {data.name} ({args.arch}, {args.epochs} epochs), each on half of "
          f"{len(bank.pool_ids)} samples (train and test)")
    print(f"folder: {bank_folder(data, model_config, train_config, len(bank), bank.seed)}")
    return 0


def _stored_data(dataset: dict):
    """The stored run's data (a built-in name, or the file it was read from) and its model and training recipe."""
    from hamu_core.runs.experiment import load_dataset

    source = dataset.get("source", "")
    data = (load_dataset(source.removeprefix("builtin:")) if source.startswith("builtin:")
            else load_dataset(DEFAULTS.dataset, source))
    if data.fingerprint() != dataset.get("fingerprint"):
        raise UsageError(f"the data at {source!r} is not the data the run was made on (its fingerprint differs)")
    model = {k: tuple(v) if isinstance(v, list) else v for k, v in dataset["model"].items()}
    return data, ModelConfig(**model), TrainConfig(**dataset["train"])


def _audit_models(store, stored, data, model_config, train_config, step: int | None, progress):
    """(original, model after the audited step, retrain, the step): the run replayed from the store."""
    import numpy as np

    from hamu_core.models.checkpoint import cached_train
    from hamu_core.models.training import retain_ids
    from hamu_core.runs.store import ReplayMismatch, resume_run

    forget_ids = np.asarray(stored.forget_ids, dtype=np.int64)
    reported = [e["reported_step"] for e in stored.evaluations if "reported_step" in e]
    step = step if step is not None else reported[-1] if reported else len(stored.history)
    if not 0 <= step <= len(stored.history):
        raise UsageError(f"--step must lie in [0, {len(stored.history)}] (the run's stored steps), got {step}")
    original = cached_train(data, None, model_config, train_config, "original", progress)
    retrain = cached_train(data, forget_ids, model_config, train_config, "retrain", progress)
    try:
        run = resume_run(store, stored.id, original, data.tensors(retain_ids(data, forget_ids)),
                         data.tensors(forget_ids))
    except ReplayMismatch as err:
        raise UsageError(str(err)) from None
    return original, run.model_at(step), retrain, step


def _audit(args: argparse.Namespace) -> int:
    from hamu_core.audit.attacks import ATTACKS, FPR_LEVELS, audit, level_name, unlearn_shadows
    from hamu_core.audit.shadows import build_bank

    progress = ProgressBar(not args.quiet)
    with _store(args.store) as store:
        stored = store.get_run(_resolve(store, args.run_id))
        data, model_config, train_config = _stored_data(stored.dataset)
        original, current, retrain, step = _audit_models(store, stored, data, model_config, train_config, args.step,
                                                         progress)
    bank = build_bank(data, model_config, train_config, k=args.shadows, workers=args.workers, progress=progress,
                      device=args.device)
    attacks = ATTACKS if args.attack == "all" else (args.attack,)
    unlearned = None
    if "ulira" in attacks:
        settings = {k: v for k, v in stored.settings.items() if k != "method"}
        unlearned = unlearn_shadows(bank, data, stored.forget_ids, stored.method, settings, step, stored.seed,
                                    retain_batch_size=stored.retain_batch_size, workers=args.workers, progress=progress)
    result = audit({"original": original, "current": current, "retrain": retrain}, data, stored.forget_ids, bank,
                   attacks=attacks, unlearned_shadows=unlearned, seed=stored.seed)
    first = next(iter(result.results.values()))
    print(f"run_id: {stored.id}")
    print(f"step: {step} ({stored.method}); forget {len(stored.forget_ids)} vs test {len(data.test_ids)} samples; "
          f"{len(bank)} shadows")
    unresolved = [level_name(level) for level in FPR_LEVELS if not first.resolved[level]]
    if unresolved:
        print(f"unresolved: {', '.join(unresolved)} (below min_fpr {first.min_fpr:.4f} = 1/{len(data.test_ids)} "
              "test samples: only zero false positives is measured there)")
    for (attack, model), r in result.results.items():
        cells = [f"AUC {_interval(r.auc)}", *(f"{level_name(level)} {_interval(r.tpr[level])}" for level in FPR_LEVELS)]
        print(f"  {attack:<13} {model:<9} " + "  ".join(cells))
    print(f"strongest: {result.strongest()}")
    print(f"verdict: {result.verdict()}")
    if args.json:
        document = {"run_id": stored.id, "step": step, "method": stored.method, "dataset": stored.dataset.get("name"),
                    **result.to_dict()}
        Path(args.json).write_text(json.dumps(document, allow_nan=False), encoding="utf-8")
        print(f"results written to {args.json}")
    return 0


def _interval(estimate) -> str:
    return f"{estimate.value:.4f} [{estimate.low:.4f}, {estimate.high:.4f}]"


def _requests(args: argparse.Namespace) -> int:
    from hamu_core.runs.experiment import load_dataset
    from hamu_core.runs.ledger import parse_requests, run_ledger

    if args.no_eval or args.store:
        raise UsageError("every request is evaluated against its reference and none is stored: drop --no-eval "
                         "and --store")
    path = Path(args.file)
    if not path.is_file():
        raise UsageError(f"no requests file at {path}")
    requests = parse_requests(path.read_text(encoding="utf-8"), base_dir=path.parent)
    ledger = run_ledger(requests, dataset=load_dataset(args.dataset, args.data), model_config=ModelConfig(arch=args.arch),
                        train_config=TrainConfig(epochs=args.epochs, seed=args.train_seed), method=args.method,
                        settings=_typed_settings([args.method], args.set), seed=args.seed, max_steps=args.steps, stop_when=args.until,
                        retain_batch_size=args.retain_batch_size, progress=ProgressBar(not args.quiet))
    for k, entry in enumerate(ledger.entries, 1):
        status = "failed" if entry.stop_kind == "diverged" else "finished"
        print(f"request {k}: {entry.request}")
        print(f"status: {entry.stop_kind} ({status}): {entry.stop_message}")
        _print_metrics(entry.metrics())
    return 0 if all(e.stop_kind != "diverged" for e in ledger.entries) else 1


VERBS = {"train": _train, "run": _run, "sweep": _sweep, "list": _list, "report": _report, "shadows": _shadows,
         "audit": _audit, "requests": _requests}


def main(argv: list[str] | None = None) -> int:
    """Parse ``argv`` and run the verb: a user's mistake prints one line and returns 2, an internal
    error one line and returns 1. ``--debug``, anywhere on the line, adds the traceback to either."""
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in argv
    args = build_parser().parse_args([a for a in argv if a != "--debug"])
    try:
        return VERBS[args.verb](args)
    except (UsageError, *USER_ERRORS) as err:
        message = err.args[0] if isinstance(err, KeyError) and err.args else err
        return _fail(args.verb, f"error: {message}", 2, debug)
    except KeyboardInterrupt:
        print(f"{PROG} {args.verb}: interrupted; finished steps are stored", file=sys.stderr)
        return 130
    except Exception as err:  # noqa: BLE001 -- the one place where any internal error becomes one line
        return _fail(args.verb, f"internal error: {type(err).__name__}: {err} (a bug: please report it with the "
                     "traceback that --debug prints)", 1, debug)


def _fail(verb: str, message: str, code: int, debug: bool) -> int:
    """Print ``message`` on one line of stderr (the traceback first with ``--debug``) and return ``code``."""
    if debug:
        traceback.print_exc()
    print(" ".join(f"{PROG} {verb}: {message}".split()), file=sys.stderr)
    return code
