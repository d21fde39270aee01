"""Export the trained reference networks, fuse the test sets, score them, and write docs/results.md.

    python experiments/results.py --out outputs/reproduce [--data-root ../shared/data]

Reads the runs that experiments/reproduce.py trained (``<out>/ivif_<variant>/checkpoints/last.ckpt``),
writes ``src/stfuse/weights/stfuse_default.safetensors`` (+ ``.json`` training record) from the full
model, fuses TNO-25, RoadScene-50 and MSRS-20 with every model (``stfuse fuse``), scores them with the
classical baselines (``stfuse evaluate``, preset ``cddfuse``), and writes docs/results.md, the README's
short table (between ``<!-- results:start -->`` and ``<!-- results:end -->``) and qualitative grids.
"""

from __future__ import annotations

import argparse
import json
import platform
import shutil
import subprocess
import sys
from pathlib import Path

import yaml

from stfuse.runtime import find_data_root

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "experiments"))
from published import SETS, TABLE_METRICS  # noqa: E402
from reproduce import (  # noqa: E402
    MAIN_RUN,
    VARIANTS,
    ablation_config,
    budget_config,
    budget_settings,
    main_run,
    parse_main_budget_run,
)
from results_page import (  # noqa: E402
    MAIN_KEYS,
    SHIPPED,
    VARIANT_NAMES,
    split_text,
    write_page,
)


def schedule(budget: str) -> dict:
    """Steps, crops and batch sizes of both stages, read from the budget's overlays (``ivif_steps``: the main
    run's; ``ablation_ivif_steps``: the seeds' and probes', where the budget has an ablation.yaml)."""
    mfif, ivif = budget_settings(budget, "mfif"), budget_settings(budget, "ivif")
    target, replay = (
        ivif["data"]["init_args"]["ivif"]["init_args"],
        ivif["data"]["init_args"]["replay"]["init_args"],
    )
    steps = {"mfif_steps": mfif["trainer"]["max_steps"], "mfif_crop": mfif["data"]["init_args"]["crop_size"],
             "mfif_batch": mfif["data"]["init_args"]["batch_size"], "ivif_steps": ivif["trainer"]["max_steps"],
             "ivif_crop": target["crop_size"], "ivif_batch": target["batch_size"], "replay_batch": replay["batch_size"]}  # fmt: skip
    if ablation_config(budget):
        sizing = yaml.safe_load((REPO / ablation_config(budget)).read_text())
        steps["ablation_ivif_steps"] = sizing["trainer"]["max_steps"]
    return steps


def recipe() -> dict:
    """The target-stage recipe: the model settings of experiments/ivif.yaml (= the stage's defaults)."""
    return yaml.safe_load((REPO / "experiments" / "ivif.yaml").read_text())["model"]["init_args"]


DEFAULT_WEIGHTS = REPO / "src" / "stfuse" / "weights" / "stfuse_default.safetensors"


def sh(command: list[str]) -> None:
    print("$ " + " ".join(command), flush=True)
    subprocess.run(command, check=True, cwd=REPO)


def final_runs(out: Path, budget: str | None = None) -> dict[str, list[tuple[int, Path]]]:
    """``{variant: [(seed, run dir), ...]}`` for the finished target-stage runs under ``out`` (the ablation
    seeds), plus, where ``budget`` trains its main run apart (``ivif_stfuse_main``), the finished runs at the
    budget's own steps: ``"main"`` (full STFuse; seed 0 is the main run) and ``"main_no_guidance"``
    (:data:`results_page.MAIN_KEYS`)."""
    runs: dict[str, list[tuple[int, Path]]] = {}
    for variant in VARIANT_NAMES:
        for run in sorted(out.glob(f"ivif_{variant}_s*")):
            if (run / "done.json").is_file():  # finished (an interrupted run has only an interval last.ckpt)
                runs.setdefault(variant, []).append((int(run.name.rsplit("_s", 1)[1]), run))
    if budget is not None and main_run(budget) != MAIN_RUN:
        named = {run: parse_main_budget_run(run.name) for run in out.glob("ivif_*_main*")}
        for variant, key in MAIN_KEYS.items():
            seeded = sorted((parsed[1], run) for run, parsed in named.items()
                            if parsed and parsed[0] == variant and (run / "done.json").is_file())  # fmt: skip
            if seeded:
                runs[key] = seeded
    return runs


def mean_rank(scores: dict[str, dict[str, float]], candidates: list[str]) -> dict[str, float]:
    """Mean rank (1 = best) of each candidate over the table metrics (all higher-is-better)."""
    ranks = {name: 0.0 for name in candidates}
    for metric in TABLE_METRICS:
        ordered = sorted(candidates, key=lambda name: -scores[name][metric])
        for position, name in enumerate(ordered, start=1):
            ranks[name] += position / len(TABLE_METRICS)
    return ranks


# of the 8 table metrics, on seed means: the bar of the goal "full STFuse beats transfer without L_g"
WIN_BAR = 5


def variant_wins(scores: dict[str, dict[str, float]], ours: list[str], theirs: list[str]) -> list[str]:
    """The table metrics on which the mean of the runs ``ours`` beats the mean of the runs ``theirs``."""
    mean = lambda names, metric: sum(scores[n][metric] for n in names) / len(names)  # noqa: E731
    return [metric for metric in TABLE_METRICS if mean(ours, metric) > mean(theirs, metric)]


def select_shipped(out: Path, runs: dict[str, list[tuple[int, Path]]]) -> tuple[int, Path, dict]:
    """The shipped transfer run, chosen on the held-out validation pairs (never a test set), in three steps:

    1. the pool: the runs at the budget's own target steps, where the budget trains them apart from its
       shorter ablation seeds (``main``, ``main_no_guidance``), else the seeds of full STFuse and of transfer
       without L_g; a run whose output is a copy of one source (validate.is_copy) is left out;
    2. the variant, on the means of its seeds (one lucky seed does not decide it): full STFuse, the method,
       unless its means beat those of transfer without L_g on fewer than :data:`WIN_BAR` of the 8 metrics;
    3. the run: that variant's seed with the best mean rank over the 8 metrics."""
    from validate import is_copy

    validation = json.loads((out / "validation.json").read_text())
    scores = validation["scores"]
    at_budget_steps = any(runs.get(key) for key in MAIN_KEYS.values())
    keys = {"stfuse": "main", "no_guidance": "main_no_guidance"} if at_budget_steps else {
        "stfuse": "stfuse", "no_guidance": "no_guidance"}  # fmt: skip
    pools = {variant: runs.get(key, []) for variant, key in keys.items()}
    rejected = [run.name for pool in pools.values() for _, run in pool if is_copy(scores[run.name])]
    pools = {v: [(s, r) for s, r in pool if r.name not in rejected] for v, pool in pools.items()}
    if not any(pools.values()):
        raise SystemExit(f"every transfer run is a copy of one source ({rejected}); nothing to ship")
    names = {variant: [run.name for _, run in pool] for variant, pool in pools.items()}
    wins = variant_wins(scores, names["stfuse"], names["no_guidance"]) if all(names.values()) else []
    if not names["no_guidance"] or (names["stfuse"] and len(wins) >= WIN_BAR):
        variant = "stfuse"
    else:
        variant = "no_guidance"
    ranks = mean_rank(scores, names[variant])
    best = min(names[variant], key=lambda name: ranks[name])
    seed, run = next((s, r) for s, r in pools[variant] if r.name == best)
    where = "the runs at the budget's own steps" if at_budget_steps else "the seeds"
    selection = {
        "split": split_text(validation) + ", experiments/validate.py",
        "rule": f"among {where} of full STFuse and of transfer without L_g whose output is not a copy of one "
                f"source: full STFuse unless the means of its seeds beat those of transfer without L_g on fewer "
                f"than {WIN_BAR} of the 8 table metrics, then that variant's seed with the best mean rank",
        "variant": variant,
        "full_stfuse_wins": {"metrics": wins, "of": len(TABLE_METRICS), "bar": WIN_BAR, "runs": names},
        "rejected_as_copies": rejected,
        "mean_rank": ranks,
        "validation_scores": {name: scores[name] for pool in names.values() for name in pool},
    }  # fmt: skip
    return seed, run, selection


def copied_runs(out: Path) -> list[str]:
    """The runs whose output is a copy of one source on the validation pairs (validate.is_copy)."""
    from validate import is_copy

    scores = json.loads((out / "validation.json").read_text())["scores"]
    return sorted(name for name, values in scores.items() if name.startswith("ivif_") and is_copy(values))


def export_weights(out: Path, budget: str, ship: bool = True) -> tuple[dict[str, Path], dict | None]:
    """Export every finished target-stage run; the selected full-STFuse seed becomes the default weights.
    ``ship=False`` (``--keep-weights``): export the runs only; the packaged weights and their record stay."""
    from stfuse.models.checkpoint import load_network, save_network

    done = {p.parent.name: json.loads(p.read_text()) for p in out.glob("*/done.json")}
    seconds = {name: record["seconds"] for name, record in done.items()}
    runs = final_runs(out, budget)
    if "stfuse" not in runs and "main" not in runs:
        raise SystemExit(f"no finished full-STFuse run under {out}; run experiments/reproduce.py first")
    seed, chosen, selection = select_shipped(out, runs) if ship else (None, None, None)
    split = split_text(json.loads((out / "validation.json").read_text())) + ", experiments/validate.py"
    exported: dict[str, Path] = {}
    everything = [(v, s, r) for v, seeded in runs.items() for s, r in seeded]
    for variant, run_seed, run in everything:
        net = load_network(run / "checkpoints" / "last.ckpt")
        is_main = run.name == main_run(budget)
        # trained at the budget's own steps, without the ablation sizing
        at_budget_steps = variant in MAIN_KEYS.values() or is_main
        sizing = [] if at_budget_steps or not ablation_config(budget) else [ablation_config(budget)]
        variant = next((v for v, key in MAIN_KEYS.items() if key == variant), variant)
        if is_main:
            command = f"make train-mfif BUDGET={budget} && make transfer-ivif BUDGET={budget}"
        elif at_budget_steps:
            command = (f"python experiments/reproduce.py --budget {budget} --only main-seeds --variants {variant} "
                       f"--main-seeds {run_seed}")  # fmt: skip
        else:
            command = (f"python experiments/reproduce.py --budget {budget} --only ablations --variants {variant} "
                       f"--seeds {run_seed}")  # fmt: skip
        record = {
            "variant": variant, "budget": budget, "seed": run_seed, "config": net.config, "main_run": is_main,
            "budget_steps": at_budget_steps,
            "configs": {"mfif": ["experiments/mfif.yaml", budget_config(budget, "mfif")],
                        "ivif": ["experiments/ivif.yaml", budget_config(budget, "ivif"), *sizing, *VARIANTS[variant][1::2]]},
            "schedule": schedule(budget),
            "train_seconds": {"mfif": seconds.get("mfif"), run.name: seconds.get(run.name)},
            # how the wall time was counted, where a run was resumed or taken over from an equal recipe
            **{key: value for key, value in done.get(run.name, {}).items() if key in ("attempts", "adopted_from")},
            "data": {"source": "train/natural (420 images, synthetic multi-focus pairs)",
                     "target": "train/ivif/roadscene (171) + train/ivif/msrs (12), minus the validation pairs: "
                               + split},
            "command": f"{command}; all runs: python experiments/reproduce.py --budget {budget}",
            "device": f"{platform.processor() or platform.machine()} CPU, 2 cores" if budget == "cpu" else "1 GPU",
        }  # fmt: skip
        path = save_network(
            net, out / "weights" / f"{run.name}.safetensors", {"training": json.dumps(record)}
        )
        exported[run.name] = path
        if ship and run == chosen:
            record = {**record, "selection": selection}
            shipped = save_network(
                net, out / "weights" / f"{SHIPPED}.safetensors", {"training": json.dumps(record)}
            )
            DEFAULT_WEIGHTS.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(shipped, DEFAULT_WEIGHTS)
            DEFAULT_WEIGHTS.with_suffix(".json").write_text(json.dumps(record, indent=2) + "\n")
    return exported, {"seed": seed, "run": chosen.name, **selection} if ship else None


def packaged_selection() -> tuple[str, dict, dict]:
    """``(run, selection, record)`` of the packaged default weights, from their training record: what
    ``--keep-weights`` reports as the shipped model when its runs are not under ``--out``."""
    record_path = DEFAULT_WEIGHTS.with_suffix(".json")
    if not DEFAULT_WEIGHTS.is_file() or not record_path.is_file():
        raise SystemExit(
            f"--keep-weights needs the packaged weights and their record ({DEFAULT_WEIGHTS} and {record_path.name}); "
            "run without it to export them from the runs under --out"
        )
    record = json.loads(record_path.read_text())
    selection = record.get("selection")
    trained = [name for name in record.get("train_seconds", {}) if not name.startswith("mfif")]
    if not selection or len(trained) != 1:
        raise SystemExit(
            f"{record_path}: the record has no selection or no single target-stage run; cannot keep it"
        )
    return trained[0], {**selection, "seed": record["seed"], "run": trained[0]}, record


def weights_digest(path: Path) -> str:
    """SHA-256 of a safetensors file's tensors (names, dtypes, shapes and bytes, in name order). The file's
    own bytes also hold metadata, which may differ between exports of the same network."""
    import hashlib

    import torch
    from safetensors.torch import load_file

    digest = hashlib.sha256()
    for key, tensor in sorted(load_file(str(path)).items()):
        digest.update(f"{key}:{tensor.dtype}:{tuple(tensor.shape)}".encode())
        digest.update(tensor.contiguous().reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def clear_stale_fused(target: Path, digest: str) -> bool:
    """Empty ``target`` when its images came from other weights than ``digest`` (a retrained run), so that
    ``stfuse fuse --skip-existing`` only skips images of these weights. The stamp is ``<target>.weights``
    beside the folder (the folder holds only images). Returns True when images were removed."""
    stamp = target.with_name(f"{target.name}.weights")
    stale = target.is_dir() and (not stamp.is_file() or stamp.read_text().strip() != digest)
    if stale:
        shutil.rmtree(target)
    return stale


def stamp_fused(target: Path, digest: str) -> None:
    """Record which weights fused the images in ``target`` (see :func:`clear_stale_fused`)."""
    target.with_name(f"{target.name}.weights").write_text(digest + "\n")


def fuse_and_score(
    out: Path, data: Path, weights: dict[str, Path], shipped_run: str | None = None
) -> dict[str, dict]:
    """Fuse every test set with every model and score them; the shipped model's images are a copy of the
    run it was exported from (the same network, so the same pixels)."""
    summaries = {}
    digests = {method: weights_digest(path) for method, path in weights.items()}  # one read per network
    for name in SETS:
        ir, vi = data / "ivif" / name / "ir", data / "ivif" / name / "vi"
        fused_args = []
        for method, path in sorted(weights.items(), key=lambda item: item[0] == SHIPPED):
            target = out / "fused" / method / name
            source = out / "fused" / str(shipped_run) / name
            if method == SHIPPED and shipped_run in weights and source.is_dir():
                shutil.rmtree(target, ignore_errors=True)
                shutil.copytree(source, target)
                fused_args += ["--fused", f"{method}={target}"]
                continue
            digest = digests[method]
            if clear_stale_fused(target, digest):
                print(f"{target}: not fused by these weights (retrained, or unrecorded); fusing again")
            sh([sys.executable, "-m", "stfuse", "fuse", "--ckpt", str(path), "--ir", str(ir), "--vi", str(vi),
                "--out", str(target), "--gray", "--quiet", "--skip-existing"])  # fmt: skip
            stamp_fused(target, digest)
            fused_args += ["--fused", f"{method}={target}"]
        eval_dir = out / "eval" / name
        sh([sys.executable, "-m", "stfuse", "evaluate", "--dataset", name, "--root", str(data), *fused_args,
            "--baseline", "average,maximum,laplacian,gradient,copy_ir,copy_vi", "--preset", "cddfuse",
            "--out", str(eval_dir), "--report", str(eval_dir / "report.html"), "--no-progress"])  # fmt: skip
        summaries[name] = json.loads(next(eval_dir.glob("*.json")).read_text())
    return summaries


def write_grids(out: Path, data: Path, methods: list[str], pairs: int = 3) -> list[Path]:
    """Fused-only grids (our outputs) for docs; IR | VIS | fused (| SeAFusion's released image, where the data
    root has it under reference/<set>/seafusion) grids stay under <out> (data images are not committed)."""
    from data_modules.io import read_image
    from stfuse.utils.visual import make_grid, save_png

    written = []
    for name in SETS:
        stems = sorted(p.stem for p in (out / "fused" / methods[0] / name).glob("*.png"))[:pairs]
        docs_rows, full_rows = [], []
        for stem in stems:
            fused = [read_image(out / "fused" / m / name / f"{stem}.png") for m in methods]
            ir = read_image(next((data / "ivif" / name / "ir").glob(f"{stem}.*")))
            vi = read_image(next((data / "ivif" / name / "vi").glob(f"{stem}.*")))
            docs_rows.append(fused)
            peer = sorted((data / "reference" / name / "seafusion").glob(f"{stem}.*"))
            full_rows.append([ir, vi, *fused, *(read_image(peer[0]) for _ in peer[:1])])
        written.append(
            save_png(make_grid(docs_rows, height=150), REPO / "docs" / "images" / f"results_{name}.png")
        )
        save_png(make_grid(full_rows, height=150), out / "grids" / f"{name}_ir_vis_fused.png")
    return written


def selection_text(selection: dict) -> str:
    """How the shipped run was chosen, for the results page: the rule, then what it found."""
    wins = selection["full_stfuse_wins"]
    found = (
        f"full STFuse's seed means won {len(wins['metrics'])} of {wins['of']} ({', '.join(wins['metrics']) or 'none'})"
        if all(wins["runs"].values())
        else "one variant only had runs to choose from"
    )
    rank = selection["mean_rank"][selection["run"]]
    return (
        f"`{selection['run']}`, chosen on {selection['split']} ({selection['rule']}): {found}, so "
        f"{VARIANT_NAMES[selection['variant']]} ships, and `{selection['run']}` has the best mean rank of its "
        f"{len(selection['mean_rank'])} seed(s) ({rank:.2f})"
    )


def seeds_text(runs: dict[str, list[tuple[int, Path]]], apart: bool = True) -> str:
    """The seeds each variant has in the tables (``make reproduce`` trains 0, 1, 2; more where they were run).
    ``apart``: the budget sizes its ablation seeds apart from its own steps (an ablation.yaml)."""
    where = "at the ablation steps" if apart else "at the budget's own steps"
    labels = {**{key: f"{VARIANT_NAMES[v]} at the budget's own steps" for v, key in MAIN_KEYS.items()},
              **{v: f"{label} {where}" for v, label in VARIANT_NAMES.items()}}  # fmt: skip
    return "; ".join(
        f"{labels[key]}: {', '.join(str(seed) for seed, _ in seeded)}"
        for key, seeded in runs.items()
        if seeded
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="outputs/reproduce")
    parser.add_argument("--data-root", default=str(find_data_root()))
    parser.add_argument("--budget", default="cpu")
    parser.add_argument(
        "--keep-weights", action="store_true",
        help="keep the packaged default weights and their record (do not select or export new ones): the page's "
             "shipped row is those weights, fused and scored here, beside the runs under --out; for an output folder "
             "that holds the ablation seeds and probes but not the runs the packaged weights came from",
    )  # fmt: skip
    args = parser.parse_args()
    out, data = (REPO / args.out).resolve(), Path(args.data_root).resolve()

    recorded: dict[str, float] = {}
    if args.keep_weights:
        shipped_run, selection, record = packaged_selection()
        if record.get("budget") != args.budget:
            raise SystemExit(
                f"the packaged weights were trained on budget {record.get('budget')!r}, not {args.budget!r}"
            )
        weights, _ = export_weights(out, args.budget, ship=False)
        if shipped_run in weights:  # the run is here after all: its export is the same network
            shipped_path = weights[shipped_run]
        else:
            shipped_path = DEFAULT_WEIGHTS
            recorded = {
                f"{name} (packaged weights' record)": s for name, s in record["train_seconds"].items() if s
            }
    else:
        weights, selection = export_weights(out, args.budget)
        shipped_path = out / "weights" / f"{SHIPPED}.safetensors"
    summaries = fuse_and_score(out, data, {SHIPPED: shipped_path, **weights}, shipped_run=selection["run"])
    runs = {v: [r.name for _, r in seeded] for v, seeded in final_runs(out, args.budget).items()}
    grid_methods = [SHIPPED] + [
        seeded[0] for v, seeded in runs.items() if v != "stfuse" and v not in MAIN_KEYS.values() and seeded
    ]
    grids = write_grids(out, data, grid_methods)
    kind = VARIANT_NAMES[selection["variant"]]
    if selection["run"] == main_run(args.budget):
        kind += ", the main run"
    elif parse_main_budget_run(selection["run"]):
        kind += ", at the budget's own steps"
    if args.keep_weights:
        kind += ", the packaged weights kept"
    shipped_label = f"**STFuse, shipped weights** ({kind}, `{selection['run']}`)"
    fields = {
        "budget": args.budget, "schedule": json.dumps(schedule(args.budget)),
        "mfif_config": budget_config(args.budget, "mfif"), "ivif_config": budget_config(args.budget, "ivif"),
        "recipe": json.dumps(recipe(), ensure_ascii=False),
        "shipped_run": selection["run"],
        "copies": copied_runs(out),
        "selection": selection_text(selection) + (
            " (the packaged weights, kept by `results.py --keep-weights`: chosen when they were trained, as their "
            "record says; their runs at the budget's own steps are not in this output folder)"
            if args.keep_weights
            else ""
        ),
        "seeds": seeds_text(final_runs(out, args.budget), apart=ablation_config(args.budget) is not None),
    }  # fmt: skip
    write_page(summaries, runs, shipped_label, grids, fields, out, recorded)
    print((REPO / "docs" / "results.md").read_text())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
