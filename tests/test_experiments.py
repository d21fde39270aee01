"""The reference-model scripts: data pack, run commands, shipped-model selection and result tables."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "experiments"))

import reproduce  # noqa: E402
import results  # noqa: E402


def _fake_data(root: Path) -> None:
    rng = np.random.default_rng(0)
    natural = root / "train" / "natural" / "set"
    natural.mkdir(parents=True)
    Image.fromarray(rng.integers(0, 255, (20, 30, 3), dtype=np.uint8)).save(natural / "a.png")
    Image.fromarray(rng.integers(0, 255, (20, 30, 3), dtype=np.uint8)).save(natural / "b.jpg", quality=90)
    for sub in ("roadscene", "msrs"):
        for kind, shape in (("ir", (16, 16)), ("vi", (16, 16, 3))):
            folder = root / "train" / "ivif" / sub / kind
            folder.mkdir(parents=True)
            Image.fromarray(rng.integers(0, 255, shape, dtype=np.uint8)).save(folder / "01.png")
    (root / "train" / "ivif" / "msrs" / "mask").mkdir()
    Image.fromarray(np.zeros((16, 16), np.uint8)).save(root / "train" / "ivif" / "msrs" / "mask" / "01.png")


def test_pack_keeps_layout_grey_pngs_and_jpeg_bytes(tmp_path) -> None:
    _fake_data(tmp_path / "data")
    out = tmp_path / "pack"
    subprocess.run([sys.executable, str(REPO / "experiments" / "pack_data.py"), "--data-root", str(tmp_path / "data"),
                    "--out", str(out)], check=True, capture_output=True)  # fmt: skip
    png = Image.open(out / "train" / "natural" / "set" / "a.png")
    assert png.mode == "L" and png.size == (30, 20)
    assert (out / "train" / "natural" / "set" / "b.jpg").read_bytes() == (
        tmp_path / "data" / "train" / "natural" / "set" / "b.jpg"
    ).read_bytes()
    assert Image.open(out / "train" / "ivif" / "roadscene" / "vi" / "01.png").mode == "L"
    assert not (out / "train" / "ivif" / "msrs" / "mask").exists()  # training never reads the masks
    # the Y written is the Y training computes (BT.601), rounded to 8 bits
    from data_modules.io import read_image_array
    from data_modules.paired import luma

    source = luma(read_image_array(tmp_path / "data" / "train" / "natural" / "set" / "a.png"))[:, :, 0]
    assert np.abs(np.asarray(png, dtype=np.float64) / 255 - source).max() <= 0.5 / 255 + 1e-6


def test_pack_refuses_a_root_without_training_data(tmp_path) -> None:
    result = subprocess.run([sys.executable, str(REPO / "experiments" / "pack_data.py"), "--data-root", str(tmp_path)],
                            capture_output=True, text=True)  # fmt: skip
    assert result.returncode != 0 and "missing training folder" in result.stderr


def test_commands_share_one_validation_split_and_vary_the_seed(tmp_path) -> None:
    _fake_data(tmp_path)
    budget = reproduce.BUDGETS["cpu"]
    commands = [reproduce.ivif_command(budget, tmp_path, tmp_path / "r", "stfuse", seed, 600, tmp_path / "s.ckpt", [])
                for seed in (0, 1)]  # fmt: skip

    def value(command: list[str], key: str) -> str:
        return command[command.index(key) + 1]

    for command in commands:
        assert value(command, "--data.init_args.ivif.init_args.split_seed") == "0"
        assert value(command, "--data.init_args.ivif.init_args.val_size") == str(reproduce.VAL_SIZE)
        # one replay epoch per IVIF epoch: 2 pairs - 16 held out → at least one batch
        assert value(command, "--data.init_args.replay.init_args.samples_per_epoch") == str(
            budget["replay_batch"]
        )
    assert value(commands[0], "--data.init_args.ivif.init_args.seed") != value(
        commands[1], "--data.init_args.ivif.init_args.seed"
    )
    scratch = reproduce.ivif_command(
        budget, tmp_path, tmp_path / "r", "no_transfer", 0, 600, tmp_path / "s.ckpt", []
    )
    assert "--model.init_args.source_ckpt" not in scratch
    assert json.loads(value(scratch, "--model.init_args.net")) == {"preset": budget["preset"]}


def test_mean_rank_and_selection_use_validation_scores_only(tmp_path) -> None:
    scores = {
        "ivif_stfuse_s0": dict.fromkeys(results.TABLE_METRICS, 1.0),
        "ivif_stfuse_s1": dict.fromkeys(results.TABLE_METRICS, 2.0),
        "ivif_no_guidance_s0": {**dict.fromkeys(results.TABLE_METRICS, 3.0), "EN": 0.0},
    }
    ranks = results.mean_rank(scores, list(scores))
    assert ranks["ivif_no_guidance_s0"] == pytest.approx((7 * 1 + 3) / 8)
    assert ranks["ivif_stfuse_s0"] == pytest.approx((7 * 3 + 2) / 8)
    (tmp_path / "validation.json").write_text(json.dumps({"pairs": 16, "seed": 0, "scores": scores}))
    for name in scores:
        (tmp_path / name / "checkpoints").mkdir(parents=True)
        (tmp_path / name / "checkpoints" / "last.ckpt").write_bytes(b"")
        (tmp_path / name / "done.json").write_text("{}")
    (tmp_path / "ivif_stfuse_s2" / "checkpoints").mkdir(parents=True)  # interrupted: no done.json
    (tmp_path / "ivif_stfuse_s2" / "checkpoints" / "last.ckpt").write_bytes(b"")
    seed, run, selection = results.select_shipped(tmp_path, results.final_runs(tmp_path))
    assert run.name == "ivif_no_guidance_s0" and seed == 0
    assert set(selection["validation_scores"]) == set(scores)
    assert [run.name for _, run in results.final_runs(tmp_path)["stfuse"]] == [
        "ivif_stfuse_s0",
        "ivif_stfuse_s1",
    ]


def test_results_table_counts_wins_against_the_mean_of_seeds() -> None:
    metrics = results.TABLE_METRICS
    methods = {
        "shipped": dict.fromkeys(metrics, 100.0),
        "laplacian": dict.fromkeys(metrics, 5.0),
        "ivif_stfuse_s0": dict.fromkeys(metrics, 4.0),
        "ivif_stfuse_s1": dict.fromkeys(metrics, 6.0),
        "ivif_no_transfer_s0": {**dict.fromkeys(metrics, 4.5), "SD": 5.5},
    }
    summary = {"methods": {m: {k: {"mean": v} for k, v in values.items()} for m, values in methods.items()},
               "lower_is_better": []}  # fmt: skip
    runs = {"stfuse": ["ivif_stfuse_s0", "ivif_stfuse_s1"], "no_transfer": ["ivif_no_transfer_s0"]}
    table, facts = results.results_table("tno", summary, metrics, runs, "shipped")
    assert "5.000 ± 1.414" in table  # mean ± sample sd of the two full-STFuse seeds
    assert facts["full_beats_no_transfer"] == [m for m in metrics if m != "SD"]
    assert len(facts["shipped_beats_laplacian"]) == 8 and len(facts["shipped_beats_seafusion"]) == 8


def test_every_probe_is_compared_with_a_probe_that_differs_in_one_override(tmp_path) -> None:
    _fake_data(tmp_path)
    budget = reproduce.BUDGETS["cpu"]
    for name, (variant, extra, what, reference) in reproduce.PROBES.items():
        assert variant in reproduce.VARIANTS and what, name
        if reference is None:
            continue
        assert reference in reproduce.PROBES, f"probe {name} is compared with unknown probe {reference}"
        ref_variant, ref_extra, _, _ = reproduce.PROBES[reference]
        if variant != ref_variant:
            continue  # the scratch probes: the variant itself is the one change
        # the later value wins in LightningCLI, so compare the effective settings
        command = reproduce.ivif_command(
            budget, tmp_path, tmp_path / "r", variant, 0, 600, tmp_path / "s.ckpt", extra
        )
        ref_command = reproduce.ivif_command(budget, tmp_path, tmp_path / "r", ref_variant, 0, 600,
                                             tmp_path / "s.ckpt", ref_extra)  # fmt: skip

        def effective(cmd: list[str]) -> dict[str, str]:
            settings: dict[str, str] = {}
            for i, token in enumerate(cmd[:-1]):
                if token.startswith("--model.init_args."):
                    settings[token] = cmd[i + 1]
                elif token == "--config" and cmd[i + 1].startswith("experiments/ablations/"):
                    settings[cmd[i + 1]] = "on"
            return settings

        a, b = effective(command), effective(ref_command)
        changed = {k for k in a.keys() | b.keys() if a.get(k) != b.get(k)}
        assert len(changed) == 1, f"probe {name} differs from {reference} in {sorted(changed)}"


def test_probe_table_compares_each_probe_with_its_reference(tmp_path) -> None:
    metrics = results.TABLE_METRICS
    scores = {
        "probe_recipe": dict.fromkeys(metrics, 1.0),
        "probe_grad10": {**dict.fromkeys(metrics, 0.5), "EN": 2.0},
        "probe_int3": dict.fromkeys(metrics, 0.6),
        "laplacian": dict.fromkeys(metrics, 0.55),
    }
    (tmp_path / "validation.json").write_text(json.dumps({"pairs": 16, "seed": 0, "scores": scores}))
    rows = {
        line.split(" | ")[0][2:]: line
        for line in results.probe_table(tmp_path).splitlines()
        if line.startswith("| ")
    }
    assert rows["probe_grad10"].endswith("| probe_recipe | 1/7 |")
    assert rows["probe_int3"].endswith("| probe_grad10 | 7/1 |")  # compared with grad10, not the recipe
    assert rows["probe_recipe"].endswith("| 8/8 | – | – |")


def test_only_main_trains_the_run_the_gpu_recipe_validates(tmp_path, monkeypatch) -> None:
    _fake_data(tmp_path)
    (tmp_path / "o").mkdir()
    started: list[str] = []
    monkeypatch.setattr(reproduce, "run", lambda name, command, out, threads: started.append(name) or 1.0)
    monkeypatch.setattr(
        sys, "argv", ["reproduce.py", "--budget", "gpu", "--data-root", str(tmp_path), "--out", str(tmp_path / "o"),
                      "--only", "main", "--no-results"],
    )  # fmt: skip
    assert reproduce.main() == 0
    assert started == ["mfif", "ivif_stfuse_s0"]
    import gpu_check  # the recipe and validation steps of gpu_recipe.sh and `make gpu-check`

    assert gpu_check.STAGES == tuple(started) and gpu_check.MAIN_RUN == started[-1]
    assert (
        "experiments/gpu_check.py --steps recipe,validate"
        in (REPO / "experiments" / "gpu_recipe.sh").read_text()
    )
