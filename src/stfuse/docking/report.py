"""Tables (Markdown, JSON), the per-class bar plot and the qualitative detection grid."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from stfuse.docking.labels import Boxes
from stfuse.docking.metrics import Detections

#: the metric keys of one run, in table order
METRIC_KEYS = ("map50", "map")


def as_float(value: object) -> float:
    """A stored metric as float; ``None`` (how JSON stores NaN here) becomes NaN."""
    return math.nan if value is None else float(value)  # type: ignore[arg-type]


def json_safe(obj: object) -> object:
    """Replace NaN by ``None`` so the JSON files are standard JSON."""
    if isinstance(obj, float) and math.isnan(obj):
        return None
    if isinstance(obj, dict):
        return {k: json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [json_safe(v) for v in obj]
    return obj


def summarise(runs: Sequence[Mapping[str, object]], class_names: Sequence[str]) -> dict[str, object]:
    """Mean and sample std (ddof=1; 0 for one seed) over seeds of every overall and per-class metric."""

    def stats(values: list[float]) -> dict[str, float]:
        arr = np.array([v for v in values if not math.isnan(v)], dtype=float)
        if arr.size == 0:
            return {"mean": math.nan, "std": math.nan}
        return {"mean": float(arr.mean()), "std": float(arr.std(ddof=1)) if arr.size > 1 else 0.0}

    summary: dict[str, object] = {key: stats([as_float(r[key]) for r in runs]) for key in METRIC_KEYS}
    summary["per_class"] = {
        name: {
            "ap50": stats([as_float(r["per_class"][name]["ap50"]) for r in runs]),
            "ap": stats([as_float(r["per_class"][name]["ap"]) for r in runs]),
        }
        for name in class_names
    }
    return summary


def _fmt(stat: Mapping[str, float]) -> str:
    if stat["mean"] is None or math.isnan(stat["mean"]):
        return "—"
    return f"{stat['mean']:.3f} ± {stat['std']:.3f}"


def markdown_table(
    results: Mapping[str, Mapping[str, object]], class_names: Sequence[str], seeds: Sequence[int]
) -> str:
    """One row per source: overall mAP@0.5, mAP@0.5:0.95, then AP@0.5 and AP@0.5:0.95 per class."""
    header = ["source", "mAP@0.5", "mAP@0.5:0.95"]
    header += [f"{c} AP@0.5" for c in class_names] + [f"{c} AP@0.5:0.95" for c in class_names]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for name, res in results.items():
        s = res["summary"]
        cells = [name, _fmt(s["map50"]), _fmt(s["map"])]
        cells += [_fmt(s["per_class"][c]["ap50"]) for c in class_names]
        cells += [_fmt(s["per_class"][c]["ap"]) for c in class_names]
        lines.append("| " + " | ".join(cells) + " |")
    lines.append("")
    lines.append(f"mean ± sample std over seeds {', '.join(str(s) for s in seeds)}.")
    paired = paired_differences(results)
    refs = [r for r in ("ir", "vi") if r in results]
    if refs and any(paired.get(name) for name in paired):
        lines += ["", "Paired difference in mAP@0.5 (same seed = same init, batches and augmentation):", ""]
        lines.append("| source | " + " | ".join(f"Δ vs {r} (wins)" for r in refs) + " |")
        lines.append("|" + "---|" * (len(refs) + 1))
        for name, diffs in paired.items():
            cells = [
                f"{diffs[r]['mean']:+.3f} ± {diffs[r]['std']:.3f} ({diffs[r]['wins']}/{diffs[r]['seeds']})"
                if r in diffs
                else "—"
                for r in refs
            ]
            lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def paired_differences(
    results: Mapping[str, Mapping[str, object]], references: Sequence[str] = ("ir", "vi"), key: str = "map50"
) -> dict[str, dict[str, dict[str, float]]]:
    """For every other source, per-seed ``source − reference`` of ``key`` (same seed = same init and augmentation)."""
    out: dict[str, dict[str, dict[str, float]]] = {}
    for name, res in results.items():
        if name in references:
            continue
        out[name] = {}
        for ref in references:
            if ref not in results:
                continue
            mine = {r["seed"]: as_float(r[key]) for r in res["runs"]}
            theirs = {r["seed"]: as_float(r[key]) for r in results[ref]["runs"]}
            diffs = np.array([mine[s] - theirs[s] for s in sorted(set(mine) & set(theirs))], dtype=float)
            if diffs.size == 0:
                continue
            out[name][ref] = {
                "mean": float(diffs.mean()),
                "std": float(diffs.std(ddof=1)) if diffs.size > 1 else 0.0,
                "wins": int((diffs > 0).sum()),
                "seeds": int(diffs.size),
            }
    return out


def bar_plot(results: Mapping[str, Mapping[str, object]], class_names: Sequence[str], path: Path) -> None:
    """Grouped bars: AP@0.5 (left) and AP@0.5:0.95 (right) per class and overall, one bar per source."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    groups = [*class_names, "all"]
    names = list(results)
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.2), sharey=True)
    width = 0.8 / max(len(names), 1)
    for ax, (metric, title) in zip(axes, (("ap50", "AP@0.5"), ("ap", "AP@0.5:0.95"))):
        overall = "map50" if metric == "ap50" else "map"
        for j, name in enumerate(names):
            s = results[name]["summary"]
            stats = [s["per_class"][c][metric] for c in class_names] + [s[overall]]
            means = [0.0 if math.isnan(v["mean"]) else v["mean"] for v in stats]
            stds = [0.0 if math.isnan(v["std"]) else v["std"] for v in stats]
            xs = np.arange(len(groups)) + (j - (len(names) - 1) / 2) * width
            ax.bar(xs, means, width, yerr=stds, capsize=2, label=name)
        ax.set_xticks(np.arange(len(groups)), groups)
        ax.set_title(title)
        ax.set_ylim(0, 1)
        ax.grid(axis="y", alpha=0.3)
    axes[0].set_ylabel("AP (mean ± std over seeds)")
    axes[1].legend(fontsize=8, loc="upper right")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def detection_grid(
    panels: Mapping[str, Mapping[str, np.ndarray]],
    detections: Mapping[str, Mapping[str, Detections]],
    ground_truth: Mapping[str, Boxes],
    class_names: Sequence[str],
    path: Path,
    score_threshold: float = 0.3,
) -> None:
    """Rows = sources, columns = test images; ground truth in white dashes, detections coloured by class."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import Rectangle

    sources = list(panels)
    stems = list(next(iter(panels.values())))
    colours = ["tab:red", "tab:cyan", "tab:orange", "tab:green", "tab:purple", "tab:pink"]
    fig, axes = plt.subplots(
        len(sources), len(stems), figsize=(3.2 * len(stems), 2.5 * len(sources)), squeeze=False
    )
    for r, name in enumerate(sources):
        for c, stem in enumerate(stems):
            ax = axes[r][c]
            img = panels[name][stem]
            h, w = img.shape[:2]
            ax.imshow(img[:, :, 0] if img.shape[2] == 1 else img, cmap="gray", vmin=0, vmax=1)
            for box in (np.asarray(ground_truth[stem].xyxy) * np.array([w, h, w, h])).tolist():
                ax.add_patch(
                    Rectangle(
                        (box[0], box[1]),
                        box[2] - box[0],
                        box[3] - box[1],
                        fill=False,
                        edgecolor="white",
                        linestyle="--",
                        linewidth=0.8,
                    )
                )
            xyxy, scores, labels = detections[name][stem]
            keep = scores >= score_threshold
            for box, score, cls in zip(
                (np.asarray(xyxy[keep]) * np.array([w, h, w, h])).tolist(),
                scores[keep].tolist(),
                labels[keep].tolist(),
            ):
                colour = colours[int(cls) % len(colours)]
                ax.add_patch(
                    Rectangle(
                        (box[0], box[1]),
                        box[2] - box[0],
                        box[3] - box[1],
                        fill=False,
                        edgecolor=colour,
                        linewidth=1.2,
                    )
                )
                ax.text(box[0], box[1] - 2, f"{class_names[int(cls)]} {score:.2f}", color=colour, fontsize=5)
            ax.set_xticks([])
            ax.set_yticks([])
            if r == 0:
                ax.set_title(stem, fontsize=8)
            if c == 0:
                ax.set_ylabel(name, fontsize=9)
    fig.suptitle(
        f"detections (score ≥ {score_threshold}, first seed); dashed white = ground truth", fontsize=9
    )
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
