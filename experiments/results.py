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
import statistics
import subprocess
import sys
from pathlib import Path

import yaml

from stfuse.runtime import find_data_root

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "experiments"))
from reproduce import MAIN_RUN, PROBES, VARIANTS, budget_config, budget_settings  # noqa: E402


def schedule(budget: str) -> dict:
    """Steps, crops and batch sizes of both stages, read from the budget's overlays."""
    mfif, ivif = budget_settings(budget, "mfif"), budget_settings(budget, "ivif")
    target, replay = (
        ivif["data"]["init_args"]["ivif"]["init_args"],
        ivif["data"]["init_args"]["replay"]["init_args"],
    )
    return {"mfif_steps": mfif["trainer"]["max_steps"], "mfif_crop": mfif["data"]["init_args"]["crop_size"],
            "mfif_batch": mfif["data"]["init_args"]["batch_size"], "ivif_steps": ivif["trainer"]["max_steps"],
            "ivif_crop": target["crop_size"], "ivif_batch": target["batch_size"], "replay_batch": replay["batch_size"]}  # fmt: skip


def recipe() -> dict:
    """The target-stage recipe: the model settings of experiments/ivif.yaml (= the stage's defaults)."""
    return yaml.safe_load((REPO / "experiments" / "ivif.yaml").read_text())["model"]["init_args"]


SETS = {"tno": "TNO-25", "roadscene": "RoadScene-50", "msrs": "MSRS-20"}
TABLE_METRICS = ["EN", "SD", "SF", "MI", "SCD", "VIF", "Qabf", "SSIM"]
#: CDDFuse (CVPR 2023), Table 1 of the paper, on the same pairs with the same metric code.
CDDFUSE = {
    "tno": dict(zip(TABLE_METRICS, [7.12, 46.00, 13.15, 2.19, 1.76, 0.77, 0.54, 1.03])),
    "roadscene": dict(zip(TABLE_METRICS, [7.44, 54.67, 16.36, 2.30, 1.81, 0.69, 0.52, 0.98])),
}
#: SeAFusion's released outputs scored with this project's metric code (issue 11 of the tracker).
SEAFUSION = {
    "tno": dict(zip(TABLE_METRICS, [7.10, 44.20, 12.41, 2.00, 1.72, 0.69, 0.51, 0.99])),
    "roadscene": dict(zip(TABLE_METRICS, [7.43, 54.14, 16.21, 2.25, 1.74, 0.68, 0.52, 0.92])),
    "msrs": dict(zip(TABLE_METRICS, [6.49, 44.65, 11.72, 2.75, 1.75, 0.99, 0.67, 0.99])),
}
VARIANT_NAMES = {
    "stfuse": "STFuse (full)",
    "no_guidance": "transfer without L_g",
    "no_transfer": "no transfer",
}
BASELINE_NAMES = {
    "average": "average",
    "maximum": "maximum",
    "laplacian": "Laplacian pyramid",
    "gradient": "gradient-weighted",
    "ir": "copy of the infrared image",
    "vi": "copy of the visible image",
}
DEFAULT_WEIGHTS = REPO / "src" / "stfuse" / "weights" / "stfuse_default.safetensors"
SHIPPED = "shipped"  # the method name of the default weights in the evaluation tables


def sh(command: list[str]) -> None:
    print("$ " + " ".join(command), flush=True)
    subprocess.run(command, check=True, cwd=REPO)


def final_runs(out: Path) -> dict[str, list[tuple[int, Path]]]:
    """``{variant: [(seed, run dir), ...]}`` for the finished target-stage runs under ``out``."""
    runs: dict[str, list[tuple[int, Path]]] = {}
    for variant in VARIANT_NAMES:
        for run in sorted(out.glob(f"ivif_{variant}_s*")):
            if (run / "done.json").is_file():  # finished (an interrupted run has only an interval last.ckpt)
                runs.setdefault(variant, []).append((int(run.name.rsplit("_s", 1)[1]), run))
    return runs


def mean_rank(scores: dict[str, dict[str, float]], candidates: list[str]) -> dict[str, float]:
    """Mean rank (1 = best) of each candidate over the table metrics (all higher-is-better)."""
    ranks = {name: 0.0 for name in candidates}
    for metric in TABLE_METRICS:
        ordered = sorted(candidates, key=lambda name: -scores[name][metric])
        for position, name in enumerate(ordered, start=1):
            ranks[name] += position / len(TABLE_METRICS)
    return ranks


def select_shipped(out: Path, runs: dict[str, list[tuple[int, Path]]]) -> tuple[int, Path, dict]:
    """The transfer run (a seed of full STFuse or of transfer without L_g) with the best mean
    rank on the held-out validation pairs (never a test set), among the runs whose output is not a copy of
    one source (validate.is_copy)."""
    from validate import is_copy

    validation = json.loads((out / "validation.json").read_text())
    pool = list(runs.get("stfuse", [])) + list(runs.get("no_guidance", []))
    rejected = [run.name for _, run in pool if is_copy(validation["scores"][run.name])]
    pool = [(seed, run) for seed, run in pool if run.name not in rejected]
    if not pool:
        raise SystemExit(f"every transfer run is a copy of one source ({rejected}); nothing to ship")
    candidates = [run.name for _, run in pool]
    ranks = mean_rank(validation["scores"], candidates)
    best = min(candidates, key=lambda name: ranks[name])
    seed, run = next((s, r) for s, r in pool if r.name == best)
    selection = {"split": f"{validation['pairs']} pairs held out of train/ivif/{{roadscene,msrs}} (split seed "
                          f"{validation['seed']}), experiments/validate.py", "rule": "best mean rank over the 8 table "
                          "metrics among the transfer runs (the seeds of full STFuse and of transfer "
                 "without L_g) whose output is not a copy of one source", "rejected_as_copies": rejected,
                 "mean_rank": ranks,
                 "validation_scores": {name: validation["scores"][name] for name in candidates}}  # fmt: skip
    return seed, run, selection


def export_weights(out: Path, budget: str) -> tuple[dict[str, Path], dict]:
    """Export every finished target-stage run; the selected full-STFuse seed becomes the default weights."""
    from stfuse.models.checkpoint import load_network, save_network

    seconds = {p.parent.name: json.loads(p.read_text())["seconds"] for p in out.glob("*/done.json")}
    runs = final_runs(out)
    if "stfuse" not in runs:
        raise SystemExit(f"no finished full-STFuse run under {out}; run experiments/reproduce.py first")
    seed, chosen, selection = select_shipped(out, runs)
    exported: dict[str, Path] = {}
    everything = [(v, s, r) for v, seeded in runs.items() for s, r in seeded]
    for variant, run_seed, run in everything:
        net = load_network(run / "checkpoints" / "last.ckpt")
        record = {
            "variant": variant, "budget": budget, "seed": run_seed, "config": net.config,
            "configs": {"mfif": ["experiments/mfif.yaml", budget_config(budget, "mfif")],
                        "ivif": ["experiments/ivif.yaml", *VARIANTS[variant][1::2], budget_config(budget, "ivif")]},
            "schedule": schedule(budget),
            "train_seconds": {"mfif": seconds.get("mfif"), run.name: seconds.get(run.name)},
            "data": {"source": "train/natural (420 images, synthetic multi-focus pairs)",
                     "target": "train/ivif/roadscene (171) + train/ivif/msrs (12), minus 16 held-out validation pairs"},
            "command": f"make train-mfif BUDGET={budget} && make transfer-ivif BUDGET={budget} (seed {run_seed}); "
                       f"all runs: python experiments/reproduce.py --budget {budget}",
            "device": f"{platform.processor() or platform.machine()} CPU, 2 cores" if budget == "cpu" else "1 GPU",
        }  # fmt: skip
        path = save_network(
            net, out / "weights" / f"{run.name}.safetensors", {"training": json.dumps(record)}
        )
        exported[run.name] = path
        if run == chosen:
            record = {**record, "selection": selection}
            shipped = save_network(
                net, out / "weights" / f"{SHIPPED}.safetensors", {"training": json.dumps(record)}
            )
            DEFAULT_WEIGHTS.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(shipped, DEFAULT_WEIGHTS)
            DEFAULT_WEIGHTS.with_suffix(".json").write_text(json.dumps(record, indent=2) + "\n")
    return exported, {"seed": seed, "run": chosen.name, **selection}


def fuse_and_score(
    out: Path, data: Path, weights: dict[str, Path], shipped_run: str | None = None
) -> dict[str, dict]:
    """Fuse every test set with every model and score them; the shipped model's images are a copy of the
    run it was exported from (the same network, so the same pixels)."""
    summaries = {}
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
            sh([sys.executable, "-m", "stfuse", "fuse", "--ckpt", str(path), "--ir", str(ir), "--vi", str(vi),
                "--out", str(target), "--gray", "--quiet", "--skip-existing"])  # fmt: skip
            fused_args += ["--fused", f"{method}={target}"]
        eval_dir = out / "eval" / name
        sh([sys.executable, "-m", "stfuse", "evaluate", "--dataset", name, "--root", str(data), *fused_args,
            "--baseline", "average,maximum,laplacian,gradient,ir,vi", "--preset", "cddfuse",
            "--out", str(eval_dir), "--report", str(eval_dir / "report.html"), "--no-progress"])  # fmt: skip
        summaries[name] = json.loads(next(eval_dir.glob("*.json")).read_text())
    return summaries


def _mean(summary: dict, method: str, metric: str) -> float | None:
    entry = summary["methods"].get(method, {}).get(metric)
    if entry is None:
        return None
    return float(entry["mean"] if isinstance(entry, dict) else entry)


def _fmt(value: float | None) -> str:
    return "–" if value is None else f"{value:.3f}" if abs(value) < 100 else f"{value:.1f}"


def _aggregate(summary: dict, methods: list[str], metric: str) -> tuple[float | None, float | None]:
    """Mean and sample standard deviation over ``methods`` (the seeds of one variant)."""
    values = [v for v in (_mean(summary, m, metric) for m in methods) if v is not None]
    if not values:
        return None, None
    return statistics.fmean(values), (statistics.stdev(values) if len(values) > 1 else 0.0)


def results_table(name: str, summary: dict, metrics: list[str], runs: dict[str, list[str]],
                  shipped_label: str | None, references: bool = True) -> tuple[str, dict]:  # fmt: skip
    """Markdown table: the shipped model, each variant as mean ± std over its seeds, the baselines and the
    reference methods; returns it with the goal facts (which metrics each comparison wins)."""
    lower = set(summary.get("lower_is_better", []))
    rows: list[tuple[str, list[float | None], list[float | None]]] = []
    if shipped_label and SHIPPED in summary["methods"]:
        rows.append((shipped_label, [_mean(summary, SHIPPED, m) for m in metrics], [None] * len(metrics)))
    means: dict[str, dict[str, float | None]] = {}
    for variant, label in VARIANT_NAMES.items():
        if runs.get(variant):
            stats = [_aggregate(summary, runs[variant], m) for m in metrics]
            seeds = len(runs[variant])
            rows.append(
                (
                    f"{label}, mean ± sd of {seeds} seed{'s' if seeds > 1 else ''}",
                    [s[0] for s in stats],
                    [s[1] for s in stats],
                )
            )
            means[variant] = dict(zip(metrics, [s[0] for s in stats]))
    for baseline, label in BASELINE_NAMES.items():
        if baseline in summary["methods"]:
            rows.append(
                (f"{label} (baseline)", [_mean(summary, baseline, m) for m in metrics], [None] * len(metrics))
            )
    if references and name in SEAFUSION:
        rows.append(
            (
                "SeAFusion (measured, same metric code)",
                [SEAFUSION[name].get(m) for m in metrics],
                [None] * len(metrics),
            )
        )
    if references and name in CDDFUSE:
        rows.append(("CDDFuse (published)", [CDDFUSE[name].get(m) for m in metrics], [None] * len(metrics)))
    best = {}
    for j, metric in enumerate(metrics):
        column = [r[1][j] for r in rows if r[1][j] is not None]
        best[metric] = (min if metric in lower else max)(column) if column else None
    lines = ["| method | " + " | ".join(f"{m}{' ↓' if m in lower else ''}" for m in metrics) + " |",
             "|---|" + "---|" * len(metrics)]  # fmt: skip
    for label, values, spreads in rows:
        cells = []
        for value, spread, metric in zip(values, spreads, metrics):
            text = _fmt(value) + (f" ± {_fmt(spread)}" if spread is not None else "")
            cells.append(f"**{text}**" if value is not None and value == best[metric] else text)
        lines.append(f"| {label} | " + " | ".join(cells) + " |")

    def wins(ours: dict[str, float | None], theirs: dict[str, float | None]) -> list[str]:
        return [m for m in TABLE_METRICS if ours.get(m) is not None and theirs.get(m) is not None
                and ((ours[m] < theirs[m]) if m in lower else (ours[m] > theirs[m]))]  # fmt: skip

    facts: dict[str, list[str]] = {}
    shipped = {m: _mean(summary, SHIPPED, m) for m in metrics} if SHIPPED in summary["methods"] else {}
    if shipped and set(TABLE_METRICS) <= set(metrics):
        facts["shipped_beats_laplacian"] = wins(shipped, {m: _mean(summary, "laplacian", m) for m in metrics})
        if name in SEAFUSION:
            facts["shipped_beats_seafusion"] = wins(shipped, SEAFUSION[name])
        if name in CDDFUSE:
            facts["shipped_beats_cddfuse"] = wins(shipped, CDDFUSE[name])
        if "stfuse" in means and "no_transfer" in means:
            facts["full_beats_no_transfer"] = wins(means["stfuse"], means["no_transfer"])
        if "no_guidance" in means and "no_transfer" in means:
            facts["no_guidance_beats_no_transfer"] = wins(means["no_guidance"], means["no_transfer"])
        if "stfuse" in means and "no_guidance" in means:
            facts["full_beats_no_guidance"] = wins(means["stfuse"], means["no_guidance"])
    return "\n".join(lines), facts


def probe_table(out: Path) -> str:
    """The "what moved the metrics" table: every probe and final run scored on the validation pairs."""
    path = out / "validation.json"
    if not path.is_file():
        return "(no validation scores yet: run experiments/validate.py)"
    validation = json.loads(path.read_text())
    scores = validation["scores"]
    laplacian = scores.get("laplacian")
    lines = ["| run | what it tests | " + " | ".join(TABLE_METRICS) + " | > Laplacian | compared with | wins/losses |",
             "|---|---|" + "---|" * (len(TABLE_METRICS) + 3)]  # fmt: skip
    ordered = [f"probe_{p}" for p in PROBES if f"probe_{p}" in scores]
    ordered += sorted(k for k in scores if k.startswith("ivif_"))
    ordered += [k for k in ("average", "maximum", "laplacian", "ir", "vi") if k in scores]
    for name in ordered:
        values = scores[name]
        versus, delta = "–", "–"
        if name.startswith("probe_"):
            _, _, what, reference = PROBES[name[6:]]
            other = (
                MAIN_RUN
                if reference == "main"
                else f"probe_{reference}"
                if reference in PROBES
                else reference
            )
            if reference and other in scores:
                up = sum(values[m] > scores[other][m] for m in TABLE_METRICS)
                versus, delta = other, f"{up}/{len(TABLE_METRICS) - up}"
        else:
            what = (
                "ablation run (the budget's steps)"
                if name.startswith("ivif_")
                else "copy baseline"
                if name in ("ir", "vi")
                else "classical baseline"
            )
        beats = f"{sum(values[m] > laplacian[m] for m in TABLE_METRICS)}/8" if laplacian else "–"
        lines.append(
            f"| {name} | {what} | "
            + " | ".join(f"{values[m]:.3f}" for m in TABLE_METRICS)
            + f" | {beats} | {versus} | {delta} |"
        )
    return (
        f"Validation split: {validation['pairs']} pairs held out of train/ivif (split seed {validation['seed']}).\n\n"
        + "\n".join(lines)
    )


def write_grids(out: Path, data: Path, methods: list[str], pairs: int = 3) -> list[Path]:
    """Fused-only grids (our outputs) for docs; IR | VIS | fused grids stay under <out> (data images are
    not committed)."""
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
            full_rows.append([ir, vi, *fused])
        written.append(
            save_png(make_grid(docs_rows, height=150), REPO / "docs" / "images" / f"results_{name}.png")
        )
        save_png(make_grid(full_rows, height=150), out / "grids" / f"{name}_ir_vis_fused.png")
    return written


def _goal_line(label: str, facts: dict[str, list[str]], key: str, need: int, what: str) -> str | None:
    if key not in facts:
        return None
    won = facts[key]
    verdict = "met" if len(won) >= need else "missed"
    return f"- {label}: {what} on {len(won)} of 8 ({', '.join(won) or 'none'}); goal ≥ {need}: **{verdict}**."


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="outputs/reproduce")
    parser.add_argument("--data-root", default=str(find_data_root()))
    parser.add_argument("--budget", default="cpu")
    args = parser.parse_args()
    out, data = (REPO / args.out).resolve(), Path(args.data_root).resolve()

    weights, selection = export_weights(out, args.budget)
    shipped_path = out / "weights" / f"{SHIPPED}.safetensors"
    summaries = fuse_and_score(out, data, {SHIPPED: shipped_path, **weights}, shipped_run=selection["run"])
    runs = {v: [r.name for _, r in seeded] for v, seeded in final_runs(out).items()}
    grid_methods = [SHIPPED] + [seeded[0] for v, seeded in runs.items() if v != "stfuse" and seeded]
    grids = write_grids(out, data, grid_methods)
    kind = VARIANT_NAMES["no_guidance" if selection["run"].startswith("ivif_no_guidance") else "stfuse"]
    shipped_label = f"**STFuse, shipped weights** ({kind}, `{selection['run']}`)"

    sections, readme_rows, goals = [], [], []
    for name, label in SETS.items():
        table, facts = results_table(name, summaries[name], TABLE_METRICS, runs, shipped_label)
        extra, _ = results_table(
            name, summaries[name], ["AG", "CC", "PSNR", "MSE"], runs, shipped_label, references=False
        )
        lines = [
            _goal_line(
                label, facts, "shipped_beats_laplacian", 7, "the shipped model beats the Laplacian pyramid"
            ),
            _goal_line(
                label, facts, "shipped_beats_seafusion", 5, "the shipped model beats SeAFusion (measured)"
            ),
            _goal_line(
                label,
                facts,
                "shipped_beats_cddfuse",
                5,
                "the shipped model beats CDDFuse (published; stretch)",
            ),
            _goal_line(
                label, facts, "full_beats_no_transfer", 6, "full STFuse (mean of seeds) beats no transfer"
            ),
            _goal_line(
                label,
                facts,
                "no_guidance_beats_no_transfer",
                0,
                "transfer without L_g (mean) beats no transfer",
            ),
            _goal_line(
                label,
                facts,
                "full_beats_no_guidance",
                5,
                "full STFuse (mean of seeds) beats transfer without L_g",
            ),
        ]
        goals += [line for line in lines if line and "goal ≥ 0" not in line]
        notes = [line.replace("; goal ≥ 0: **met**.", ".") for line in lines if line]
        sections.append(f"### {label}\n\n{table}\n\n" + "".join(f"{n}\n" for n in notes)
                        + f"\nFurther metrics:\n\n{extra}\n\n![{label}](images/{grids[list(SETS).index(name)].name})\n")  # fmt: skip
        readme_rows.append(f"**{label}**\n\n{table}\n")

    # Each finished run records its own wall time (runs in parallel processes share no timings file).
    seconds = {p.parent.name: json.loads(p.read_text())["seconds"] for p in sorted(out.glob("*/done.json"))}
    record = "\n".join(f"| {k} | {v / 60:.1f} min |" for k, v in sorted(seconds.items()))
    grid_note = ", ".join(
        ["shipped"] + [VARIANT_NAMES[v] + f" ({runs[v][0]})" for v in runs if v != "stfuse" and runs[v]]
    )
    body = RESULTS_TEMPLATE.format(
        budget=args.budget,
        schedule=json.dumps(schedule(args.budget)), mfif_config=budget_config(args.budget, "mfif"),
        ivif_config=budget_config(args.budget, "ivif"),
        recipe=json.dumps(recipe(), ensure_ascii=False), timings=record or "| (not recorded) | |",
        selection=f"`{selection['run']}`, chosen by {selection['rule']} on {selection['split']}",
        goals="\n".join(goals), sections="\n".join(sections), probes=probe_table(out), grid_note=grid_note,
    )  # fmt: skip
    notes = REPO / "experiments" / "reference" / "notes.md"
    if notes.is_file():  # the hand-written analysis of the committed run
        body += "\n" + notes.read_text()
    (REPO / "docs" / "results.md").write_text(body)
    readme = REPO / "README.md"
    text = readme.read_text()
    start, end = "<!-- results:start -->", "<!-- results:end -->"
    if start in text and end in text:
        head, rest = text.split(start, 1)
        _, tail = rest.split(end, 1)
        text = (
            head
            + start
            + "\n\n"
            + "\n".join(readme_rows)
            + "\nDetails, ablations and grids: [docs/results.md](docs/results.md).\n\n"
            + end
            + tail
        )
        readme.write_text(text)
    print((REPO / "docs" / "results.md").read_text())
    return 0


RESULTS_TEMPLATE = """# Results: STFuse on TNO-25, RoadScene-50 and MSRS-20

All numbers are produced by `make reproduce` (`python experiments/reproduce.py --budget {budget}`: training,
validation scoring, then `experiments/results.py`: export, fusion, metrics, this file), with the `cddfuse`
metric preset (verified against the reference Evaluator values, see docs/metrics.md). Fused images are the
fused luminance, evaluated as 8-bit grey images, as in the community's tables. Best value per column in
bold; ↓ marks metrics where lower is better. CDDFuse's row is its published Table 1 on the same pairs;
SeAFusion's row is its released outputs scored with this project's metric code.

## How the models were trained

- Budget `{budget}` (`{mfif_config}`, `{ivif_config}`): {schedule}
- Recipe: experiments/mfif.yaml and experiments/ivif.yaml, equal to the stages' defaults; every variant and
  probe is one overlay on them (experiments/ablations/, experiments/probes/). The target stage's settings:
  `{recipe}`. One run by hand: `make train-mfif BUDGET={budget} && make transfer-ivif BUDGET={budget}`.
- Source stage: synthetic multi-focus pairs from `train/natural` (420 all-in-focus images), seed 0;
  validation on held-out synthetic pairs.
- Target stage: `train/ivif/roadscene` (171 pairs) + `train/ivif/msrs` (12 pairs) minus 16 pairs held out
  for validation (split seed 0, the same for every run). No test pair is used for training or selection.
- The three variants (full STFuse, transfer without L_g, no transfer) share one source stage, one step budget
  and the seeds 0, 1, 2 (the seed sets the target stage's crop order and augmentation, and the initial
  weights of the no-transfer model).
- Shipped weights (`src/stfuse/weights/stfuse_default.*`): {selection}.

| run | wall time |
|---|---|
{timings}

## Goals

{goals}

## Tables

{sections}
Grids: one row per pair, columns {grid_note}.

## What moved the metrics

Each probe is one target-stage run (the budget's steps, seed 0; experiments/probes/probes.yaml) that changes
one thing from the run it is compared with, scored on the validation pairs, never on a test set. "wins/losses" counts the
metrics on which the probe beats / loses to that run. Every metric in the table counts higher as better.

{probes}
"""


if __name__ == "__main__":
    raise SystemExit(main())
