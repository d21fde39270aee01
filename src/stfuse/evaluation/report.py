"""A self-contained HTML report: the mean ± std table (best per column marked) and a thumbnail grid
IR | VIS | each method for every image, thumbnails embedded as base64 PNG so the file travels alone."""

from __future__ import annotations

import base64
import html
from pathlib import Path

import cv2
import numpy as np

from stfuse.evaluation.evaluator import EvaluationResult
from stfuse.evaluation.tables import direction_arrow, format_value, nan_note

_STYLE = """
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; margin: 24px; color: #222; }
h1 { font-size: 1.4em; } h2 { font-size: 1.15em; margin-top: 28px; }
table { border-collapse: collapse; }
table.metrics td, table.metrics th { border: 1px solid #ccc; padding: 4px 8px; text-align: right; white-space: nowrap; }
table.metrics th:first-child, table.metrics td:first-child { text-align: left; }
table.metrics td.best { background: #e3f4e1; font-weight: bold; }
table.metrics .std { display: block; font-size: 0.8em; color: #666; font-weight: normal; }
.scroll { overflow-x: auto; }
table.grid td, table.grid th { padding: 4px; text-align: center; vertical-align: top; font-size: 0.85em; }
table.grid img { display: block; image-rendering: auto; border: 1px solid #ddd; }
.note { color: #666; font-size: 0.9em; }
.warning { background: #fff4e5; border-left: 4px solid #e69500; padding: 6px 10px; }
"""


def png_data_uri(image: np.ndarray) -> str:
    """uint8 grey image → ``data:image/png;base64,…``."""
    ok, encoded = cv2.imencode(".png", image)
    if not ok:
        raise ValueError("could not encode a thumbnail as PNG")
    return "data:image/png;base64," + base64.b64encode(encoded.tobytes()).decode("ascii")


def _metrics_table(result: EvaluationResult) -> str:
    summary = result.summary()
    best = result.best_methods()
    head = "".join(f"<th>{html.escape(m)} {direction_arrow(m)}</th>" for m in result.metrics)
    rows = []
    for method in result.methods:
        cells = []
        for metric in result.metrics:
            stats = summary[method][metric]
            marked = method in best[metric]
            cells.append(
                f'<td class="{"best" if marked else "value"}" data-metric="{html.escape(metric)}" '
                f'data-mean="{stats["mean"]!r}" data-std="{stats["std"]!r}">'
                f'{format_value(stats["mean"])}<span class="std"> ± {format_value(stats["std"])}</span></td>'
            )
        origin = result.origins.get(method, "")
        label = html.escape(method) + (
            ' <span class="note">(baseline)</span>' if origin == "baseline" else ""
        )
        rows.append(f'<tr data-method="{html.escape(method)}"><td>{label}</td>{"".join(cells)}</tr>')
    return (
        f'<div class="scroll"><table class="metrics"><thead><tr><th>Method</th>{head}</tr></thead>'
        f"<tbody>{''.join(rows)}</tbody></table></div>"
    )


def _thumbnail_grid(result: EvaluationResult) -> str:
    columns = ["ir", "vi", *result.methods]
    titles = {"ir": "IR", "vi": "VIS"}
    head = "".join(f"<th>{html.escape(titles.get(c, c))}</th>" for c in columns)
    rows = []
    for name in result.images:
        thumbs = result.thumbnails.get(name)
        if not thumbs:
            continue
        cells = []
        for column in columns:
            image = thumbs[column]
            alt = f"{name} {titles.get(column, column)}"
            cells.append(
                f'<td><img src="{png_data_uri(image)}" width="{image.shape[1]}" height="{image.shape[0]}" '
                f'alt="{html.escape(alt)}"></td>'
            )
        rows.append(f"<tr><th>{html.escape(name)}</th>{''.join(cells)}</tr>")
    return (
        f'<div class="scroll"><table class="grid"><thead><tr><th>image</th>{head}</tr></thead>'
        f"<tbody>{''.join(rows)}</tbody></table></div>"
    )


def render_report(result: EvaluationResult, *, title: str = "Fusion evaluation") -> str:
    """The whole HTML document as a string."""
    note = (
        f"{len(result.images)} images · preset <code>{html.escape(result.preset)}</code> · mean ± population std "
        "over images · ↑ higher is better, ↓ lower is better · best mean of each column highlighted"
    )
    grid = _thumbnail_grid(result) if result.thumbnails else '<p class="note">No thumbnails.</p>'
    undefined = nan_note(result)
    warning = f'<p class="warning">Warning: {html.escape(undefined)}.</p>' if undefined else ""
    return (
        "<!DOCTYPE html>\n"
        f'<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>'
        f"<style>{_STYLE}</style></head><body>"
        f'<h1>{html.escape(title)}</h1><p class="note">{note}</p>'
        f"<h2>Metrics</h2>{warning}{_metrics_table(result)}"
        f"<h2>Images</h2>{grid}"
        "</body></html>\n"
    )


def write_report(result: EvaluationResult, path: Path, *, title: str = "Fusion evaluation") -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(render_report(result, title=title), encoding="utf-8")
    return path
