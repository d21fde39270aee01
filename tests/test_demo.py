"""`make demo`'s pipeline end to end on a tiny budget: both stages, held-out pairs, fusion, metrics, grid."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from stfuse.cli import main

COLUMNS = 6  # IR | VIS | STFuse | average | maximum | Laplacian
HEIGHT, PAD, BAND = 160, 4, 22


def test_demo_writes_fused_images_metrics_and_a_labelled_grid(tmp_path, capsys):
    out = tmp_path / "demo"
    code = main(["demo", "--out", str(out), "--mfif-steps", "2", "--ivif-steps", "2", "--crop", "32",
                 "--batch-size", "2", "--pairs", "2", "--val-pairs", "2", "--size", "48", "64", "--workers", "0"])  # fmt: skip
    assert code == 0
    for method in ("stfuse", "average", "maximum", "laplacian"):
        assert len(list((out / "fused" / method).glob("*.png"))) == 2, method
    results = json.loads((out / "metrics.json").read_text())
    assert set(results) == {"stfuse", "average", "maximum", "laplacian"}
    for values in results.values():
        assert 0 < values["EN"] <= 8 and values["SD"] > 0
    assert (out / "stfuse_demo.safetensors").is_file()
    timings = json.loads((out / "timings.json").read_text())
    steps = ["source_stage", "target_stage", "held_out_pairs", "fusion", "metrics_and_grid"]
    assert list(timings) == [*steps, "total", "threads"]
    assert all(timings[k] >= 0 for k in steps) and timings["source_stage"] > 0 and timings["target_stage"] > 0
    assert sum(timings[k] for k in steps) == pytest.approx(timings["total"], abs=0.6)  # each rounded to 0.1 s
    printed = capsys.readouterr().out
    assert "(source stage " in printed and "timings.json" in printed
    assert str(out) in printed and "grid" in printed
    assert "Tip:" not in printed and "/-2" not in printed

    grid = np.asarray(Image.open(out / "grid.png").convert("L"))
    assert grid.shape[0] == BAND + 2 * (HEIGHT + PAD) + PAD, "a label band above the two rows of images"
    column = round(64 * HEIGHT / 48)  # each 48×64 image is shown 160 px high
    for index in range(COLUMNS):
        left = PAD + index * (column + PAD)
        label = grid[:BAND, left : left + column]
        assert (label < 128).sum() > 20, f"column {index} has no label drawn above it"


def test_demo_presets_are_the_network_registry():
    from stfuse.demo import _parse
    from stfuse.models import PRESETS

    for name in PRESETS:
        assert _parse(["--preset", name]).preset == name


def test_an_unknown_demo_preset_is_one_line_and_exit_2_through_the_console_script(tmp_path):
    import os
    import subprocess
    import sys
    from pathlib import Path

    from stfuse.models import PRESETS

    stfuse = Path(sys.executable).parent / "stfuse"
    done = subprocess.run(
        [str(stfuse), "demo", "--preset", "huge", "--out", str(tmp_path / "out")],
        env={**os.environ, "OMP_NUM_THREADS": "1"},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 2
    assert done.stderr.strip().splitlines()[-1] == (
        f"stfuse demo: error: argument --preset: invalid choice: 'huge' (choose from {', '.join(PRESETS)})"
    )
    assert "Traceback" not in done.stderr and not (tmp_path / "out").exists()
