"""Retrain the reference STFuse model, its 3-seed ablations and the probe runs, then regenerate docs/results.md.

    python experiments/reproduce.py --budget cpu              # what produced the committed weights (2-core CPU)
    python experiments/reproduce.py --budget gpu              # the same recipe at GPU scale
    python experiments/reproduce.py --skip-train              # re-score existing runs only
    python experiments/reproduce.py --only main               # just the main model (source + full STFuse, seed 0)
    python experiments/reproduce.py --only main-seeds         # L_g at the main run's steps: both variants, 3 seeds
    python experiments/reproduce.py --dry-run                 # what each run would do; trains nothing
    python experiments/reproduce.py --only ablations --keep-weights   # the 3-seed table; the packaged weights stay

Every setting comes from YAML: the recipe is experiments/mfif.yaml and experiments/ivif.yaml (equal to the
stages' defaults), a budget is an overlay pair experiments/budgets/<budget>/{mfif,ivif}.yaml (trainer, steps,
crops, batch sizes) that sizes the main run, plus an optional experiments/budgets/<budget>/ablation.yaml that
sizes the ablation seeds and the probes (fewer target steps), a variant is an overlay in experiments/ablations/, and a probe is an entry of
experiments/probes/probes.yaml with its overlays. This script only adds the data roots and the seed, so the
main run is exactly ``make train-mfif BUDGET=cpu && make transfer-ivif BUDGET=cpu``. A rerun resumes every
interrupted run from its ``last.ckpt`` and skips finished ones (``<run>/done.json``), but only while the run is
still the one asked for: each run records a fingerprint of its arguments, of the parsed contents of its
``--config`` files and of the source checkpoint it starts from (``run_fingerprint``). A run whose recipe or
source changed since is *stale*: ``--stale retrain`` (the default) moves it to ``<out>/stale/`` (nothing is
deleted) and trains it afresh, ``--stale keep`` reuses it with a warning, ``--stale fail`` stops and lists it.
A process holds a run's lock (``<out>/.locks/<run>.lock``) while it trains it, so a second reproduce.py stops
at that run instead of moving it aside or training it twice.
Defaults written in Python (a stage's or a network's) are not in the fingerprint. A run's ``done.json`` records
its wall time summed over its attempts, an interrupted attempt counted up to its last checkpoint
(``attempts.json``), so a resumed run reports the time it trained, not only its last attempt's.

1. ``mfif``: the source stage on synthetic multi-focus pairs from DATA/train/natural (420 images), seed 0.
2. ``ivif_<variant>_s<seed>``: the target stage on DATA/train/ivif/{roadscene,msrs} minus 16 held-out
   validation pairs, for the variants full STFuse, transfer without L_g and no transfer, seeds 0, 1, 2.
   All share the one source stage and one step budget (the budget's ablation.yaml where it has one); the
   seed changes the target stage's initial order of crops, augmentation and (for no transfer) the weights.
   The main run is full STFuse, seed 0, at the budget's own target steps (ivif.yaml): ``ivif_stfuse_main``
   where the budget has an ablation.yaml, else the seed-0 run ``ivif_stfuse_s0`` itself. ``--only main``
   trains the source stage and just that run; it is exactly ``make train-mfif BUDGET=<budget> && make
   transfer-ivif BUDGET=<budget>``. Where the budget sizes the ablations apart, full STFuse and transfer
   without L_g also train at the main run's steps at the seeds ``--main-seeds`` (``ivif_<variant>_main`` at
   seed 0, ``ivif_<variant>_main_s<seed>``; ``--only main-seeds``): the comparison of L_g at the steps the
   recipe is meant for, beside the cheaper 3-seed table.
3. ``probe_<name>``: one target-stage run per hypothesis of the "what moved the metrics" table; a probe that
   changes the architecture first trains its own source stage ``mfif_<name>``.
4. experiments/validate.py scores every run on the held-out validation pairs (never a test set). The shipped
   weights come from the runs at the budget's own steps (where it sizes the ablations apart; else the
   seeds), copies of one source left out: full STFuse unless the means of its seeds beat those of transfer
   without L_g on fewer than 5 of the 8 table metrics, and of that variant the seed with the best mean rank
   (results.select_shipped).
   experiments/results.py then exports them, fuses TNO-25, RoadScene-50 and MSRS-20 and writes
   docs/results.md and the README table.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import shlex
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

import yaml

try:
    import fcntl
except ImportError:  # Windows: no advisory file locks, so runs are not guarded against a second process
    fcntl = None  # type: ignore[assignment]

from stfuse.runtime import find_data_root

REPO = Path(__file__).resolve().parents[1]
EXPERIMENTS = REPO / "experiments"

#: the budgets: experiments/budgets/<name>/{mfif,ivif}.yaml, overlays on experiments/{mfif,ivif}.yaml that set
#: the trainer, the step budget, crops and batch sizes. The recipe itself is experiments/{mfif,ivif}.yaml (the
#: stages' defaults); nothing here adds a setting of its own but the data roots and the seed.
BUDGETS = sorted(p.name for p in (EXPERIMENTS / "budgets").iterdir() if (p / "ivif.yaml").is_file())

VARIANTS = {
    "stfuse": [],
    "no_guidance": ["--config", "experiments/ablations/no_guidance.yaml"],
    "no_transfer": ["--config", "experiments/ablations/no_transfer.yaml"],
}
SEEDS = (0, 1, 2)
#: the variants compared at the budget's own target steps too (full STFuse against transfer without L_g, seeds
#: ``--main-seeds``), where the budget sizes the ablation seeds apart: the comparison of L_g at the steps the
#: shipped recipe trains for
MAIN_VARIANTS = ("stfuse", "no_guidance")


def _overlays(files: list[str]) -> list[str]:
    return [arg for overlay in files for arg in ("--config", f"experiments/probes/{overlay}")]


def _load_probes() -> tuple[dict[str, tuple[str, list[str], str, str | None]], dict[str, list[str]]]:
    """experiments/probes/probes.yaml: name -> (variant, overlay arguments, what it tests, the run it is compared
    with), and name -> source-stage overlay arguments for the probes that train their own source stage."""
    spec = yaml.safe_load((EXPERIMENTS / "probes" / "probes.yaml").read_text())
    probes: dict[str, tuple[str, list[str], str, str | None]] = {}
    sources: dict[str, list[str]] = {}
    for name, entry in spec.items():
        probes[name] = (
            entry["variant"],
            _overlays(entry.get("configs", [])),
            entry["tests"],
            entry.get("compared_with"),
        )
        if entry.get("source_configs"):
            sources[name] = _overlays(entry["source_configs"])
    return probes, sources


#: hypothesis probes, one target-stage run each at the budget's steps, seed 0 (experiments/probes/probes.yaml);
#: PROBE_SOURCES: the probes that change the architecture, with the overlays of their own source stage.
PROBES, PROBE_SOURCES = _load_probes()
#: the name of the run a probe with ``compared_with: main`` is compared with: the seed-0 full-STFuse run of the
#: ablation table (the probes' own step budget)
MAIN_RUN = "ivif_stfuse_s0"


def ablation_config(budget: str) -> str | None:
    """The budget's overlay for the ablation seeds and the probes (fewer target steps than the main run), if any."""
    path = f"experiments/budgets/{budget}/ablation.yaml"
    return path if (REPO / path).is_file() else None


def main_budget_run(variant: str, seed: int) -> str:
    """A run at the budget's own target steps: ``ivif_<variant>_main`` at seed 0, ``ivif_<variant>_main_s<seed>``
    at the other seeds (only budgets with an ablation.yaml train these apart from the ablation seeds)."""
    return f"ivif_{variant}_main" + (f"_s{seed}" if seed else "")


def parse_main_budget_run(name: str) -> tuple[str, int] | None:
    """``(variant, seed)`` of a run named by :func:`main_budget_run`, else None (an ablation seed, a probe, an
    odd folder name)."""
    match = re.fullmatch(r"ivif_(\w+?)_main(?:_s(\d+))?", name)
    if match is None or match[1] not in VARIANTS:
        return None
    variant, seed = match[1], int(match[2] or 0)
    return (variant, seed) if main_budget_run(variant, seed) == name else None  # not ..._s0 or ..._s01


def main_run(budget: str) -> str:
    """The run that trains full STFuse at the budget's own target steps (the recipe users run)."""
    return main_budget_run("stfuse", 0) if ablation_config(budget) else MAIN_RUN


def budget_config(budget: str, stage: str) -> str:
    """The overlay of ``budget`` for ``stage`` (``mfif`` or ``ivif``), relative to the repository."""
    if budget not in BUDGETS:
        raise SystemExit(f"unknown budget {budget!r}; choose from {BUDGETS} (experiments/budgets/)")
    return f"experiments/budgets/{budget}/{stage}.yaml"


def budget_settings(budget: str, stage: str) -> dict:
    """The overlay's values (for the records and the results page)."""
    return yaml.safe_load((REPO / budget_config(budget, stage)).read_text())


def mfif_command(budget: str, data: Path, out: Path, seed: int, extra: list[str] = ()) -> list[str]:
    return [
        sys.executable, "-m", "stfuse", "fit", "--config", "experiments/mfif.yaml", *extra,
        "--config", budget_config(budget, "mfif"),
        "--seed_everything", str(seed), "--trainer.default_root_dir", str(out),
        "--data.init_args.roots", json.dumps([str(data / "train" / "natural")]),
    ]  # fmt: skip


def ivif_command(budget: str, data: Path, out: Path, variant: str, seed: int, source: Path,
                 extra: list[str], ablation: bool = True) -> list[str]:  # fmt: skip
    """``ablation``: size the run with the budget's ablation.yaml (the seeds and probes), not as the main run."""
    sizing = ["--config", ablation_config(budget)] if ablation and ablation_config(budget) else []
    command = [
        # the budget before the variant: a variant may remove what a budget sizes (no_transfer: replay null)
        sys.executable, "-m", "stfuse", "fit", "--config", "experiments/ivif.yaml",
        "--config", budget_config(budget, "ivif"), *sizing, *VARIANTS[variant], *extra,
        "--seed_everything", str(seed), "--trainer.default_root_dir", str(out),
        "--data.init_args.ivif.init_args.train_roots",
        json.dumps([str(data / "train" / "ivif" / "roadscene"), str(data / "train" / "ivif" / "msrs")]),
        # the crop order and augmentation follow the run's seed; the held-out pairs do not (split_seed)
        "--data.init_args.ivif.init_args.seed", str(seed),
    ]  # fmt: skip
    if variant != "no_transfer":
        command += [
            "--model.init_args.source_ckpt", str(source),
            "--data.init_args.replay.init_args.roots", json.dumps([str(data / "train" / "natural")]),
            "--data.init_args.replay.init_args.seed", str(seed + 1),
        ]  # fmt: skip
    return command


#: what ``run`` does with a run made by another recipe or source: move it aside and retrain, reuse it, or stop
STALE_POLICIES = ("retrain", "keep", "fail")
#: the flag whose value is the source checkpoint a target run starts from (its content joins the fingerprint)
SOURCE_FLAG = "--model.init_args.source_ckpt"


def _normalised(command: list[str], out: Path, data: Path | None) -> list[str]:
    """The arguments of ``command`` without the interpreter (it differs between machines and environments),
    with the output and data folders written as ``$OUT`` and ``$DATA``, so moving either changes nothing."""
    args = command[1:]
    replacements = [(str(out), "$OUT"), *([(str(data), "$DATA")] if data is not None else [])]
    for old, new in sorted(replacements, key=lambda pair: -len(pair[0])):
        args = [arg.replace(old, new) for arg in args]
    return args


def _file_digest(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def run_fingerprint(command: list[str], out: Path, data: Path | None = None) -> str:
    """A digest of what a run's result depends on that this script can see: its normalised arguments
    (:func:`_normalised`), the parsed contents of each ``--config`` file (comments and layout do not count)
    and the bytes of the source checkpoint it starts from. A missing file counts as its name."""
    args = _normalised(command, out, data)
    parts: list[object] = [args]
    for flag, value in zip(command, command[1:]):
        if flag == "--config":
            path = REPO / value
            parts.append(yaml.safe_load(path.read_text()) if path.is_file() else f"missing {value}")
        elif flag == SOURCE_FLAG:
            path = Path(value)
            parts.append(_file_digest(path) if path.is_file() else f"missing {path.name}")
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()


def _stale_reason(
    run_dir: Path, fingerprint: str, args: list[str], out: Path, data: Path | None
) -> str | None:
    """Why the run in ``run_dir`` is not the one asked for, or None when it is (or when nothing says)."""
    for record_name in ("done.json", "started.json"):
        record = run_dir / record_name
        if not record.is_file():
            continue
        saved = json.loads(record.read_text())
        if "fingerprint" in saved:
            return (
                None
                if saved["fingerprint"] == fingerprint
                else f"its recipe or source changed ({record_name})"
            )
        if "command" in saved:  # written before fingerprints: only the arguments can be compared
            same = _normalised(shlex.split(saved["command"]), out, data) == args
            return None if same else f"its arguments changed ({record_name})"
    return None


#: the lock a process holds while it trains a run: <out>/.locks/<run>.lock (outside the run folder, which
#: retraining a stale run moves aside)
LOCK_DIR = ".locks"


def _lock_path(out: Path, name: str) -> Path:
    return out / LOCK_DIR / f"{name}.lock"


def _holder(path: Path) -> str:
    """Who holds the lock at ``path``, as its holder wrote it: pid, host and start time."""
    try:
        info = json.loads(path.read_text())
        return f"pid {info['pid']} on {info['host']}, since {info['since']}"
    except (OSError, ValueError, KeyError, TypeError):
        return "another process"


@contextmanager
def run_lock(out: Path, name: str) -> Iterator[None]:
    """Hold run ``name``'s lock while it trains, so that a second reproduce.py (another terminal, another job
    of an array) never moves aside, resumes or trains a run that a first one is training. An advisory
    ``flock`` on <out>/.locks/<name>.lock: the system drops it when its holder exits, however it exits, so no
    lock outlives its process. Raises SystemExit naming the holder when another process holds it."""
    if fcntl is None:
        yield
        return
    path = _lock_path(out, name)
    path.parent.mkdir(parents=True, exist_ok=True)
    # "a+", not "w": the holder's note stays readable until this process holds the lock
    with path.open("a+") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise SystemExit(
                f"{name} is being trained by another process ({_holder(path)}; lock {path}); "
                "let it finish or stop it, then rerun"
            ) from None
        handle.seek(0)
        handle.truncate()
        since = time.strftime("%Y-%m-%d %H:%M:%S")
        handle.write(json.dumps({"pid": os.getpid(), "host": socket.gethostname(), "since": since}))
        handle.flush()
        yield  # closing the file releases the lock


def trained_elsewhere(out: Path, name: str) -> str | None:
    """The holder of run ``name``'s lock (:func:`run_lock`) while another process trains it, else None."""
    path = _lock_path(out, name)
    if fcntl is None or not path.is_file():
        return None
    with path.open("r") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return _holder(path)
    return None


def run(
    name: str, command: list[str], out: Path, threads: int, stale: str = "retrain", data: Path | None = None
) -> float:
    """Run one ``stfuse fit`` to completion (resuming an interrupted one); returns its wall time in seconds,
    summed over its attempts (:func:`_earlier_attempts`: an interrupted attempt counts up to its last checkpoint).

    A finished run leaves ``<out>/<name>/done.json`` (its command, fingerprint and wall time) and is skipped
    next time while its fingerprint (:func:`run_fingerprint`) still matches; ``stale`` says what happens when it
    does not (``STALE_POLICIES``; the module docstring). ``data``: the data root, for the fingerprint. The run's
    lock (:func:`run_lock`) is held throughout: a run that another process is training stops this call
    (SystemExit) before anything of it is read, moved or trained.
    """
    if stale not in STALE_POLICIES:
        raise ValueError(f"unknown stale policy {stale!r}; expected one of {STALE_POLICIES}")
    with run_lock(out, name):
        return _run_locked(name, command, out, threads, stale, data)


#: a run's wall-time account across attempts: ``<run>/attempts.json``
ATTEMPTS = "attempts.json"


def _earlier_attempts(run_dir: Path) -> tuple[float, int]:
    """Account for the attempts before this one and start this one: ``(seconds, number of this attempt)``.

    An attempt that was interrupted (killed, the machine lost) cannot record its end, so it is counted from its
    start to the last write of ``checkpoints/last.ckpt`` (the training that the resume keeps; what came after
    the checkpoint is trained again and counted in the next attempt). One that wrote no checkpoint counts 0."""
    record = run_dir / ATTEMPTS
    state = json.loads(record.read_text()) if record.is_file() else {"seconds": 0.0, "attempts": 0}
    checkpoint = run_dir / "checkpoints" / "last.ckpt"
    if state.get("started") is not None and checkpoint.is_file():
        state["seconds"] += max(0.0, checkpoint.stat().st_mtime - state["started"])
    state["started"], state["attempts"] = time.time(), state["attempts"] + 1
    record.write_text(json.dumps(state, indent=2))
    return state["seconds"], state["attempts"]


def _run_locked(
    name: str, command: list[str], out: Path, threads: int, stale: str, data: Path | None
) -> float:
    """:func:`run`, with the run's lock held."""
    run_dir = out / name
    done = run_dir / "done.json"
    fingerprint = run_fingerprint(command, out, data)
    reason = _stale_reason(run_dir, fingerprint, _normalised(command, out, data), out, data)
    if reason is not None:
        if stale == "fail":
            raise SystemExit(
                f"{name} is stale: {reason}; rerun with --stale retrain (it moves {run_dir} aside)"
            )
        if stale == "keep":
            print(f"warning: {name} is stale ({reason}); reused because of --stale keep", flush=True)
        else:
            aside = out / "stale" / f"{name}-{time.strftime('%Y%m%d-%H%M%S')}"
            aside.parent.mkdir(parents=True, exist_ok=True)
            for copy in range(2, 1000):  # two stale copies within a second keep distinct names
                if not aside.exists():
                    break
                aside = aside.with_name(f"{name}-{time.strftime('%Y%m%d-%H%M%S')}-{copy}")
            run_dir.rename(aside)
            print(f"[{time.strftime('%H:%M:%S')}] {name} is stale ({reason}): moved to {aside}", flush=True)
    if done.is_file():
        return float(json.loads(done.read_text())["seconds"])
    run_dir.mkdir(parents=True, exist_ok=True)
    started_record = run_dir / "started.json"
    if not started_record.is_file():
        started_record.write_text(
            json.dumps({"command": shlex.join(command), "fingerprint": fingerprint}, indent=2)
        )
    earlier, attempt = _earlier_attempts(run_dir)
    log = out / "logs" / f"{name}.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "OMP_WAIT_POLICY": "PASSIVE", "WANDB_MODE": "disabled",
           "PYTHONUNBUFFERED": "1"}  # fmt: skip
    print(f"[{time.strftime('%H:%M:%S')}] start {name} ({threads} thread(s)); log: {log}", flush=True)
    started = time.perf_counter()
    with log.open("a") as handle:
        handle.write("$ " + shlex.join(command) + "\n")
        handle.flush()
        code = subprocess.run(command, stdout=handle, stderr=subprocess.STDOUT, cwd=REPO, env=env).returncode
    last = time.perf_counter() - started
    if code != 0:
        raise SystemExit(f"{name} failed with exit code {code}; see {log}")
    seconds = earlier + last
    record = {"command": shlex.join(command), "fingerprint": fingerprint, "seconds": seconds}
    if attempt > 1:
        record |= {"attempts": attempt, "last_attempt_seconds": last}
    done.write_text(json.dumps(record, indent=2))
    print(f"[{time.strftime('%H:%M:%S')}] done  {name}: {seconds / 60:.1f} min", flush=True)
    return seconds


def plan(
    jobs: list[list[tuple[str, list[str]]]], out: Path, data: Path | None = None, stale: str = "retrain"
) -> list[tuple[str, str]]:
    """What running ``jobs`` (in order) would do to each run, without training anything: (name, state). A run
    that another process trains now (:func:`trained_elsewhere`) is named with that process.

    A run whose source checkpoint lies in a run folder that trains first counts as stale, since its source
    will change."""
    training: set[Path] = set()
    states: list[tuple[str, str]] = []
    for steps in jobs:
        for name, command in steps:
            run_dir = out / name
            holder = trained_elsewhere(out, name)
            if holder is not None:
                states.append(
                    (name, f"being trained by another process ({holder}): left alone; a run stops here")
                )
                training.add(run_dir)  # its results will change under the runs that start from it
                continue
            args = _normalised(command, out, data)
            reason = _stale_reason(run_dir, run_fingerprint(command, out, data), args, out, data)
            source = next((Path(v) for f, v in zip(command, command[1:]) if f == SOURCE_FLAG), None)
            recorded = (run_dir / "done.json").is_file() or (run_dir / "started.json").is_file()
            if (
                reason is None
                and recorded
                and source is not None
                and any(source.is_relative_to(d) for d in training)
            ):
                reason = "its source stage trains first"
            if reason is not None:
                action = {"retrain": "moved to stale/ and retrained", "keep": "reused (--stale keep)",
                          "fail": "stops the run (--stale fail)"}[stale]  # fmt: skip
                state = f"stale ({reason}): {action}"
                if stale == "retrain":
                    training.add(run_dir)
            elif (run_dir / "done.json").is_file():
                state = "finished: reused"
            else:
                resumes = (run_dir / "checkpoints" / "last.ckpt").is_file()
                state = "interrupted: resumes from last.ckpt" if resumes else "new: trains"
                training.add(run_dir)
            states.append((name, state))
    return states


def run_all(
    jobs: list[list[tuple[str, list[str]]]],
    out: Path,
    parallel: int,
    stale: str = "retrain",
    data: Path | None = None,
) -> dict[str, float]:
    """Run the jobs, ``parallel`` at a time; a job is a chain of runs (a probe's own source stage, then its
    target stage) that run one after the other."""
    threads = max(1, (os.cpu_count() or 1) // parallel)

    def chain(steps: list[tuple[str, list[str]]]) -> dict[str, float]:
        return {name: run(name, command, out, threads, stale=stale, data=data) for name, command in steps}

    with ThreadPoolExecutor(max_workers=parallel) as pool:
        futures = [pool.submit(chain, steps) for steps in jobs]
        return {name: seconds for future in futures for name, seconds in future.result().items()}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--budget", choices=sorted(BUDGETS), default="cpu")
    parser.add_argument("--data-root", default=str(find_data_root()))
    parser.add_argument("--out", default="outputs/reproduce")
    parser.add_argument("--only", choices=["all", "main", "main-seeds", "ablations", "probes"], default="all",
                        help="main: source + the main full-STFuse run; main-seeds: source + full STFuse and transfer "
                             "without L_g at the budget's own steps (--main-seeds); ablations: the 3-seed variants; "
                             "probes: the probe runs")  # fmt: skip
    parser.add_argument(
        "--seeds", default=",".join(map(str, SEEDS)), help="target-stage seeds of the ablation table"
    )
    parser.add_argument(
        "--main-seeds",
        default=",".join(map(str, SEEDS)),
        help="seeds of full STFuse and of transfer without L_g at the budget's own target steps, where the budget "
        "sizes the ablations apart (seed 0 of full STFuse is the main run; '' for the main run alone)",
    )
    parser.add_argument(
        "--variants", default=",".join(VARIANTS), help="target-stage variants of the ablation table"
    )
    parser.add_argument(
        "--probes", default=",".join(PROBES), help="comma-separated probe names ('' for none)"
    )
    parser.add_argument(
        "--jobs", type=int, help="target-stage runs in parallel (default: 1 on a GPU budget, 2 on CPU)"
    )
    parser.add_argument("--mfif-ckpt", help="use this source checkpoint instead of training the source stage")
    parser.add_argument(
        "--skip-train", action="store_true", help="only score existing runs and write the results"
    )
    parser.add_argument("--no-results", action="store_true", help="train only")
    parser.add_argument(
        "--keep-weights", action="store_true",
        help="write the results without selecting new default weights: the packaged weights stay and are scored "
             "as the shipped row (for an --out that lacks the runs they came from, e.g. --only ablations)",
    )  # fmt: skip
    parser.add_argument(
        "--dry-run",
        action="store_true",
        help="print what each run would do (reused, resumed, trained, stale) and exit without training",
    )
    parser.add_argument(
        "--stale",
        choices=STALE_POLICIES,
        default="retrain",
        help="a finished or interrupted run whose recipe or source changed: move it to <out>/stale/ and retrain "
        "(default), reuse it, or stop",
    )
    args = parser.parse_args()

    budget = args.budget
    on_gpu = budget_settings(budget, "ivif")["trainer"].get("accelerator") == "gpu"
    data = Path(args.data_root).resolve()
    out = (REPO / args.out).resolve()
    needed_folders = ["train/natural", "train/ivif/roadscene", "train/ivif/msrs"]
    needed_folders += [] if args.no_results else ["ivif/tno", "ivif/roadscene", "ivif/msrs"]
    for needed in needed_folders:
        if not (data / needed).is_dir():
            raise SystemExit(f"data root {data} lacks {needed}; pass --data-root or set STFUSE_DATA")
    parallel = args.jobs or (1 if on_gpu else min(2, os.cpu_count() or 1))
    seeds = [int(s) for s in args.seeds.split(",") if s]
    main_seeds = [int(s) for s in args.main_seeds.split(",") if s]
    probes = [p for p in args.probes.split(",") if p]
    unknown = sorted(set(probes) - set(PROBES))
    if unknown:
        raise SystemExit(f"unknown probe(s) {unknown}; choose from {sorted(PROBES)}")
    source = Path(args.mfif_ckpt).resolve() if args.mfif_ckpt else out / "mfif" / "checkpoints" / "last.ckpt"

    if args.only == "main-seeds" and not ablation_config(budget):
        raise SystemExit(
            f"budget {budget} trains its ablation seeds at its own target steps (no "
            f"experiments/budgets/{budget}/ablation.yaml), so it has no main-budget seeds apart: use --only ablations"
        )
    timings: dict[str, float] = {}
    needs_source = args.only in ("all", "main", "main-seeds", "probes") or any(
        v != "no_transfer" for v in args.variants.split(",")
    )
    if not args.skip_train:
        source_steps = (
            [("mfif", mfif_command(budget, data, out / "mfif", 0))]
            if not args.mfif_ckpt and needs_source
            else []
        )
        jobs: list[list[tuple[str, list[str]]]] = []
        variants = ["stfuse"] if args.only == "main" else [v for v in args.variants.split(",") if v]
        if args.only == "main-seeds" and not set(variants) & set(MAIN_VARIANTS):
            raise SystemExit(
                f"--only main-seeds trains the variants {list(MAIN_VARIANTS)}; --variants has none"
            )
        if set(variants) - set(VARIANTS):
            raise SystemExit(
                f"unknown variant(s) {sorted(set(variants) - set(VARIANTS))}; choose from {sorted(VARIANTS)}"
            )
        main_name = main_run(budget)
        # runs at the budget's own steps (where it sizes the ablations apart): the main run, then L_g compared there
        if main_name != MAIN_RUN:
            at_main: list[tuple[str, int]] = [("stfuse", 0)] if args.only in ("all", "main") else []
            if args.only in ("all", "main-seeds"):
                at_main += [(v, s) for s in main_seeds for v in variants if v in MAIN_VARIANTS]
            for variant, seed in dict.fromkeys(at_main):
                name = main_budget_run(variant, seed)
                jobs.append(
                    [(name, ivif_command(budget, data, out / name, variant, seed, source, [], False))]
                )
        if args.only in ("all", "main", "ablations"):
            for seed in seeds if args.only != "main" else []:
                for variant in variants:
                    name = f"ivif_{variant}_s{seed}"
                    jobs.append([(name, ivif_command(budget, data, out / name, variant, seed, source, []))])
            # no ablation sizing: the seed-0 run is the main run
            if args.only == "main" and main_name == MAIN_RUN:
                jobs.append([(MAIN_RUN, ivif_command(budget, data, out / MAIN_RUN, "stfuse", 0, source, []))])
        if args.only in ("all", "probes"):
            for probe in probes:
                variant, extra, _, _ = PROBES[probe]
                name, steps, probe_source = f"probe_{probe}", [], source
                if probe in PROBE_SOURCES:  # an architecture probe: its own source stage first
                    steps.append(
                        (
                            f"mfif_{probe}",
                            mfif_command(budget, data, out / f"mfif_{probe}", 0, PROBE_SOURCES[probe]),
                        )
                    )
                    probe_source = out / f"mfif_{probe}" / "checkpoints" / "last.ckpt"
                steps.append((name, ivif_command(budget, data, out / name, variant, 0, probe_source, extra)))
                jobs.append(steps)
        if args.dry_run:
            for name, state in plan([source_steps, *jobs], out, data, args.stale):
                print(f"{name:<40} {state}")
            return 0
        for name, command in source_steps:
            timings[name] = run(name, command, out, os.cpu_count() or 1, args.stale, data)
        timings.update(run_all(jobs, out, parallel, args.stale, data))
        record = out / "timings.json"
        previous = json.loads(record.read_text()).get("seconds", {}) if record.is_file() else {}
        # forget runs whose folder is gone (moved aside or deleted), so the wall-time table lists what exists
        previous = {name: s for name, s in previous.items() if (out / name / "done.json").is_file()}
        record.write_text(json.dumps({"budget": budget, "seconds": {**previous, **timings}}, indent=2))

    if args.no_results:
        return 0
    # Finished runs only: an interrupted one has an interval last.ckpt but no done.json.
    runs = sorted(
        p.name for p in out.iterdir() if (p / "done.json").is_file() and not p.name.startswith("mfif")
    )
    validate = [sys.executable, str(REPO / "experiments" / "validate.py"), "--data-root", str(data),
                "--budget", args.budget, "--json", str(out / "validation.json"), *[str(out / r) for r in runs]]  # fmt: skip
    print("$ " + shlex.join(validate), flush=True)
    subprocess.run(validate, check=True, cwd=REPO)
    results = [sys.executable, str(REPO / "experiments" / "results.py"), "--out", str(out), "--data-root", str(data),
               "--budget", args.budget, *(["--keep-weights"] if args.keep_weights else [])]  # fmt: skip
    print("$ " + shlex.join(results), flush=True)
    subprocess.run(results, check=True, cwd=REPO)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
