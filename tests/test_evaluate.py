"""``stfuse evaluate`` on generated pairs: baselines on the fly, natural ordering, and clear errors for
missing or mis-sized fused images (the reference data checks are in test_evaluate_reference.py)."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from stfuse.cli import main as stfuse_main
from stfuse.evaluation.cli import main as evaluate_main


def _write_pairs(folder: Path, names: list[str], shape: tuple[int, int], seed: int = 0) -> tuple[Path, Path]:
    rng = np.random.default_rng(seed)
    for kind in ("ir", "vi"):
        (folder / kind).mkdir(parents=True, exist_ok=True)
        for name in names:
            cv2.imwrite(str(folder / kind / f"{name}.png"), rng.integers(0, 256, shape, dtype=np.uint8))
    return folder / "ir", folder / "vi"


def test_a_missing_fused_image_is_named_and_fails(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    ir, vi = _write_pairs(tmp_path, ["a1", "b2", "c3"], (48, 64))
    fused = tmp_path / "ours"
    fused.mkdir()
    for name in ("a1", "c3"):
        cv2.imwrite(str(fused / f"{name}.png"), np.zeros((48, 64), np.uint8))
    code = evaluate_main(
        [
            "--ir",
            str(ir),
            "--vi",
            str(vi),
            "--fused",
            f"ours={fused}",
            "--out",
            str(tmp_path / "o"),
            "--no-progress",
        ]
    )
    assert code == 2
    err = capsys.readouterr().err
    assert "ours: fused image for b2 not found" in err and str(fused) in err


def test_a_fused_image_of_the_wrong_size_is_named_and_fails(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ir, vi = _write_pairs(tmp_path, ["x"], (48, 64))
    fused = tmp_path / "ours"
    fused.mkdir()
    cv2.imwrite(str(fused / "x.png"), np.zeros((48, 63), np.uint8))
    code = evaluate_main(
        [
            "--ir",
            str(ir),
            "--vi",
            str(vi),
            "--fused",
            f"ours={fused}",
            "--out",
            str(tmp_path / "o"),
            "--no-progress",
        ]
    )
    assert code == 2
    err = capsys.readouterr().err
    assert f"{fused / 'x.png'} is 63×48, but its sources are 64×48" in err


def test_baselines_on_generated_pairs_through_the_stfuse_command(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ir, vi = _write_pairs(tmp_path, ["1", "2", "10"], (45, 53), seed=3)
    code = stfuse_main([
        "evaluate", "--ir", str(ir), "--vi", str(vi), "--baseline", "avg,max,laplacian,gradient",
        "--metrics", "EN,SF,Qabf,Nabf,FMI", "--out", str(tmp_path / "o"), "--no-progress",
    ])  # fmt: skip
    assert code == 0
    summary = json.loads((tmp_path / "o" / "metrics_summary.json").read_text())
    assert summary["images"] == ["1", "2", "10"]  # natural order
    assert list(summary["methods"]) == ["average", "maximum", "laplacian", "gradient"]
    assert summary["lower_is_better"] == ["Nabf"]
    assert "| average |" in capsys.readouterr().out


def test_tang_preset_refuses_ssim_with_an_explanation(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ir, vi = _write_pairs(tmp_path, ["1"], (32, 32))
    code = evaluate_main(
        [
            "--ir",
            str(ir),
            "--vi",
            str(vi),
            "--baseline",
            "avg",
            "--preset",
            "tang",
            "--metrics",
            "SSIM",
            "--out",
            str(tmp_path / "o"),
            "--no-progress",
        ]
    )
    assert code == 2
    assert "MEF-SSIM" in capsys.readouterr().err


def test_unpaired_sources_and_unknown_dataset_are_errors(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ir, vi = _write_pairs(tmp_path, ["1", "2"], (32, 32))
    (vi / "2.png").unlink()
    assert (
        evaluate_main(
            [
                "--ir",
                str(ir),
                "--vi",
                str(vi),
                "--baseline",
                "avg",
                "--out",
                str(tmp_path / "o"),
                "--no-progress",
            ]
        )
        == 2
    )
    assert "no visible image for 2" in capsys.readouterr().err
    assert (
        evaluate_main(
            ["--dataset", "tno", "--root", str(tmp_path / "nowhere"), "--baseline", "avg", "--no-progress"]
        )
        == 2
    )
    assert "data set 'tno' not found" in capsys.readouterr().err
