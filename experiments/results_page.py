"""The results page: markdown tables, goal lines, the probe table, docs/results.md and the README block.

experiments/results.py computes the numbers; this module only formats and writes them.
"""

from __future__ import annotations

import json
import statistics
from pathlib import Path

from published import CDDFUSE, SEAFUSION, SETS, TABLE_METRICS
from reproduce import MAIN_RUN, PROBES, parse_main_budget_run

REPO = Path(__file__).resolve().parents[1]
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
    "copy_ir": "copy of the infrared image",
    "copy_vi": "copy of the visible image",
}
SHIPPED = "shipped"  # the method name of the default weights in the evaluation tables
#: variant -> the key of its runs at the budget's own target steps in ``runs`` (results.final_runs), where the
#: budget trains its main run apart from the ablation seeds; seed 0 of ``main`` is the main run
MAIN_KEYS = {"stfuse": "main", "no_guidance": "main_no_guidance"}

#: the goal lines of each test set: (fact key, metrics to win, what is compared); a need of 0 is a note.
GOALS = [
    ("shipped_beats_laplacian", 7, "the shipped model beats the Laplacian pyramid"),
    ("shipped_beats_seafusion", 5, "the shipped model beats SeAFusion (measured)"),
    ("shipped_beats_cddfuse", 5, "the shipped model beats CDDFuse (published; stretch)"),
    ("full_beats_no_transfer", 6, "full STFuse (mean of seeds) beats no transfer"),
    ("no_guidance_beats_no_transfer", 0, "transfer without L_g (mean) beats no transfer"),
    ("full_beats_no_guidance", 5, "full STFuse (mean of seeds) beats transfer without L_g"),
    (
        "main_full_beats_no_guidance",
        5,
        "at the budget's own steps, full STFuse (mean of seeds) beats transfer without L_g",
    ),
]


def split_text(validation: dict) -> str:
    """How the validation pairs were held out, for records and pages (validate.py's JSON)."""
    split = validation.get("split", {})
    domains = ", ".join(
        f"{len(names)} {domain}" for domain, names in validation.get("domain_pairs", {}).items()
    )
    how = f"{split.get('val_strata', 'random')} hold-out, split seed {validation['seed']}"
    if domains:
        how = f"{domains}; {how}; each domain counts once"
    return f"{validation['pairs']} pairs held out of train/ivif ({how})"


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
                  shipped_label: str | None, references: bool = True,
                  shipped_run: str | None = None, copies: list[str] | None = None) -> tuple[str, dict]:  # fmt: skip
    """Markdown table: the shipped model, each variant as mean ± std over its seeds, the baselines and the
    reference methods; returns it with the goal facts (which metrics each comparison wins). ``copies``: the
    runs whose output is a copy of one source on the validation pairs (validate.is_copy); a variant's label
    names those of its seeds, which its mean still includes."""
    lower = set(summary.get("lower_is_better", []))
    rows: list[tuple[str, list[float | None], list[float | None]]] = []
    if shipped_label and SHIPPED in summary["methods"]:
        rows.append((shipped_label, [_mean(summary, SHIPPED, m) for m in metrics], [None] * len(metrics)))
    means: dict[str, dict[str, float | None]] = {}
    main_budget = {variant: runs.get(key, []) for variant, key in MAIN_KEYS.items()}
    if len(main_budget["stfuse"]) == 1 and not main_budget["no_guidance"]:
        # the main run alone (the budget's own steps), when it is not the shipped one
        main = main_budget["stfuse"][0]
        if main != shipped_run:
            rows.append((f"STFuse (full), the main run (`{main}`)", [_mean(summary, main, m) for m in metrics],
                         [None] * len(metrics)))  # fmt: skip
    else:  # the comparison of L_g at the budget's own steps
        for variant, seeded in main_budget.items():
            if seeded:
                stats = [_aggregate(summary, seeded, m) for m in metrics]
                plural = "s" if len(seeded) > 1 else ""
                rows.append((f"{VARIANT_NAMES[variant]}, the budget's own steps, mean ± sd of {len(seeded)} seed{plural}",
                             [s[0] for s in stats], [s[1] for s in stats]))  # fmt: skip
                means[MAIN_KEYS[variant]] = dict(zip(metrics, [s[0] for s in stats]))
    for variant, label in VARIANT_NAMES.items():
        if runs.get(variant):
            stats = [_aggregate(summary, runs[variant], m) for m in metrics]
            seeds = len(runs[variant])
            copied = [run for run in runs[variant] if run in (copies or ())]
            note = (
                f" (copies of one source on validation: {', '.join(f'`{c}`' for c in copied)})"
                if copied
                else ""
            )
            rows.append(
                (
                    f"{label}, mean ± sd of {seeds} seed{'s' if seeds > 1 else ''}{note}",
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
        if all(key in means for key in MAIN_KEYS.values()):
            facts["main_full_beats_no_guidance"] = wins(means["main"], means["main_no_guidance"])
    return "\n".join(lines), facts


def probe_table(out: Path) -> str:
    """The "what moved the metrics" table: every probe and final run scored on the validation pairs."""
    path = out / "validation.json"
    if not path.is_file():
        return "(no validation scores yet: run experiments/validate.py)"
    validation = json.loads(path.read_text())
    scores = validation["scores"]
    laplacian = scores.get("laplacian")
    lines = ["| run | what it tests | " + " | ".join(TABLE_METRICS) + " | seams ↓ | grey targets ↓ | > Laplacian | compared with | wins/losses |",
             "|---|---|" + "---|" * (len(TABLE_METRICS) + 5)]  # fmt: skip
    ordered = [f"probe_{p}" for p in PROBES if f"probe_{p}" in scores]
    ordered += sorted(k for k in scores if k.startswith("ivif_"))
    ordered += [k for k in ("average", "maximum", "laplacian", "copy_ir", "copy_vi") if k in scores]
    for name in ordered:
        values = scores[name]
        versus, delta = "–", "–"
        if name.startswith("probe_") and name[6:] in PROBES:
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
            elif reference:
                versus = f"{other} (no score here)"
        else:
            what = (
                "the main run (full STFuse, the budget's own target steps)"
                if name == "ivif_stfuse_main"
                else f"{_main_budget_label(name)} at the budget's own target steps"
                if parse_main_budget_run(name)
                else "ablation run (the ablation steps)"
                if name.startswith("ivif_")
                else "copy baseline"
                if name in ("copy_ir", "copy_vi")
                else "classical baseline"
            )
        beats = f"{sum(values[m] > laplacian[m] for m in TABLE_METRICS)}/8" if laplacian else "–"
        seams = f"{values['false_edges']:.4f}" if "false_edges" in values else "–"
        grey = f"{values['target_gap']:.3f}" if "target_gap" in values else "–"
        lines.append(
            f"| {name} | {what} | "
            + " | ".join(f"{values[m]:.3f}" for m in TABLE_METRICS)
            + f" | {seams} | {grey} | {beats} | {versus} | {delta} |"
        )
    missing = [probe for probe in PROBES if f"probe_{probe}" not in scores]
    untrained = (
        f"\n\nProbes of experiments/probes/probes.yaml without a validation score in this output folder ("
        f"{len(missing)} of {len(PROBES)}; `python experiments/reproduce.py --only probes --probes NAME,...` "
        f"trains them): {', '.join(missing)}."
        if missing
        else ""
    )
    return f"Validation split: {split_text(validation)}.\n\n" + "\n".join(lines) + untrained


def _main_budget_label(name: str) -> str:
    """``ivif_no_guidance_main_s1`` -> "transfer without L_g, seed 1" (a run at the budget's own steps)."""
    variant, seed = parse_main_budget_run(name)  # only called on such names
    return f"{VARIANT_NAMES[variant]}, seed {seed}"


def _goal_line(label: str, facts: dict[str, list[str]], key: str, need: int, what: str) -> str | None:
    if key not in facts:
        return None
    won = facts[key]
    verdict = "met" if len(won) >= need else "missed"
    return f"- {label}: {what} on {len(won)} of 8 ({', '.join(won) or 'none'}); goal ≥ {need}: **{verdict}**."


def write_page(summaries: dict[str, dict], runs: dict[str, list[str]], shipped_label: str, grids: list[Path],
               fields: dict[str, str], out: Path, recorded: dict[str, float] | None = None) -> str:  # fmt: skip
    """Write docs/results.md and the README's results block (between the results markers: generated, never
    edited by hand); returns the page. ``fields``: budget, schedule, mfif_config, ivif_config, recipe, selection.
    ``recorded``: wall times (seconds) of runs that are not under ``out``, from the shipped weights' record."""
    sections, readme_rows, goals = [], [], []
    for name, label in SETS.items():
        shipped_run = fields.get("shipped_run")
        copies = fields.get("copies")
        table, facts = results_table(
            name, summaries[name], TABLE_METRICS, runs, shipped_label, shipped_run=shipped_run, copies=copies
        )
        extra, _ = results_table(name, summaries[name], ["AG", "CC", "PSNR", "MSE"], runs, shipped_label,
                                 references=False, shipped_run=shipped_run, copies=copies)  # fmt: skip
        lines = [_goal_line(label, facts, key, need, what) for key, need, what in GOALS]
        goals += [line for line in lines if line and "goal ≥ 0" not in line]
        notes = [line.replace("; goal ≥ 0: **met**.", ".") for line in lines if line]
        sections.append(f"### {label}\n\n{table}\n\n" + "".join(f"{n}\n" for n in notes)
                        + f"\nFurther metrics:\n\n{extra}\n\n![{label}](images/{grids[list(SETS).index(name)].name})\n")  # fmt: skip
        readme_rows.append(f"**{label}**\n\n{table}\n")

    # Each finished run records its own wall time (runs in parallel processes share no timings file).
    seconds = {p.parent.name: json.loads(p.read_text())["seconds"] for p in sorted(out.glob("*/done.json"))}
    seconds |= recorded or {}
    record = "\n".join(f"| {k} | {v / 60:.1f} min |" for k, v in sorted(seconds.items()))
    grid_note = ", ".join(
        ["shipped"]
        + [
            VARIANT_NAMES[v] + f" ({runs[v][0]})"
            for v in runs
            if v in VARIANT_NAMES and v != "stfuse" and runs[v]
        ]
    )
    body = RESULTS_TEMPLATE.format(
        **fields, timings=record or "| (not recorded) | |", goals="\n".join(goals),
        sections="\n".join(sections), probes=probe_table(out), grid_note=grid_note,
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
    return body


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
  for validation: at least 4 of each root (12 RoadScene, 4 MSRS), spread over dark and bright scenes (split
  seed 0, the same for every run). Each domain counts once in the validation scores. No test pair is used for
  training or selection.
- The main run (`ivif_stfuse_main`, where the budget sizes the ablations apart): full STFuse, seed 0, at the
  budget's own target steps (`ivif_steps` above), what `make transfer-ivif BUDGET={budget}` trains. Full STFuse
  and transfer without L_g also train at those steps at more seeds (`ivif_<variant>_main[_s<seed>]`,
  `reproduce.py --only main-seeds`): the rows "the budget's own steps" compare L_g where the recipe is meant
  to be trained.
- The three variants (full STFuse, transfer without L_g, no transfer) share one source stage, one step budget
  (`ablation_ivif_steps` above, where given) and their seeds (the seed sets the target stage's crop
  order and augmentation, and the initial weights of the no-transfer model). The probes use the same budget.
- Seeds in the tables (`make reproduce` trains 0, 1, 2; `--seeds` and `--main-seeds` add more): {seeds}.
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
metrics on which the probe beats / loses to that run. Each of the 8 metrics counts higher as better. "seams" is a
diagnostic that no selection reads (experiments/validate.py's `false_edges`): the mean coarse-scale edge strength
of the fused image that neither source has, the outline of a patch taken from one source in a flat region; lower
is better, and a constant blend of the sources has none. "grey targets" is another (`target_gap`): the share of
the infrared targets' lead over the visible image that the fused image loses, on the pixels where the infrared
image is brighter than its own surroundings and than the visible image; 0 for the infrared image, 1 for the
visible image, 0.5 for their average; "–" where the run was scored before the diagnostic existed.

{probes}
"""
