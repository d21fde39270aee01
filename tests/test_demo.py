"""`make demo`'s pipeline end to end on a tiny budget: both stages, held-out pairs, fusion, metrics, grid."""

from __future__ import annotations

import json

from stfuse.cli import main


def test_demo_writes_fused_images_metrics_and_grid(tmp_path, capsys):
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
    assert (out / "grid.png").stat().st_size > 1000
    assert (out / "stfuse_demo.safetensors").is_file()
    printed = capsys.readouterr().out
    assert str(out) in printed and "grid" in printed
