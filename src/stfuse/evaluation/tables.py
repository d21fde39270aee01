"""Writing an :class:`EvaluationResult`: per-image CSV, mean ± std as Markdown and JSON."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

from stfuse.evaluation.evaluator import EvaluationResult
from stfuse.metrics import LOWER_IS_BETTER

PER_IMAGE_CSV = "metrics_per_image.csv"
SUMMARY_MD = "metrics_summary.md"
SUMMARY_JSON = "metrics_summary.json"


def format_value(value: float) -> str:
    """Four decimals, or scientific notation for very small or large magnitudes."""
    if not math.isfinite(value):
        return str(value)
    if value != 0 and (abs(value) < 1e-3 or abs(value) >= 1e5):
        return f"{value:.3e}"
    return f"{value:.4f}"


def nan_values(result: EvaluationResult) -> dict[tuple[str, str], list[str]]:
    """``(method, metric)`` → the images whose value is NaN, in table order; a copy baseline's SCD, undefined
    by construction (stfuse.baselines.UNDEFINED_BY_DESIGN), is not listed."""
    from stfuse.baselines import UNDEFINED_BY_DESIGN

    found: dict[tuple[str, str], list[str]] = {}
    for method in result.methods:
        for metric in result.metrics:
            if metric in UNDEFINED_BY_DESIGN.get(method, ()):
                continue
            names = [
                name for name, value in zip(result.images, result.values[method][metric]) if math.isnan(value)
            ]
            if names:
                found[(method, metric)] = names
    return found


def nan_note(result: EvaluationResult, listed: int = 3) -> str:
    """One line naming every NaN (metric, method and images), or ``""`` when there is none."""
    found = nan_values(result)
    if not found:
        return ""
    parts = []
    for (method, metric), names in found.items():
        shown = ", ".join(names[:listed]) + (", …" if len(names) > listed else "")
        parts.append(f"{metric} of {method} on {len(names)} image{'s' if len(names) > 1 else ''} ({shown})")
    return (
        "NaN (undefined) values: "
        + "; ".join(parts)
        + ". A metric is undefined when an image it normalises by "
        "is constant, such as an all-black source: check those images or leave the metric out with --metrics"
    )


def direction_arrow(metric: str) -> str:
    return "↓" if metric in LOWER_IS_BETTER else "↑"


def write_per_image_csv(result: EvaluationResult, path: Path) -> None:
    """One row per (method, image), full precision."""
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["method", "image", *result.metrics])
        for method in result.methods:
            for index, image in enumerate(result.images):
                writer.writerow(
                    [method, image, *(repr(result.values[method][m][index]) for m in result.metrics)]
                )


def markdown_table(result: EvaluationResult) -> str:
    """Methods × metrics, "mean ± std", the best mean of each column in bold."""
    summary = result.summary()
    best = result.best_methods()
    header = "| Method | " + " | ".join(f"{m} {direction_arrow(m)}" for m in result.metrics) + " |"
    rule = "|---|" + "---|" * len(result.metrics)
    lines = [header, rule]
    for method in result.methods:
        cells = []
        for metric in result.metrics:
            stats = summary[method][metric]
            text = f"{format_value(stats['mean'])} ± {format_value(stats['std'])}"
            cells.append(f"**{text}**" if method in best[metric] else text)
        lines.append(f"| {method} | " + " | ".join(cells) + " |")
    note = (
        f"\n{len(result.images)} images, preset `{result.preset}`; mean ± population std over images; "
        "↑ higher is better, ↓ lower is better; best mean in bold.\n"
    )
    undefined = nan_note(result)
    if undefined:
        note += f"\n**Warning:** {undefined}.\n"
    return "\n".join(lines) + "\n" + note


def summary_json(result: EvaluationResult) -> dict:
    return {
        "preset": result.preset,
        "metrics": result.metrics,
        "lower_is_better": [m for m in result.metrics if m in LOWER_IS_BETTER],
        "images": result.images,
        "methods": result.summary(),
        "origins": result.origins,
        "best": result.best_methods(),
    }


def write_tables(result: EvaluationResult, out_dir: Path) -> dict[str, Path]:
    """Write the CSV, Markdown and JSON files into ``out_dir``; returns their paths by kind."""
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {"csv": out_dir / PER_IMAGE_CSV, "markdown": out_dir / SUMMARY_MD, "json": out_dir / SUMMARY_JSON}
    write_per_image_csv(result, paths["csv"])
    paths["markdown"].write_text(markdown_table(result))
    paths["json"].write_text(json.dumps(summary_json(result), indent=2))
    return paths
