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

REPO = Path(__file__).resolve().parents[1]
SETS = {"tno": "TNO-25", "roadscene": "RoadScene-50", "msrs": "MSRS-20"}
TABLE_METRICS = ["EN", "SD", "SF", "MI", "SCD", "VIF", "Qabf", "SSIM"]
#: CDDFuse (CVPR 2023), Table 1 of the paper, on the same pairs with the same metric code.
CDDFUSE = {
    "tno": dict(zip(TABLE_METRICS, [7.12, 46.00, 13.15, 2.19, 1.76, 0.77, 0.54, 1.03])),
    "roadscene": dict(zip(TABLE_METRICS, [7.44, 54.67, 16.36, 2.30, 1.81, 0.69, 0.52, 0.98])),
}
VARIANT_NAMES = {"stfuse": "STFuse (full)", "no_guidance": "transfer without L_g", "no_transfer": "no transfer"}
BASELINE_NAMES = {"average": "average", "maximum": "maximum", "laplacian": "Laplacian pyramid", "gradient": "gradient-weighted"}
DEFAULT_WEIGHTS = REPO / "src" / "stfuse" / "weights" / "stfuse_default.safetensors"


def sh(command: list[str]) -> None:
    print("$ " + " ".join(command), flush=True)
    subprocess.run(command, check=True, cwd=REPO)


def export_weights(out: Path, budget: str) -> dict[str, Path]:
    from stfuse.models.checkpoint import load_network, save_network

    timings = json.loads((out / "timings.json").read_text()) if (out / "timings.json").is_file() else {}
    exported = {}
    for variant in VARIANT_NAMES:
        ckpt = out / f"ivif_{variant}" / "checkpoints" / "last.ckpt"
        if not ckpt.is_file():
            print(f"skipping {variant}: no {ckpt}")
            continue
        net = load_network(ckpt)
        record = {
            "variant": variant,
            "budget": budget,
            "seed": 0,
            "config": net.config,
            "train_seconds": timings.get("seconds", {}),
            "schedule": {k: timings.get(k) for k in ("mfif_steps", "ivif_steps", "crop", "batch", "preset")},
            "data": {"source": "train/natural (420 images, synthetic multi-focus pairs)",
                     "target": "train/ivif/roadscene (171) + train/ivif/msrs (12)"},
            "command": f"python experiments/reproduce.py --budget {budget}",
            "device": f"{platform.processor() or platform.machine()} CPU, 2 cores" if budget == "cpu" else "1 GPU",
        }  # fmt: skip
        path = save_network(net, out / "weights" / f"{variant}.safetensors", {"training": json.dumps(record)})
        exported[variant] = path
        if variant == "stfuse":
            DEFAULT_WEIGHTS.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(path, DEFAULT_WEIGHTS)
            DEFAULT_WEIGHTS.with_suffix(".json").write_text(json.dumps(record, indent=2) + "\n")
    return exported


def fuse_and_score(out: Path, data: Path, weights: dict[str, Path]) -> dict[str, dict]:
    summaries = {}
    for name in SETS:
        ir, vi = data / "ivif" / name / "ir", data / "ivif" / name / "vi"
        fused_args = []
        for variant, path in weights.items():
            target = out / "fused" / variant / name
            sh([sys.executable, "-m", "stfuse", "fuse", "--ckpt", str(path), "--ir", str(ir), "--vi", str(vi),
                "--out", str(target), "--gray", "--quiet", "--skip-existing"])  # fmt: skip
            fused_args += ["--fused", f"{variant}={target}"]
        eval_dir = out / "eval" / name
        sh([sys.executable, "-m", "stfuse", "evaluate", "--dataset", name, "--root", str(data), *fused_args,
            "--baseline", "average,maximum,laplacian,gradient", "--preset", "cddfuse",
            "--out", str(eval_dir), "--report", str(eval_dir / "report.html"), "--no-progress"])  # fmt: skip
        summaries[name] = json.loads(next(eval_dir.glob("*.json")).read_text())
    return summaries


def _mean(summary: dict, method: str, metric: str) -> float | None:
    entry = summary["methods"].get(method, {}).get(metric)
    if entry is None:
        return None
    return float(entry["mean"] if isinstance(entry, dict) else entry)


def _row(label: str, values: list[float | None], best: list[bool]) -> str:
    cells = []
    for value, is_best in zip(values, best):
        text = "–" if value is None else f"{value:.3f}" if abs(value) < 100 else f"{value:.1f}"
        cells.append(f"**{text}**" if is_best else text)
    return f"| {label} | " + " | ".join(cells) + " |"


def results_table(name: str, summary: dict, metrics: list[str]) -> tuple[str, dict]:
    rows: list[tuple[str, list[float | None]]] = []
    for variant, label in VARIANT_NAMES.items():
        if variant in summary["methods"]:
            rows.append((label, [_mean(summary, variant, m) for m in metrics]))
    for baseline, label in BASELINE_NAMES.items():
        if baseline in summary["methods"]:
            rows.append((f"{label} (baseline)", [_mean(summary, baseline, m) for m in metrics]))
    if name in CDDFUSE:
        rows.append(("CDDFuse (published)", [CDDFUSE[name].get(m) for m in metrics]))
    lower = set(summary.get("lower_is_better", []))
    best_values = {}
    for j, metric in enumerate(metrics):
        column = [r[1][j] for r in rows if r[1][j] is not None]
        best_values[metric] = (min if metric in lower else max)(column) if column else None
    lines = ["| method | " + " | ".join(f"{m}{' ↓' if m in lower else ''}" for m in metrics) + " |",
             "|---|" + "---|" * len(metrics)]  # fmt: skip
    for label, values in rows:
        lines.append(_row(label, values, [v is not None and v == best_values[m] for v, m in zip(values, metrics)]))
    facts = {}
    full = dict(zip(metrics, rows[0][1])) if rows and rows[0][0] == VARIANT_NAMES["stfuse"] else {}
    if full and name in CDDFUSE:
        facts["beats_cddfuse"] = [m for m in TABLE_METRICS if full.get(m) is not None and full[m] > CDDFUSE[name][m]]
    scratch = dict(zip(metrics, next((r[1] for r in rows if r[0] == VARIANT_NAMES["no_transfer"]), [])))
    if full and scratch:
        facts["beats_no_transfer"] = [
            m for m in metrics if full.get(m) is not None and scratch.get(m) is not None
            and ((full[m] < scratch[m]) if m in lower else (full[m] > scratch[m]))
        ]  # fmt: skip
    return "\n".join(lines), facts


def write_grids(out: Path, data: Path, variants: list[str], pairs: int = 3) -> list[Path]:
    """Fused-only grids (our outputs) for docs; IR | VIS | fused grids stay under <out> (data images are
    not committed)."""
    from data_modules.io import read_image
    from stfuse.utils.visual import make_grid, save_png

    written = []
    for name in SETS:
        stems = sorted(p.stem for p in (out / "fused" / variants[0] / name).glob("*.png"))[:pairs]
        docs_rows, full_rows = [], []
        for stem in stems:
            fused = [read_image(out / "fused" / v / name / f"{stem}.png") for v in variants]
            ir = read_image(next((data / "ivif" / name / "ir").glob(f"{stem}.*")))
            vi = read_image(next((data / "ivif" / name / "vi").glob(f"{stem}.*")))
            docs_rows.append(fused)
            full_rows.append([ir, vi, *fused])
        written.append(save_png(make_grid(docs_rows, height=150), REPO / "docs" / "images" / f"results_{name}.png"))
        save_png(make_grid(full_rows, height=150), out / "grids" / f"{name}_ir_vis_fused.png")
    return written


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="outputs/reproduce")
    parser.add_argument("--data-root", default=str(REPO.parent / "shared" / "data"))
    parser.add_argument("--budget", default="cpu")
    args = parser.parse_args()
    out, data = (REPO / args.out).resolve(), Path(args.data_root).resolve()

    weights = export_weights(out, args.budget)
    if not weights:
        raise SystemExit(f"no trained runs under {out}; run experiments/reproduce.py first")
    summaries = fuse_and_score(out, data, weights)
    grids = write_grids(out, data, list(weights))
    timings = json.loads((out / "timings.json").read_text()) if (out / "timings.json").is_file() else {}

    sections, readme_rows = [], []
    for name, label in SETS.items():
        table, facts = results_table(name, summaries[name], TABLE_METRICS)
        extra, _ = results_table(name, summaries[name], ["AG", "CC", "PSNR", "MSE"])
        notes = []
        if "beats_cddfuse" in facts:
            notes.append(f"Full STFuse beats CDDFuse's published numbers on {len(facts['beats_cddfuse'])} of 8 metrics"
                         f" ({', '.join(facts['beats_cddfuse']) or 'none'}); the goal is 5.")  # fmt: skip
        if "beats_no_transfer" in facts:
            notes.append(f"Full STFuse beats the no-transfer ablation on {len(facts['beats_no_transfer'])} of "
                         f"{len(TABLE_METRICS)} metrics ({', '.join(facts['beats_no_transfer']) or 'none'}).")  # fmt: skip
        sections.append(f"### {label}\n\n{table}\n\n" + "".join(f"- {n}\n" for n in notes)
                        + f"\nFurther metrics:\n\n{extra}\n\n![{label}](images/{grids[list(SETS).index(name)].name})\n")  # fmt: skip
        if name in CDDFUSE:
            readme_rows.append(f"**{label}**\n\n{table}\n")

    seconds = timings.get("seconds", {})
    record = "\n".join(f"| {k} | {v / 60:.1f} min |" for k, v in seconds.items())
    body = RESULTS_TEMPLATE.format(
        budget=args.budget, schedule=json.dumps({k: timings.get(k) for k in ("preset", "mfif_steps", "ivif_steps",
                                                                               "crop", "batch")}),
        timings=record or "| (not recorded) | |", sections="\n".join(sections),
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
        text = head + start + "\n\n" + "\n".join(readme_rows) + "\nDetails, ablations and grids: [docs/results.md](docs/results.md).\n\n" + end + tail
        readme.write_text(text)
    print((REPO / "docs" / "results.md").read_text())
    return 0


RESULTS_TEMPLATE = """# Results: STFuse on TNO-25, RoadScene-50 and MSRS-20

All numbers are produced by `python experiments/reproduce.py --budget {budget}` (training) and
`python experiments/results.py` (export, fusion, metrics, this file), with the `cddfuse` metric preset
(verified against the reference Evaluator values, see docs/metrics.md). Fused images are the fused
luminance, evaluated as 8-bit grey images, as in the community's tables. Best value per column in bold;
↓ marks metrics where lower is better. CDDFuse's row is its published Table 1 on the same pairs.

## How the models were trained

- Budget `{budget}`: {schedule}
- Source stage: synthetic multi-focus pairs from `train/natural` (420 all-in-focus images); validation on
  held-out synthetic pairs and the 20 real Lytro pairs.
- Target stage: `train/ivif/roadscene` (171 pairs) + `train/ivif/msrs` (12 pairs); no test pair is used for
  training. Validation on TNO-25 (loss only; the checkpoint used is `last.ckpt`, not a TNO-selected one).
- The three IVIF variants (full STFuse, transfer without L_g, no transfer) share one step budget and seed.

| stage | wall time |
|---|---|
{timings}

## Tables

{sections}
"""


if __name__ == "__main__":
    raise SystemExit(main())
