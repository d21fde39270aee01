"""``stfuse evaluate`` (preset ``cddfuse``) against the reference values: every metric on every image of
shared/data/reference (TNO-25 and M3FD, fusions avg/max/seafusion/tardal), the MEAN rows, the tables and
the HTML report. One evaluate run per data set feeds all the checks."""

from __future__ import annotations

import csv
import json
from html.parser import HTMLParser
from pathlib import Path

import pytest
import torch

from stfuse.evaluation.cli import main as evaluate_main
from stfuse.evaluation.tables import format_value
from stfuse.metrics import resolve_metric_names

CSV_METRICS = resolve_metric_names(None, "cddfuse")  # CDDFuse's Evaluator table: the CSVs' columns
FUSIONS = ["avg", "max", "seafusion", "tardal"]

#: Largest relative difference allowed per metric. The reference computed SD, SF, AG, SCD, Qabf, MSE, CC
#: and PSNR in float32 (its own rounding is ~1e-7 relative, 4.5e-7 at most between numpy versions); EN,
#: MI, SSIM (scikit-image's float32 arithmetic repeated exactly) and VIF (float64 on both sides) agree to
#: rounding.
TOLERANCE = {
    "EN": 1e-12,
    "MI": 1e-12,
    "SSIM": 1e-12,
    "VIF": 1e-7,
    "SD": 2e-6,
    "SF": 2e-6,
    "AG": 2e-6,
    "SCD": 2e-6,
    "Qabf": 2e-6,
    "MSE": 2e-6,
    "CC": 2e-6,
    "PSNR": 2e-6,
}


def _reference(data_root: Path, dataset: str) -> list[dict[str, str]]:
    with open(data_root / "reference" / dataset / "metrics_cddfuse.csv") as handle:
        return list(csv.DictReader(handle))


def _run(data_root: Path, dataset: str, out: Path, report: bool) -> Path:
    argv = [
        "--dataset",
        dataset,
        "--root",
        str(data_root),
        "--out",
        str(out),
        "--no-progress",
        "--device",
        "cpu",
    ]
    for fusion in FUSIONS:
        argv += ["--fused", f"{fusion}={data_root / 'reference' / dataset / fusion}"]
    if report:
        argv += ["--report", str(out / "report.html")]
    assert evaluate_main(argv) == 0
    return out


@pytest.fixture(scope="module")
def runs(data_root: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    # One thread: on the shared 2-core machines, two OpenMP threads per op lose far more to waiting on
    # each other than they gain (8× slower under load); the run is ~25 s of CPU either way.
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return {
            "tno": _run(data_root, "tno", tmp_path_factory.mktemp("tno"), report=True),
            "m3fd": _run(data_root, "m3fd", tmp_path_factory.mktemp("m3fd"), report=False),
        }
    finally:
        torch.set_num_threads(previous)


def _per_image(run: Path) -> dict[tuple[str, str], dict[str, str]]:
    with open(run / "metrics_per_image.csv") as handle:
        return {(r["method"], r["image"]): r for r in csv.DictReader(handle)}


@pytest.mark.parametrize("metric", CSV_METRICS)
def test_every_metric_matches_the_reference_on_every_image(
    runs: dict[str, Path], data_root: Path, metric: str
) -> None:
    worst, where, count = 0.0, "", 0
    for dataset, run in runs.items():
        ours = _per_image(run)
        for row in _reference(data_root, dataset):
            if row["name"] == "MEAN":
                continue
            reference = float(row[metric])
            value = float(ours[(row["fusion"], row["name"])][metric])
            error = abs(value - reference) / abs(reference)
            count += 1
            if error > worst:
                worst, where = error, f"{dataset}/{row['fusion']}/{row['name']}"
    assert count == 4 * 25 + 4 * 1
    assert worst <= TOLERANCE[metric], f"{metric}: max relative error {worst:.3g} at {where}"


def test_evaluate_reproduces_the_reference_mean_rows(runs: dict[str, Path], data_root: Path) -> None:
    for dataset, run in runs.items():
        summary = json.loads((run / "metrics_summary.json").read_text())
        assert summary["preset"] == "cddfuse"
        means = {r["fusion"]: r for r in _reference(data_root, dataset) if r["name"] == "MEAN"}
        assert set(means) == set(FUSIONS)
        for fusion in FUSIONS:
            for metric in CSV_METRICS:
                ours = summary["methods"][fusion][metric]["mean"]
                assert ours == pytest.approx(float(means[fusion][metric]), rel=TOLERANCE[metric]), (
                    f"{fusion} {metric}"
                )


def test_tables_have_one_row_per_method_and_image(runs: dict[str, Path]) -> None:
    rows = _per_image(runs["tno"])
    assert len(rows) == 4 * 25
    assert float(rows[("avg", "01")]["EN"]) == pytest.approx(6.248375207674029, rel=1e-12)
    markdown = (runs["tno"] / "metrics_summary.md").read_text()
    assert markdown.startswith("| Method | EN ↑ |") and "MSE ↓" in markdown
    assert markdown.count("\n| ") == len(FUSIONS)


class _ReportParser(HTMLParser):
    """Collects the metric cells and the images of the report."""

    def __init__(self) -> None:
        super().__init__()
        self.cells: list[dict[str, str]] = []
        self.images: list[str] = []
        self._row_method: str | None = None
        self._cell: dict[str, str] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = {k: v or "" for k, v in attrs}
        if tag == "tr" and "data-method" in attributes:
            self._row_method = attributes["data-method"]
        elif tag == "td" and "data-metric" in attributes:
            self._cell = {"method": self._row_method or "", "text": "", **attributes}
        elif tag == "img":
            self.images.append(attributes.get("src", ""))

    def handle_data(self, data: str) -> None:
        if self._cell is not None:
            self._cell["text"] += data

    def handle_endtag(self, tag: str) -> None:
        if tag == "td" and self._cell is not None:
            self.cells.append(self._cell)
            self._cell = None


def test_html_report_holds_the_table_with_best_marked_and_every_thumbnail(runs: dict[str, Path]) -> None:
    run = runs["tno"]
    parser = _ReportParser()
    parser.feed((run / "report.html").read_text(encoding="utf-8"))
    methods = json.loads((run / "metrics_summary.json").read_text())["methods"]
    assert len(parser.cells) == len(FUSIONS) * len(CSV_METRICS)
    for cell in parser.cells:
        stats = methods[cell["method"]][cell["data-metric"]]
        assert float(cell["data-mean"]) == stats["mean"]
        assert cell["text"] == f"{format_value(stats['mean'])} ± {format_value(stats['std'])}"
    for metric in CSV_METRICS:
        marked = {c["method"] for c in parser.cells if c["data-metric"] == metric and c["class"] == "best"}
        means = {m: methods[m][metric]["mean"] for m in methods}
        best = min(means.values()) if metric == "MSE" else max(means.values())
        assert marked == {m for m, v in means.items() if v == best}, metric

    # Lower is better for MSE: the average fusion, closest to both sources, wins; max wins EN, SD, VIF.
    def best_of(metric):
        return {c["method"] for c in parser.cells if c["data-metric"] == metric and c["class"] == "best"}

    assert best_of("MSE") == {"avg"}
    assert best_of("VIF") == {"max"}
    assert len(parser.images) == 25 * (2 + len(FUSIONS))
    assert all(src.startswith("data:image/png;base64,") for src in parser.images)
