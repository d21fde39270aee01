"""The reference-model scripts: data pack, run commands, shipped-model selection and result tables."""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "experiments"))

import reproduce  # noqa: E402
import results  # noqa: E402
import results_page  # noqa: E402


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


def _value(command: list[str], key: str) -> str:
    return command[command.index(key) + 1]


def test_commands_share_one_validation_split_and_vary_the_seed(tmp_path) -> None:
    _fake_data(tmp_path)
    commands = [reproduce.ivif_command("cpu", tmp_path, tmp_path / "r", "stfuse", seed, tmp_path / "s.ckpt", [])
                for seed in (0, 1)]  # fmt: skip
    budget = yaml.safe_load((REPO / "experiments" / "budgets" / "cpu" / "ivif.yaml").read_text())
    target = budget["data"]["init_args"]["ivif"]["init_args"]
    assert target["split_seed"] == 0 and target["val_size"] == 16
    assert target["val_strata"] == "stratified" and target["val_min_per_root"] == 4
    for command in commands:
        assert "experiments/budgets/cpu/ivif.yaml" in command
        assert "--data.init_args.ivif.init_args.split_seed" not in command  # the budget's, the same for all
    assert _value(commands[0], "--data.init_args.ivif.init_args.seed") != _value(
        commands[1], "--data.init_args.ivif.init_args.seed"
    )
    scratch = reproduce.ivif_command(
        "cpu", tmp_path, tmp_path / "r", "no_transfer", 0, tmp_path / "s.ckpt", []
    )
    assert "--model.init_args.source_ckpt" not in scratch
    assert "experiments/ablations/no_transfer.yaml" in scratch


def test_the_main_run_spends_the_budget_and_the_ablations_use_their_own_sizing(tmp_path, monkeypatch) -> None:
    """cpu: `--only all` trains the main run at budgets/cpu/ivif.yaml's steps (what `make transfer-ivif
    BUDGET=cpu` trains) and every seed and probe with budgets/cpu/ablation.yaml on top."""
    _fake_data(tmp_path)
    (tmp_path / "o").mkdir()
    started: dict[str, list[str]] = {}
    monkeypatch.setattr(
        reproduce,
        "run",
        lambda name, command, out, threads, *_, **__: started.setdefault(name, command) and 1.0,
    )
    sizing = "experiments/budgets/cpu/ablation.yaml"
    assert reproduce.ablation_config("cpu") == sizing and reproduce.main_run("cpu") == "ivif_stfuse_main"
    assert reproduce.ablation_config("gpu") is None and reproduce.main_run("gpu") == reproduce.MAIN_RUN
    main_steps = yaml.safe_load((REPO / "experiments/budgets/cpu/ivif.yaml").read_text())["trainer"][
        "max_steps"
    ]
    seed_steps = yaml.safe_load((REPO / sizing).read_text())["trainer"]["max_steps"]
    assert main_steps > seed_steps >= 1200  # probes at ≥ 1200 target steps
    argv = ["reproduce.py", "--budget", "cpu", "--data-root", str(tmp_path), "--out", str(tmp_path / "o"),
            "--no-results", "--seeds", "0,1", "--probes", "lg_constant"]  # fmt: skip
    at_budget_steps = [
        "ivif_stfuse_main",
        "ivif_no_guidance_main",
        "ivif_stfuse_main_s1",
        "ivif_no_guidance_main_s1",
    ]
    monkeypatch.setattr(sys, "argv", [*argv, "--only", "all", "--main-seeds", "0,1"])
    assert reproduce.main() == 0
    assert set(started) == {"mfif", "probe_lg_constant", *at_budget_steps} | {
        f"ivif_{v}_s{s}" for v in reproduce.VARIANTS for s in (0, 1)
    }
    for name in at_budget_steps:  # full STFuse and transfer without L_g at the main run's steps
        assert sizing not in started[name] and "--config" in started[name]
        assert started[name][started[name].index("--seed_everything") + 1] == (
            "1" if name.endswith("_s1") else "0"
        )
    assert "experiments/ablations/no_guidance.yaml" in started["ivif_no_guidance_main_s1"]
    assert "experiments/ablations/no_guidance.yaml" not in started["ivif_stfuse_main_s1"]
    assert all(
        sizing in command for name, command in started.items() if name not in ("mfif", *at_budget_steps)
    )
    started.clear()
    monkeypatch.setattr(sys, "argv", [*argv, "--only", "main"])
    assert reproduce.main() == 0
    assert list(started) == ["mfif", "ivif_stfuse_main"]
    started.clear()
    monkeypatch.setattr(sys, "argv", [*argv, "--only", "main-seeds", "--main-seeds", "0,1"])
    assert reproduce.main() == 0
    assert list(started) == ["mfif", *at_budget_steps]
    started.clear()
    monkeypatch.setattr(
        sys, "argv", [*argv, "--only", "all", "--main-seeds", "", "--seeds", "", "--probes", ""]
    )
    assert reproduce.main() == 0
    assert list(started) == ["mfif", "ivif_stfuse_main"]  # no main seeds: the main run alone
    monkeypatch.setattr(sys, "argv", [*argv, "--only", "main-seeds", "--variants", "no_transfer"])
    with pytest.raises(SystemExit, match="main-seeds trains the variants"):
        reproduce.main()
    # a budget without ablation.yaml trains its seeds at its own steps: nothing to train apart, not even the source
    started.clear()
    monkeypatch.setattr(sys, "argv", [*argv, "--only", "main-seeds", "--budget", "gpu"])
    with pytest.raises(SystemExit, match="budget gpu trains its ablation seeds at its own target steps"):
        reproduce.main()
    assert started == {}


def test_the_recipe_lives_in_the_yaml_and_equals_the_stage_defaults() -> None:
    """experiments/{mfif,ivif}.yaml state the recipe; the stages' defaults are the same values, and no budget
    overlay changes a loss weight or the network (budgets are steps, crops, batches and the trainer)."""
    import inspect

    from stfuse.models import build_network
    from stfuse.stages.ivif import IVIFTransferStage
    from stfuse.stages.mfif import MFIFStage

    for config, stage in (("mfif.yaml", MFIFStage), ("ivif.yaml", IVIFTransferStage)):
        model = yaml.safe_load((REPO / "experiments" / config).read_text())["model"]["init_args"]
        defaults = {
            k: p.default for k, p in inspect.signature(stage.__init__).parameters.items() if k != "self"
        }
        for key, value in model.items():
            if key in ("net", "source_ckpt", "transfer"):
                continue
            assert defaults[key] == value, (
                f"{config}: {key} is {value!r}, the stage default {defaults[key]!r}"
            )
    net = yaml.safe_load((REPO / "experiments" / "mfif.yaml").read_text())["model"]["init_args"]["net"]
    assert build_network(net).config == build_network({}).config, "mfif.yaml's network is the default network"
    for budget in reproduce.BUDGETS:
        for stage_name in ("mfif", "ivif"):
            overlay = reproduce.budget_settings(budget, stage_name)
            model = (overlay.get("model") or {}).get("init_args", {})
            allowed = (
                {"channels_last", "warmup_steps", "val_metrics", "net"}
                if budget == "smoke"
                else {"channels_last"}
            )
            assert set(model) <= allowed, f"budget {budget}/{stage_name} changes the recipe: {sorted(model)}"


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
    # the main run (cpu: its own run at the budget's steps) competes on the same validation ranks
    scores["ivif_stfuse_main"] = dict.fromkeys(results.TABLE_METRICS, 4.0)
    (tmp_path / "validation.json").write_text(json.dumps({"pairs": 16, "seed": 0, "scores": scores}))
    (tmp_path / "ivif_stfuse_main").mkdir()
    (tmp_path / "ivif_stfuse_main" / "done.json").write_text("{}")
    assert "main" not in results.final_runs(tmp_path) and "main" not in results.final_runs(tmp_path, "gpu")
    runs = results.final_runs(tmp_path, "cpu")
    assert [run.name for _, run in runs["main"]] == ["ivif_stfuse_main"]
    seed, run, selection = results.select_shipped(tmp_path, runs)
    assert run.name == "ivif_stfuse_main" and "the budget's own steps" in selection["rule"]
    # the other runs at the budget's steps (both variants, seeds ≥ 1) compete too; an odd folder name is ignored
    scores["ivif_no_guidance_main_s2"] = dict.fromkeys(results.TABLE_METRICS, 5.0)
    (tmp_path / "validation.json").write_text(json.dumps({"pairs": 16, "seed": 0, "scores": scores}))
    for name in ("ivif_no_guidance_main_s2", "ivif_stfuse_main_s1", "ivif_stfuse_main_sX"):
        (tmp_path / name).mkdir()
    (tmp_path / "ivif_no_guidance_main_s2" / "done.json").write_text("{}")  # ivif_stfuse_main_s1: interrupted
    runs = results.final_runs(tmp_path, "cpu")
    assert [(seed, run.name) for seed, run in runs["main_no_guidance"]] == [(2, "ivif_no_guidance_main_s2")]
    assert [run.name for _, run in runs["main"]] == ["ivif_stfuse_main"]
    assert "ivif_stfuse_main" not in [run.name for _, run in runs["stfuse"]]
    seed, run, selection = results.select_shipped(tmp_path, runs)
    assert (seed, run.name) == (2, "ivif_no_guidance_main_s2")


def test_the_shipped_variant_is_decided_on_seed_means_at_the_budget_steps(tmp_path) -> None:
    """Full STFuse ships when the means of its seeds at the budget's own steps beat transfer without L_g on
    ≥ 5 of 8 validation metrics, even where one seed of the other variant outranks each of its seeds; the
    shorter ablation seeds do not compete; below the bar the other variant's best seed ships."""
    metrics = results.TABLE_METRICS

    def values(*per_metric: float) -> dict[str, float]:
        return {**dict(zip(metrics, per_metric, strict=True)), "copy_distance": 0.1}

    scores = {
        # full STFuse: steady seeds, the better means on EN, SD, SF, MI, SCD (5 of 8)
        "ivif_stfuse_main": values(4.9, 4.9, 4.9, 4.9, 4.9, 1, 1, 1),
        "ivif_stfuse_main_s1": values(5.1, 5.1, 5.1, 5.1, 5.1, 2, 2, 2),
        # transfer without L_g: one lucky seed ahead of every full-STFuse seed on 6 metrics, one poor seed
        "ivif_no_guidance_main": values(6, 6, 6, 6, 6, 6, 6, 6),
        "ivif_no_guidance_main_s1": values(1, 1, 1, 1, 1, 1, 1, 1),
        "ivif_no_guidance_s0": values(*[9] * 8),  # a shorter ablation seed, best of all: not in the pool
    }
    (tmp_path / "validation.json").write_text(json.dumps({"pairs": 16, "seed": 0, "scores": scores}))
    for name in scores:
        (tmp_path / name).mkdir()
        (tmp_path / name / "done.json").write_text("{}")
    runs = results.final_runs(tmp_path, "cpu")
    assert results.mean_rank(scores, [n for n in scores if "_main" in n])["ivif_no_guidance_main"] == 1.0
    seed, run, selection = results.select_shipped(tmp_path, runs)
    assert (seed, run.name) == (1, "ivif_stfuse_main_s1"), "the better-ranked full-STFuse seed"
    assert selection["variant"] == "stfuse"
    assert selection["full_stfuse_wins"]["metrics"] == ["EN", "SD", "SF", "MI", "SCD"]
    assert "ivif_no_guidance_s0" not in selection["validation_scores"]
    assert "budget's own steps" in selection["rule"] and "fewer than 5 of the 8" in selection["rule"]
    page = results.selection_text({**selection, "run": run.name, "split": "16 pairs"})
    assert page.startswith(
        "`ivif_stfuse_main_s1`, chosen on 16 pairs (among the runs at the budget's own steps"
    )
    assert "full STFuse's seed means won 5 of 8 (EN, SD, SF, MI, SCD), so STFuse (full) ships" in page
    assert page.endswith("has the best mean rank of its 2 seed(s) (1.00)")
    assert results.seeds_text(runs) == (
        "transfer without L_g at the ablation steps: 0; STFuse (full) at the budget's own steps: 0, 1; "
        "transfer without L_g at the budget's own steps: 0, 1"
    )
    # a budget that trains its seeds at its own steps labels them so
    only_seeds = {"no_guidance": runs["no_guidance"]}
    assert results.seeds_text(only_seeds, apart=False) == "transfer without L_g at the budget's own steps: 0"
    # 4 of 8: below the bar, so transfer without L_g's best seed ships
    scores["ivif_stfuse_main_s1"] = values(5.1, 5.1, 5.1, 5.1, 1, 2, 2, 2)
    (tmp_path / "validation.json").write_text(json.dumps({"pairs": 16, "seed": 0, "scores": scores}))
    seed, run, selection = results.select_shipped(tmp_path, runs)
    assert (run.name, selection["variant"]) == ("ivif_no_guidance_main", "no_guidance")
    assert len(selection["full_stfuse_wins"]["metrics"]) == 4
    # without runs at the budget's own steps (a budget that trains its seeds at its own steps), the seeds compete
    runs = {key: pool for key, pool in runs.items() if key not in results.MAIN_KEYS.values()}
    seed, run, selection = results.select_shipped(tmp_path, runs)
    assert run.name == "ivif_no_guidance_s0" and "among the seeds" in selection["rule"]


def test_run_names_at_the_budget_steps_parse_back_to_their_variant_and_seed() -> None:
    for variant in reproduce.MAIN_VARIANTS:
        for seed in (0, 1, 12):
            name = reproduce.main_budget_run(variant, seed)
            assert reproduce.parse_main_budget_run(name) == (variant, seed)
    for name in ("ivif_stfuse_main_s0", "ivif_stfuse_main_s01", "ivif_stfuse_main_sX", "ivif_stfuse_s1",
                 "ivif_magic_main", "probe_lg_main", "ivif_stfuse_main_s1_old"):  # fmt: skip
        assert reproduce.parse_main_budget_run(name) is None, name


def test_exported_records_say_how_each_run_was_trained_and_the_shipped_one_how_it_was_chosen(
    tmp_path, monkeypatch
) -> None:
    """results.export_weights: every finished run is exported with the command that retrains it and the
    overlays it read (the ablation sizing only for the ablation seeds); the best-ranked one becomes the
    default weights, with its selection in the record."""
    import stfuse.models.checkpoint as checkpoint
    from stfuse.models import build_network

    monkeypatch.setattr(checkpoint, "load_network", lambda path, *_, **__: build_network({}))
    monkeypatch.setattr(results, "DEFAULT_WEIGHTS", tmp_path / "weights" / "stfuse_default.safetensors")
    values = {"ivif_stfuse_main": 2.0, "ivif_no_guidance_main_s2": 5.0, "ivif_stfuse_s1": 1.0}
    scores = {
        name: {**dict.fromkeys(results.TABLE_METRICS, v), "copy_distance": 0.1} for name, v in values.items()
    }
    (tmp_path / "validation.json").write_text(json.dumps({"pairs": 16, "seed": 0, "scores": scores}))
    for name in values:
        (tmp_path / name).mkdir()
        (tmp_path / name / "done.json").write_text(json.dumps({"seconds": 60.0}))
    # the run that ships was resumed once: its record says how its wall time was counted
    resumed = {"seconds": 60.0, "attempts": 2, "last_attempt_seconds": 25.0}
    (tmp_path / "ivif_no_guidance_main_s2" / "done.json").write_text(json.dumps(resumed))
    # the main run was taken over from an equal recipe's run: its record keeps what it was trained as
    adopted = {"run": "res_main", "command": "stfuse fit ...", "fingerprint": "f0"}
    (tmp_path / "ivif_stfuse_main" / "done.json").write_text(
        json.dumps({"seconds": 60.0, "adopted_from": adopted})
    )
    exported, selection = results.export_weights(tmp_path, "cpu")
    assert set(exported) == set(values) and selection["run"] == "ivif_no_guidance_main_s2"
    records = {
        name: json.loads(checkpoint.read_network_state(path)[2]["training"])
        for name, path in exported.items()
    }
    sizing = "experiments/budgets/cpu/ablation.yaml"
    main, other, seed = (
        records["ivif_stfuse_main"],
        records["ivif_no_guidance_main_s2"],
        records["ivif_stfuse_s1"],
    )
    assert (
        main["main_run"] and main["budget_steps"] and main["command"].startswith("make train-mfif BUDGET=cpu")
    )
    assert (
        not other["main_run"]
        and other["budget_steps"]
        and (other["variant"], other["seed"]) == ("no_guidance", 2)
    )
    assert other["command"].startswith("python experiments/reproduce.py --budget cpu --only main-seeds "
                                       "--variants no_guidance --main-seeds 2;")  # fmt: skip
    assert (
        sizing not in other["configs"]["ivif"]
        and "experiments/ablations/no_guidance.yaml" in other["configs"]["ivif"]
    )
    assert (
        not seed["budget_steps"]
        and sizing in seed["configs"]["ivif"]
        and "--only ablations" in seed["command"]
    )
    shipped = json.loads(results.DEFAULT_WEIGHTS.with_suffix(".json").read_text())
    assert shipped["selection"]["rejected_as_copies"] == [] and shipped["variant"] == "no_guidance"
    assert shipped["train_seconds"] == {"mfif": None, "ivif_no_guidance_main_s2": 60.0}
    assert shipped["attempts"] == 2 and "attempts" not in main and "adopted_from" not in shipped
    assert main["adopted_from"] == adopted and "adopted_from" not in other


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
    table, facts = results_page.results_table("tno", summary, metrics, runs, "shipped")
    assert "5.000 ± 1.414" in table  # mean ± sample sd of the two full-STFuse seeds
    assert facts["full_beats_no_transfer"] == [m for m in metrics if m != "SD"]
    assert len(facts["shipped_beats_laplacian"]) == 8 and len(facts["shipped_beats_seafusion"]) == 8


def _flatten(tree: dict, prefix: str = "") -> dict[str, object]:
    flat: dict[str, object] = {}
    for key, value in tree.items():
        if isinstance(value, dict) and value:
            flat.update(_flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


NET = "model.init_args.net"


def _settings(base: str, overlays: list[str]) -> dict[str, object]:
    """The flattened settings of experiments/<base> with the ``--config`` overlays stacked on it, in order."""
    settings = _flatten(yaml.safe_load((REPO / "experiments" / base).read_text()))
    for i in range(0, len(overlays), 2):
        path = REPO / overlays[i + 1]
        assert path.is_file(), path
        overlay = _flatten(yaml.safe_load(path.read_text()) or {})
        # an overlay's `net` replaces the whole mapping (a dict-typed argument: jsonargparse does not merge it)
        if any(key.startswith(f"{NET}.") for key in overlay):
            settings = {key: value for key, value in settings.items() if not key.startswith(f"{NET}.")}
        settings.update(overlay)
    # the network that trains: an ivif student copies its teacher's (mfif.yaml's, the default network) with
    # `net`'s keys overridden, and an unset key is the default, so {residual: 0.0} and {} are the same network
    from stfuse.models import build_network

    net = {key[len(NET) + 1 :]: value for key, value in settings.items() if key.startswith(f"{NET}.")}
    settings = {key: value for key, value in settings.items() if key != NET and not key.startswith(f"{NET}.")}
    return settings | _flatten({NET: build_network(net).config})


def _differences(a: dict[str, object], b: dict[str, object]) -> set[str]:
    return {key for key in set(a) | set(b) if a.get(key) != b.get(key)}


def _run_settings(name: str) -> tuple[dict[str, object], dict[str, object]]:
    """(target-stage settings, source-stage settings) of a probe, ``main`` or an ablation run ``ivif_<v>_s<k>``."""
    if name in reproduce.PROBES:
        variant, extra, _, _ = reproduce.PROBES[name]
        source = reproduce.PROBE_SOURCES.get(name, [])
    else:
        variant = "stfuse" if name == "main" else name[len("ivif_") : name.rindex("_s")]
        extra, source = [], []
    return _settings("ivif.yaml", [*reproduce.VARIANTS[variant], *extra]), _settings("mfif.yaml", source)


def test_every_probe_changes_one_setting_of_the_run_it_is_compared_with() -> None:
    spec = yaml.safe_load((REPO / "experiments" / "probes" / "probes.yaml").read_text())
    assert set(spec) == set(reproduce.PROBES)
    runs = {f"ivif_{variant}_s{seed}" for variant in reproduce.VARIANTS for seed in reproduce.SEEDS}
    for name, (variant, _, what, reference) in reproduce.PROBES.items():
        assert variant in reproduce.VARIANTS and what, name
        assert reference == "main" or reference in reproduce.PROBES or reference in runs, (
            f"probe {name}: unknown reference {reference}"
        )
        target, source = _run_settings(name)
        reference_target, reference_source = _run_settings(reference)
        changed = _differences(target, reference_target)
        source_changed = _differences(source, reference_source)
        if name in reproduce.PROBE_SOURCES:  # an architecture probe: one change in its source stage
            assert source_changed, (
                f"probe {name} trains its own source stage, but with the settings of {reference}'s"
            )
            # its target stage may differ only where the reference's network settings cannot build the probe's
            # architecture (the paint head has no detail residual: net.residual 0.0 instead of the recipe's 0.5)
            assert {key for key in changed if not key.startswith(f"{NET}.")} == set(), (
                f"probe {name}: source {source_changed}, target {changed}"
            )
            if changed:
                from stfuse.models import build_network

                student = {
                    key[len(NET) + 1 :]: value for key, value in source.items() if key.startswith(f"{NET}.")
                }
                keys = [key[len(NET) + 1 :] for key in changed]
                assert build_network(student | {key: target[f"{NET}.{key}"] for key in keys})
                with pytest.raises(ValueError):
                    build_network(student | {key: reference_target[f"{NET}.{key}"] for key in keys})
            continue
        assert not source_changed, f"probe {name} and {reference} start from different source stages"
        # one setting; a guidance mode may carry the layers it reads
        assert changed, f"probe {name} trains the same settings as {reference}"
        assert len(changed) == 1 or changed <= {
            "model.init_args.guidance",
            "model.init_args.guidance_layers",
        }, f"probe {name} changes {sorted(changed)} against {reference}"


def test_an_architecture_probe_trains_its_own_source_stage_first(tmp_path, monkeypatch) -> None:
    _fake_data(tmp_path)
    (tmp_path / "o").mkdir()
    started: list[tuple[str, list[str]]] = []
    monkeypatch.setattr(
        reproduce, "run", lambda name, command, out, threads, *_, **__: started.append((name, command)) or 1.0
    )
    monkeypatch.setattr(sys, "argv", ["reproduce.py", "--budget", "smoke", "--data-root", str(tmp_path), "--out",
                                      str(tmp_path / "o"), "--only", "probes", "--probes", "paint", "--no-results"])  # fmt: skip
    assert reproduce.main() == 0
    assert [name for name, _ in started] == ["mfif", "mfif_paint", "probe_paint"]
    source = started[1][1]
    assert "experiments/probes/paint_source.yaml" in source
    target = started[2][1]
    assert _value(target, "--model.init_args.source_ckpt") == str(
        tmp_path / "o" / "mfif_paint" / "checkpoints" / "last.ckpt"
    )


def test_probe_table_compares_each_probe_with_its_reference(tmp_path, monkeypatch) -> None:
    metrics = results.TABLE_METRICS
    monkeypatch.setattr(results_page, "PROBES", {
        "a": ("stfuse", [], "probe a", "main"), "b": ("stfuse", [], "probe b", "a")})  # fmt: skip
    scores = {
        reproduce.MAIN_RUN: dict.fromkeys(metrics, 1.0),
        "probe_a": {**dict.fromkeys(metrics, 0.5), "EN": 2.0},
        "probe_b": {**dict.fromkeys(metrics, 0.6), "false_edges": 0.00123, "target_gap": 0.0456},
        "ivif_no_guidance_main_s1": dict.fromkeys(metrics, 0.7),
        "laplacian": dict.fromkeys(metrics, 0.55),
        "copy_ir": {**dict.fromkeys(metrics, 3.0), "copy_distance": 0.0},
    }
    (tmp_path / "validation.json").write_text(json.dumps({"pairs": 16, "seed": 0, "scores": scores}))
    rows = {
        line.split(" | ")[0][2:]: line
        for line in results_page.probe_table(tmp_path).splitlines()
        if line.startswith("| ")
    }
    assert rows["probe_a"].endswith(f"| {reproduce.MAIN_RUN} | 1/7 |")
    assert rows["probe_b"].endswith("| probe_a | 7/1 |")  # compared with a, not the main run
    assert rows[reproduce.MAIN_RUN].endswith("| – | – | 8/8 | – | – |")  # no diagnostics recorded: "–"
    assert (
        "| 0.600 | 0.0012 | 0.046 | 8/8 | probe_a |" in rows["probe_b"]
    )  # the diagnostics beside the metrics
    assert "transfer without L_g, seed 1 at the budget's own target steps" in rows["ivif_no_guidance_main_s1"]
    assert "copy baseline" in rows["copy_ir"]
    assert "without a validation score" not in results_page.probe_table(tmp_path)
    # a probe not trained in this output folder is named under the table; one whose reference is missing says so
    monkeypatch.setattr(results_page, "PROBES", {**results_page.PROBES, "c": ("stfuse", [], "probe c", "a"),
                                                 "d": ("stfuse", [], "probe d", "e"), "e": ("stfuse", [], "e", "a")})  # fmt: skip
    scores["probe_d"] = dict.fromkeys(metrics, 0.8)
    (tmp_path / "validation.json").write_text(json.dumps({"pairs": 16, "seed": 0, "scores": scores}))
    table = results_page.probe_table(tmp_path)
    assert table.endswith("without a validation score in this output folder (2 of 5; `python experiments/"
                          "reproduce.py --only probes --probes NAME,...` trains them): c, e.")  # fmt: skip
    assert "| probe_e (no score here) | – |" in table


def test_a_run_whose_output_is_a_copy_of_one_source_is_never_shipped(tmp_path) -> None:
    import validate

    good = {**dict.fromkeys(results.TABLE_METRICS, 1.0), "copy_distance": 0.08}
    copy = {**dict.fromkeys(results.TABLE_METRICS, 5.0), "copy_distance": 0.0}  # wins every metric
    undefined = {**good, "SCD": float("nan"), "copy_distance": 0.05}
    assert not validate.is_copy(good)
    assert validate.is_copy(copy) and validate.is_copy(undefined)
    assert validate.is_copy({**good, "copy_distance": validate.COPY_FLOOR / 2})
    scores = {"ivif_stfuse_s0": good, "ivif_stfuse_s1": copy, "ivif_no_guidance_s0": undefined}
    (tmp_path / "validation.json").write_text(json.dumps({"pairs": 16, "seed": 0, "scores": scores}))
    for name in scores:
        (tmp_path / name).mkdir()
        (tmp_path / name / "done.json").write_text("{}")
    seed, run, selection = results.select_shipped(tmp_path, results.final_runs(tmp_path))
    assert run.name == "ivif_stfuse_s0"
    assert sorted(selection["rejected_as_copies"]) == ["ivif_no_guidance_s0", "ivif_stfuse_s1"]
    # the results tables name a variant's copied seeds beside its mean (which still includes them)
    copies = results.copied_runs(tmp_path)
    assert copies == ["ivif_no_guidance_s0", "ivif_stfuse_s1"]
    summary = {"methods": {name: {m: {"mean": v} for m, v in values.items()} for name, values in scores.items()},
               "lower_is_better": []}  # fmt: skip
    runs = {"stfuse": ["ivif_stfuse_s0", "ivif_stfuse_s1"], "no_guidance": ["ivif_no_guidance_s0"]}
    table, _ = results_page.results_table("tno", summary, results.TABLE_METRICS, runs, None, copies=copies)
    assert "mean ± sd of 2 seeds (copies of one source on validation: `ivif_stfuse_s1`)" in table
    assert "mean ± sd of 1 seed (copies of one source on validation: `ivif_no_guidance_s0`)" in table
    # the main run gets its own row unless it is the shipped run
    summary["methods"]["ivif_stfuse_main"] = {m: {"mean": 7.0} for m in results.TABLE_METRICS}
    runs["main"] = ["ivif_stfuse_main"]
    table, _ = results_page.results_table("tno", summary, results.TABLE_METRICS, runs, None)
    assert "the main run (`ivif_stfuse_main`) | 7.000 |" in table
    table, _ = results_page.results_table("tno", summary, results.TABLE_METRICS, runs, None,
                                          shipped_run="ivif_stfuse_main")  # fmt: skip
    assert "the main run" not in table


def test_the_comparison_at_the_budget_steps_gets_its_rows_and_its_goal_line() -> None:
    """With transfer without L_g trained at the main run's steps too, the table shows both variants there as
    mean ± sd of their seeds (not the main run alone), and the goal facts count L_g's wins on those means."""
    metrics = results.TABLE_METRICS
    values = {"ivif_stfuse_main": 2.0, "ivif_stfuse_main_s1": 4.0, "ivif_no_guidance_main": 1.0,
              "ivif_no_guidance_main_s1": 5.0, "shipped": 9.0, "laplacian": 0.5}  # fmt: skip
    summary = {
        "methods": {n: {m: {"mean": v} for m in metrics} for n, v in values.items()},
        "lower_is_better": [],
    }
    summary["methods"]["ivif_no_guidance_main"]["EN"] = {"mean": 9.0}  # transfer without L_g wins EN
    runs = {"main": ["ivif_stfuse_main", "ivif_stfuse_main_s1"],
            "main_no_guidance": ["ivif_no_guidance_main", "ivif_no_guidance_main_s1"]}  # fmt: skip
    table, facts = results_page.results_table("tno", summary, metrics, runs, "shipped")
    assert (
        "| STFuse (full), the budget's own steps, mean ± sd of 2 seeds | 3.000 ± 1.414 | 3.000 ± 1.414 |"
        in table
    )
    assert "| transfer without L_g, the budget's own steps, mean ± sd of 2 seeds | 7.000 ± 2.828 |" in table
    assert "the main run (`" not in table
    assert facts["main_full_beats_no_guidance"] == []  # 3.0 against 3.0 on seven metrics, 7.0 on EN
    summary["methods"]["ivif_no_guidance_main"]["SD"] = {"mean": 0.0}
    _, facts = results_page.results_table("tno", summary, metrics, runs, "shipped")
    assert facts["main_full_beats_no_guidance"] == ["SD"]
    line = results_page._goal_line("TNO-25", facts, "main_full_beats_no_guidance", 5, "x")
    assert line == "- TNO-25: x on 1 of 8 (SD); goal ≥ 5: **missed**."
    assert results_page._main_budget_label("ivif_no_guidance_main_s2") == "transfer without L_g, seed 2"
    assert results_page._main_budget_label("ivif_stfuse_main") == "STFuse (full), seed 0"


def test_copy_baselines_pass_one_source_through() -> None:
    import torch

    from stfuse.baselines import fuse_baseline

    ir, vi = torch.rand(1, 1, 9, 7), torch.rand(1, 1, 9, 7)
    assert torch.equal(fuse_baseline("copy_ir", ir, vi), ir) and torch.equal(
        fuse_baseline("visible", ir, vi), vi
    )


def test_only_main_trains_the_run_the_gpu_recipe_validates(tmp_path, monkeypatch) -> None:
    _fake_data(tmp_path)
    (tmp_path / "o").mkdir()
    started: list[str] = []
    monkeypatch.setattr(
        reproduce, "run", lambda name, command, out, threads, *_, **__: started.append(name) or 1.0
    )
    monkeypatch.setattr(
        sys, "argv", ["reproduce.py", "--budget", "gpu", "--data-root", str(tmp_path), "--out", str(tmp_path / "o"),
                      "--only", "main", "--no-results"],
    )  # fmt: skip
    assert reproduce.main() == 0
    assert started == ["mfif", reproduce.MAIN_RUN]
    import gpu_check  # the recipe and validation steps of gpu_recipe.sh and `make gpu-check`

    assert gpu_check.STAGES == tuple(started) and gpu_check.MAIN_RUN == started[-1]
    assert (
        "experiments/gpu_check.py --steps recipe,validate"
        in (REPO / "experiments" / "gpu_recipe.sh").read_text()
    )


def test_keep_weights_exports_the_runs_and_leaves_the_packaged_weights_and_record_alone(
    tmp_path, monkeypatch
) -> None:
    """results.py --keep-weights: an output folder with the ablation seeds only (not the runs the packaged
    weights came from) is exported and scored without selecting anything; the packaged weights and their record
    are left byte for byte, and their record names the shipped run and how it was chosen."""
    import stfuse.models.checkpoint as checkpoint
    from stfuse.models import build_network

    monkeypatch.setattr(checkpoint, "load_network", lambda path, *_, **__: build_network({}))
    default = tmp_path / "weights" / "stfuse_default.safetensors"
    monkeypatch.setattr(results, "DEFAULT_WEIGHTS", default)
    with pytest.raises(SystemExit, match="--keep-weights needs the packaged weights and their record"):
        results.packaged_selection()
    checkpoint.save_network(build_network({"preset": "tiny"}), default)
    record = {"budget": "cpu", "seed": 1, "selection": {"variant": "stfuse", "rule": "r"},
              "train_seconds": {"mfif": 60.0, "ivif_stfuse_main_s1": 120.0}}  # fmt: skip
    default.with_suffix(".json").write_text(json.dumps(record))
    before = default.read_bytes(), default.with_suffix(".json").read_text()
    for name in ("ivif_stfuse_s0", "ivif_no_guidance_s0", "ivif_no_transfer_s0"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "done.json").write_text(json.dumps({"seconds": 60.0}))
    # scores that would select no_guidance if anything were selected
    scores = {
        name: dict.fromkeys(results.TABLE_METRICS, 2.0 if "guidance" in name else 1.0)
        for name in ("ivif_stfuse_s0", "ivif_no_guidance_s0", "ivif_no_transfer_s0")
    }
    (tmp_path / "validation.json").write_text(json.dumps({"pairs": 16, "seed": 0, "scores": scores}))
    exported, selection = results.export_weights(tmp_path, "cpu", ship=False)
    assert selection is None and set(exported) == {
        "ivif_stfuse_s0",
        "ivif_no_guidance_s0",
        "ivif_no_transfer_s0",
    }
    assert (default.read_bytes(), default.with_suffix(".json").read_text()) == before
    run, kept, packaged = results.packaged_selection()
    assert run == "ivif_stfuse_main_s1" and kept["run"] == run and kept["seed"] == 1 and packaged == record
    default.with_suffix(".json").write_text(json.dumps({**record, "selection": None}))
    with pytest.raises(SystemExit, match="the record has no selection"):
        results.packaged_selection()


def test_results_page_is_written_with_a_main_run_beside_the_variants(tmp_path, monkeypatch) -> None:
    """write_page with the cpu budget's own main run (``runs["main"]``) writes the page and the README block."""
    metrics = results.TABLE_METRICS
    monkeypatch.setattr(results_page, "REPO", tmp_path)
    (tmp_path / "docs").mkdir()
    (tmp_path / "README.md").write_text("intro\n<!-- results:start -->\nold\n<!-- results:end -->\ntail\n")
    names = ["shipped", "ivif_stfuse_s0", "ivif_stfuse_main", "ivif_no_guidance_s0", "laplacian"]
    summary = {"methods": {n: {m: {"mean": 1.0} for m in metrics} for n in names}, "lower_is_better": []}
    runs = {
        "stfuse": ["ivif_stfuse_s0"],
        "no_guidance": ["ivif_no_guidance_s0"],
        "main": ["ivif_stfuse_main"],
    }
    fields = {"budget": "cpu", "schedule": "{}", "mfif_config": "m.yaml", "ivif_config": "i.yaml", "recipe": "{}",
              "selection": "`ivif_stfuse_s0`", "shipped_run": "ivif_stfuse_s0", "copies": [],
              "seeds": "full STFuse at the ablation steps: 0"}  # fmt: skip
    grids = [tmp_path / f"results_{name}.png" for name in results.SETS]
    body = results_page.write_page(
        {name: summary for name in results.SETS}, runs, "shipped", grids, fields, tmp_path
    )
    assert "the main run (`ivif_stfuse_main`)" in body
    assert "columns shipped, transfer without L_g (ivif_no_guidance_s0)." in body
    readme = (tmp_path / "README.md").read_text()
    assert "old" not in readme and "the main run (`ivif_stfuse_main`)" in readme and readme.endswith("tail\n")


def test_the_validation_split_holds_out_both_domains_day_and_night_and_never_trains_on_them(
    data_root,
) -> None:
    """The cpu budget's split on the real training pairs: 12 RoadScene + 4 MSRS, dark and bright MSRS
    scenes both, none of them in the training set, no test pair; each domain counts once in the scores."""
    import validate

    from data_modules import IVIFDataModule

    split = validate.split_settings("cpu")
    domains = validate.validation_pairs(data_root, split)
    names = {domain: [item["name"] for item in pairs] for domain, pairs in domains.items()}
    assert {domain: len(held) for domain, held in names.items()} == {"roadscene": 12, "msrs": 4}
    assert {name[-1] for name in names["msrs"]} == {"D", "N"}  # MSRS names end in D (day) or N (night)
    roots = [str(data_root / "train" / "ivif" / "roadscene"), str(data_root / "train" / "ivif" / "msrs")]
    module = IVIFDataModule(train_roots=roots, num_workers=0, **split)
    module.setup("fit")
    trained = {module.train_dataset[i]["name"] for i in range(len(module.train_dataset))}
    held_out = set(names["roadscene"]) | set(names["msrs"])
    assert len(trained) == 183 - 16 and not trained & held_out
    tests = {p.stem for d in ("tno", "roadscene", "msrs") for p in (data_root / "ivif" / d / "ir").iterdir()}
    assert not held_out & tests
    small = {"msrs": {**dict.fromkeys(results.TABLE_METRICS, 4.0), "to_ir": 0.1, "to_vi": 0.3},
             "roadscene": {**dict.fromkeys(results.TABLE_METRICS, 2.0), "to_ir": 0.2, "to_vi": 0.05}}  # fmt: skip
    row = validate.balanced(small)
    assert row["MI"] == 3.0 and row["copy_distance"] == pytest.approx(0.15)  # min(0.15, 0.175)


def test_false_edges_sees_patches_pasted_into_a_flat_region_and_not_a_convex_mix(data_root) -> None:
    """On held-out training pairs: the average and either copy have no coarse edge that neither source has;
    infrared pixels in random blotches and visible ones around them (a base weight that flips) have, and more
    blotches have more."""
    import torch
    import torch.nn.functional as F
    import validate

    pairs = validate.validation_pairs(data_root, validate.split_settings("cpu"))["roadscene"][:3]
    for item in pairs:
        ir, vi = item["ir"][None], item["vi"][None]
        for convex in (0.5 * (ir + vi), ir, vi, 0.3 * ir + 0.7 * vi):
            assert validate.false_edges(convex, ir, vi) == pytest.approx(0.0, abs=1e-6)
        generator = torch.Generator().manual_seed(0)
        seams = []
        for cells in (2, 6):
            blotches = (torch.rand(1, 1, cells, cells, generator=generator) > 0.5).float()
            w = F.interpolate(blotches, size=ir.shape[-2:], mode="nearest")
            seams.append(validate.false_edges(w * ir + (1 - w) * vi, ir, vi))
        assert 0 < seams[0] < seams[1], seams
    assert set(validate.score(lambda ir, vi: 0.5 * (ir + vi), pairs)) >= {"false_edges", "copy_distance"}


def test_target_gap_is_the_share_of_the_infrared_targets_lead_that_the_fusion_loses(data_root) -> None:
    """On held-out MSRS training pairs (persons at night): 0 for the infrared image and anything brighter, 1 for
    the visible image, s for the constant blend (1 − s)·IR + s·VIS; NaN where IR shows nothing brighter."""
    import torch
    import validate

    pairs = validate.validation_pairs(data_root, validate.split_settings("cpu"))["msrs"]
    for item in pairs:
        ir, vi = item["ir"][None], item["vi"][None]
        assert validate.target_gap(ir, ir, vi) == 0.0
        assert validate.target_gap((ir + 0.1).clamp(max=1.0), ir, vi) == 0.0
        for share in (0.25, 0.5, 1.0):
            blend = (1 - share) * ir + share * vi
            assert validate.target_gap(blend, ir, vi) == pytest.approx(share, abs=1e-4)
    flat = torch.full_like(ir, 0.4)
    assert validate.target_gap(vi, flat, vi) != validate.target_gap(vi, flat, vi)  # NaN: no warm target
    row = validate.score(lambda ir, vi: 0.5 * (ir + vi), pairs)
    assert row["target_gap"] == pytest.approx(0.5, abs=1e-3)
    assert validate.balanced({"msrs": row, "roadscene": row})["target_gap"] == pytest.approx(
        row["target_gap"]
    )


def test_fused_images_of_a_retrained_run_are_not_reused(tmp_path) -> None:
    """make reproduce fuses the test sets with --skip-existing; a run retrained under the same name must be
    fused again, while the same weights exported again (other metadata) keep their images."""
    import torch
    from safetensors.torch import save_file

    tensors = {"w": torch.arange(6, dtype=torch.float32).reshape(2, 3), "b": torch.ones(3)}
    first, again, retrained = (
        tmp_path / "a.safetensors",
        tmp_path / "b.safetensors",
        tmp_path / "c.safetensors",
    )
    save_file(tensors, str(first), metadata={"training": "round 1"})
    save_file(tensors, str(again), metadata={"training": "round 1, exported again", "x": "y"})
    save_file({**tensors, "w": tensors["w"] + 1e-6}, str(retrained))
    digest = results.weights_digest(first)
    assert first.read_bytes() != again.read_bytes() and results.weights_digest(again) == digest
    assert results.weights_digest(retrained) != digest

    target = tmp_path / "fused" / "ivif_stfuse_s0" / "tno"
    target.mkdir(parents=True)
    (target / "01.png").write_bytes(b"old")
    assert (
        results.clear_stale_fused(target, digest) and not target.exists()
    )  # no stamp: fused by unknown weights
    target.mkdir()
    (target / "01.png").write_bytes(b"new")
    results.stamp_fused(target, digest)
    assert not results.clear_stale_fused(target, results.weights_digest(again))
    assert (target / "01.png").read_bytes() == b"new"
    assert results.clear_stale_fused(target, results.weights_digest(retrained)) and not target.exists()
    assert not results.clear_stale_fused(target, digest)  # nothing there: nothing to clear


def test_gradient_norms_reports_where_each_term_pulls(tmp_path, data_root) -> None:
    """experiments/gradient_norms.py on real training crops: the teacher matches itself (every L_g is 0 with no
    gradient), a moved student gets L_g > 0, and the encoder-only L_g never reaches the CEM or the decoder."""
    import torch

    from stfuse.models import STFuseNet
    from stfuse.models.checkpoint import save_network

    torch.manual_seed(0)
    teacher = STFuseNet("compact", channels=8, heads=2)
    student = STFuseNet("compact", channels=8, heads=2)
    student.load_state_dict(teacher.state_dict())
    with torch.no_grad():
        for p in student.parameters():
            p.add_(0.05 * torch.randn_like(p))
    save_network(teacher, tmp_path / "teacher.safetensors")
    save_network(student, tmp_path / "student.safetensors")
    result = subprocess.run(
        [sys.executable, str(REPO / "experiments" / "gradient_norms.py"), "--data-root", str(data_root),
         "--teacher", str(tmp_path / "teacher.safetensors"), "--student", str(tmp_path / "student.safetensors"),
         "--crops", "2", "--crop-size", "32", "--terms", "relation_cem", "feature_in_encoder"],
        capture_output=True, text=True, timeout=300, cwd=REPO,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    rows = {
        (r["network"].rsplit("/", 1)[-1], r["term"]): r for r in map(json.loads, result.stdout.splitlines())
    }
    assert len(rows) == 6
    for term in ("relation_cem", "feature_in_encoder"):
        assert rows[("teacher", term)]["value"] == 0.0 and rows[("teacher", term)]["grad_encoder"] == 0.0
        assert rows[("student.safetensors", term)]["value"] > 0
        assert rows[("student.safetensors", term)]["grad_encoder"] > 0
    assert rows[("student.safetensors", "feature_in_encoder")]["grad_cem"] == 0.0
    assert rows[("student.safetensors", "feature_in_encoder")]["grad_decoder"] == 0.0
    assert rows[("student.safetensors", "fusion")]["grad_decoder"] > 0
    missing = subprocess.run(
        [sys.executable, str(REPO / "experiments" / "gradient_norms.py"), "--data-root", str(tmp_path)],
        capture_output=True, text=True, timeout=120, cwd=REPO,
    )  # fmt: skip
    assert missing.returncode == 2 and "no training pairs under" in missing.stderr


def test_validate_scores_a_run_with_its_base_rule_swapped_and_refuses_one_it_does_not_apply_to(
    data_root, tmp_path
) -> None:
    """``validate.py --base``: the same weights with another base rule, a row of its own; a paint-head run is
    refused before any pair is read, naming the file; ``--base-tau`` alone is a usage error."""
    import torch
    import validate

    from stfuse.models import STFuseNet
    from stfuse.models.checkpoint import save_network

    torch.manual_seed(0)
    net = STFuseNet("tiny").eval()
    swapped = validate.with_base(net, "max", 0.02)
    rebuilt = STFuseNet("tiny", base="max", base_tau=0.02).eval()
    rebuilt.load_state_dict(net.state_dict())
    ir, vi = torch.rand(1, 1, 40, 48), torch.rand(1, 1, 40, 48)
    with torch.no_grad():
        assert torch.equal(swapped(ir, vi), rebuilt(ir, vi))
        assert torch.equal(validate.with_base(net, "learned")(ir, vi), net(ir, vi))
        assert not torch.allclose(swapped(ir, vi), net(ir, vi))
    assert net.config["base"] == "learned"  # the run's own network is left as it was
    save_network(net, tmp_path / "select.safetensors")
    save_network(STFuseNet("tiny", head="paint"), tmp_path / "paint.safetensors")
    script = [sys.executable, str(REPO / "experiments" / "validate.py"), "--no-baselines"]
    result = subprocess.run(
        [*script, "--data-root", str(data_root), "--base", "max", "--base-tau", "0.02",
         "--json", str(tmp_path / "v.json"), "--grid", str(tmp_path / "grid.png"), "--grid-pairs", "1",
         str(tmp_path / "select.safetensors")],
        capture_output=True, text=True, timeout=600, cwd=REPO,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    scores = json.loads((tmp_path / "v.json").read_text())["domains"]["roadscene"]
    row = scores[f"{tmp_path / 'select.safetensors'}+base=max,tau=0.02"]
    # on the daytime RoadScene pairs the brighter source is mostly the visible image
    assert row["to_vi"] < row["to_ir"] and all(np.isfinite(row[m]) for m in validate.TABLE_METRICS)
    # the grid: a titled band, then one row per domain (one pair each) of IR | VIS | the swapped run
    grid = np.asarray(Image.open(tmp_path / "grid.png"))
    assert f"grid: {tmp_path / 'grid.png'}" in result.stdout
    # --no-baselines: no Laplacian row, so no count against it (not "0/8")
    (table_row,) = [line for line in result.stdout.splitlines() if line.startswith(f"| {tmp_path}")]
    assert table_row.endswith(" | – |")
    assert grid.ndim == 3 and 2 * 204 + 4 < grid.shape[0] < 3 * 204 and grid.shape[1] > 3 * 200
    paint = subprocess.run(
        [*script, "--data-root", str(tmp_path), "--base", "salient", str(tmp_path / "paint.safetensors")],
        capture_output=True, text=True, timeout=120, cwd=REPO,
    )  # fmt: skip
    assert paint.returncode == 1
    assert "paint.safetensors: --base salient: base 'salient' needs the select head" in paint.stderr
    alone = subprocess.run([*script, "--base-tau", "0.02", "x"], capture_output=True, text=True, cwd=REPO)
    assert alone.returncode == 2 and "--base-tau needs --base" in alone.stderr
    empty = subprocess.run([*script, "--grid-pairs", "0", "x"], capture_output=True, text=True, cwd=REPO)
    assert empty.returncode == 2 and "--grid-pairs must be ≥ 1, got 0" in empty.stderr


def test_a_finished_run_is_reused_only_while_its_recipe_and_source_are_unchanged(tmp_path, capsys) -> None:
    """reproduce.run skips a finished run with the same fingerprint (arguments, parsed --config contents, source
    checkpoint bytes) and treats one with another as stale: moved aside and retrained, reused with a warning,
    or a stop, as --stale says; records written before fingerprints compare the arguments."""
    out, marker = tmp_path / "out", tmp_path / "trained.txt"
    out.mkdir()
    config, source = tmp_path / "recipe.yaml", tmp_path / "source.ckpt"
    config.write_text("model:\n  lambda_g: 1.0\n")
    source.write_bytes(b"teacher weights")
    command = [sys.executable, "-c", f"open({str(marker)!r}, 'a').write('x')", "--config", str(config),
               "--trainer.default_root_dir", str(out / "run"), reproduce.SOURCE_FLAG, str(source)]  # fmt: skip

    def trained() -> int:
        return len(marker.read_text()) if marker.is_file() else 0

    reproduce.run("run", command, out, 1)
    record = json.loads((out / "run" / "done.json").read_text())
    assert trained() == 1 and record["fingerprint"] == reproduce.run_fingerprint(command, out)
    config.write_text("# the same recipe, written differently\nmodel: {lambda_g: 1.0}\n")
    assert reproduce.run("run", command, out, 1) == record["seconds"] and trained() == 1
    # the fingerprint does not see where the outputs live
    moved = [arg.replace(str(out), str(tmp_path / "elsewhere")) for arg in command]
    assert reproduce.run_fingerprint(moved, tmp_path / "elsewhere") == record["fingerprint"]

    config.write_text("model:\n  lambda_g: 0.5\n")  # the recipe changed
    with pytest.raises(SystemExit, match="run is stale: its recipe or source changed"):
        reproduce.run("run", command, out, 1, stale="fail")
    reproduce.run("run", command, out, 1, stale="keep")
    assert trained() == 1 and "warning: run is stale" in capsys.readouterr().out
    reproduce.run("run", command, out, 1)  # retrain: the old run is kept under stale/
    assert trained() == 2
    (aside,) = (out / "stale").iterdir()
    assert json.loads((aside / "done.json").read_text()) == record
    assert reproduce.run("run", command, out, 1) >= 0 and trained() == 2

    source.write_bytes(b"another teacher")  # the source stage was retrained
    reproduce.run("run", command, out, 1)
    assert trained() == 3 and len(list((out / "stale").iterdir())) == 2

    # a record from before fingerprints: the same arguments are reused, other arguments are stale
    legacy = {"command": shlex.join(command), "seconds": 7.0}
    (out / "run" / "done.json").write_text(json.dumps(legacy))
    assert reproduce.run("run", command, out, 1) == 7.0 and trained() == 3
    (out / "run" / "done.json").write_text(
        json.dumps({**legacy, "command": shlex.join([*command, "--seed", "1"])})
    )
    reproduce.run("run", command, out, 1)
    assert trained() == 4

    # an interrupted run of another recipe is not resumed either
    (out / "run" / "done.json").unlink()
    (out / "run" / "started.json").write_text(json.dumps({"fingerprint": "another recipe"}))
    (out / "run" / "checkpoints").mkdir()
    reproduce.run("run", command, out, 1)
    assert trained() == 5 and not (out / "run" / "checkpoints").exists()
    with pytest.raises(ValueError, match="unknown stale policy"):
        reproduce.run("run", command, out, 1, stale="ignore")


def test_a_resumed_run_records_the_wall_time_of_all_its_attempts(tmp_path) -> None:
    """An interrupted attempt counts from its start to its last checkpoint (what the resume keeps), so done.json
    and the weights record give the whole training time, not the last attempt's."""
    out = tmp_path / "out"
    run_dir = out / "run"
    checkpoint = run_dir / "checkpoints" / "last.ckpt"
    # the first attempt writes a checkpoint and is killed; the second resumes from it and finishes
    command = [sys.executable, "-c", f"import pathlib, sys; p = pathlib.Path({str(checkpoint)!r}); "
               "sys.exit(0) if p.is_file() else None; p.parent.mkdir(parents=True, exist_ok=True); "
               "p.write_bytes(b'ckpt'); sys.exit(137)"]  # fmt: skip
    with pytest.raises(SystemExit, match="run failed with exit code 137"):
        reproduce.run("run", command, out, 1)
    assert not (run_dir / "done.json").exists()
    # the attempt began 100 s ago and wrote its last checkpoint 40 s ago: 60 s of training kept
    now = time.time()
    account = json.loads((run_dir / reproduce.ATTEMPTS).read_text())
    (run_dir / reproduce.ATTEMPTS).write_text(json.dumps({**account, "started": now - 100}))
    os.utime(checkpoint, (now - 40, now - 40))
    reproduce.run("run", command, out, 1)
    record = json.loads((run_dir / "done.json").read_text())
    assert record["attempts"] == 2 and 0 <= record["last_attempt_seconds"] < 30
    assert record["seconds"] == pytest.approx(60 + record["last_attempt_seconds"], abs=1)
    # a first attempt that finishes has no attempt fields and its own time
    reproduce.run("fresh", [sys.executable, "-c", "pass"], out, 1)
    fresh = json.loads((out / "fresh" / "done.json").read_text())
    assert "attempts" not in fresh and 0 <= fresh["seconds"] < 30


_HOLD_LOCK = """
import fcntl, json, sys, time
handle = open(sys.argv[1], "a+")
fcntl.flock(handle, fcntl.LOCK_EX)
handle.write(json.dumps({"pid": 4242, "host": "node7", "since": "2026-12-07 10:00:00"}))
handle.flush()
print("locked", flush=True)
time.sleep(120)
"""


@pytest.mark.skipif(reproduce.fcntl is None, reason="no advisory file locks on this platform (Windows)")
def test_a_run_that_another_process_is_training_is_left_alone(tmp_path) -> None:
    """A second reproduce.py must not move aside, resume or train a run that a first one is training: run()
    stops naming the holder, the dry run says so, and the lock goes with its holder however it exits."""
    out, marker = tmp_path / "out", tmp_path / "trained.txt"
    out.mkdir()
    command = [sys.executable, "-c", f"open({str(marker)!r}, 'a').write('x')"]
    (out / "run").mkdir()  # half-trained by the other process, with a recipe this command does not ask for
    (out / "run" / "started.json").write_text(json.dumps({"fingerprint": "the other process's recipe"}))
    lock = reproduce._lock_path(out, "run")
    lock.parent.mkdir(parents=True)
    holder = subprocess.Popen(
        [sys.executable, "-c", _HOLD_LOCK, str(lock)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
        expected = "another process (pid 4242 on node7, since 2026-12-07 10:00:00"
        for policy in reproduce.STALE_POLICIES:
            with pytest.raises(SystemExit, match=rf"run is being trained by {re.escape(expected)}; lock "):
                reproduce.run("run", command, out, 1, stale=policy)
        assert not marker.exists() and not (out / "stale").exists()  # neither trained nor moved aside
        assert json.loads((out / "run" / "started.json").read_text()) == {
            "fingerprint": "the other process's recipe"
        }
        # a finished run that starts from the locked one: its source is changing under it
        target = [sys.executable, "-c", "pass", reproduce.SOURCE_FLAG, str(out / "run" / "last.ckpt")]
        reproduce.run("target", target, out, 1)
        assert reproduce.plan([[("target", target)]], out) == [("target", "finished: reused")]
        states = reproduce.plan([[("run", command)], [("target", target)]], out)
        assert states[0] == ("run", f"being trained by {expected}): left alone; a run stops here")
        assert states[1] == ("target", "stale (its source stage trains first): moved to stale/ and retrained")
        assert reproduce.trained_elsewhere(out, "other") is None  # other runs are free
    finally:
        holder.kill()  # killed, not finished: the system drops its lock
        holder.wait()
    assert reproduce.trained_elsewhere(out, "run") is None
    reproduce.run("run", command, out, 1)  # now the stale run is moved aside and trained
    assert marker.read_text() == "x" and len(list((out / "stale").iterdir())) == 1
    assert reproduce.plan([[("run", command)]], out) == [("run", "finished: reused")]
    failing = [sys.executable, "-c", "raise SystemExit(3)"]
    with pytest.raises(SystemExit, match="failed with exit code 3"):
        reproduce.run("broken", failing, out, 1)
    assert reproduce.trained_elsewhere(out, "broken") is None  # a failed run releases its lock too
    held = json.loads(reproduce._lock_path(out, "run").read_text())
    assert held["pid"] == os.getpid() and "host" in held and "since" in held  # the last holder's note

    # through the script, as a user starting a second `make reproduce` runs it: exit 1, the run named, nothing written
    _fake_data(tmp_path / "data")
    lock = reproduce._lock_path(tmp_path / "o", "mfif")
    lock.parent.mkdir(parents=True)
    holder = subprocess.Popen(
        [sys.executable, "-c", _HOLD_LOCK, str(lock)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
        script = [sys.executable, str(REPO / "experiments" / "reproduce.py"), "--budget", "smoke", "--data-root",
                  str(tmp_path / "data"), "--out", str(tmp_path / "o"), "--only", "main", "--no-results"]  # fmt: skip
        dry = subprocess.run([*script, "--dry-run"], capture_output=True, text=True, timeout=120, cwd=REPO)
        assert dry.returncode == 0, dry.stderr
        assert "mfif" in dry.stdout and "being trained by another process (pid 4242 on node7" in dry.stdout
        result = subprocess.run(script, capture_output=True, text=True, timeout=120, cwd=REPO)
        assert result.returncode == 1
        assert "mfif is being trained by another process (pid 4242 on node7" in result.stderr
        assert not (tmp_path / "o" / "mfif").exists()
    finally:
        holder.kill()
        holder.wait()


def test_dry_run_says_what_each_run_would_do_and_trains_nothing(tmp_path) -> None:
    """``plan`` (``reproduce.py --dry-run``): new runs train, finished ones are reused, a changed recipe makes a
    run stale, and a target run whose source stage retrains is stale too; through the script, nothing is
    written."""
    out = tmp_path / "out"
    out.mkdir()
    config = tmp_path / "source.yaml"
    config.write_text("trainer: {max_steps: 3}\n")
    source_cmd = [sys.executable, "-c", "import sys; from pathlib import Path; p = Path(sys.argv[-1]); "
                  "p.parent.mkdir(parents=True, exist_ok=True); p.write_bytes(b'weights')",
                  "--config", str(config), str(out / "src" / "checkpoints" / "last.ckpt")]  # fmt: skip
    target_cmd = [
        sys.executable,
        "-c",
        "pass",
        reproduce.SOURCE_FLAG,
        str(out / "src" / "checkpoints" / "last.ckpt"),
    ]
    jobs = [[("src", source_cmd)], [("tgt", target_cmd)]]
    assert reproduce.plan(jobs, out) == [("src", "new: trains"), ("tgt", "new: trains")]
    for name, command in (*jobs[0], *jobs[1]):
        reproduce.run(name, command, out, 1)
    assert reproduce.plan(jobs, out) == [("src", "finished: reused"), ("tgt", "finished: reused")]
    config.write_text("trainer: {max_steps: 4}\n")
    assert reproduce.plan(jobs, out) == [
        ("src", "stale (its recipe or source changed (done.json)): moved to stale/ and retrained"),
        ("tgt", "stale (its source stage trains first): moved to stale/ and retrained"),
    ]
    assert reproduce.plan(jobs, out, stale="keep") == [
        ("src", "stale (its recipe or source changed (done.json)): reused (--stale keep)"),
        ("tgt", "finished: reused"),
    ]
    (out / "tgt" / "done.json").unlink()
    (out / "tgt" / "checkpoints").mkdir()
    (out / "tgt" / "checkpoints" / "last.ckpt").write_bytes(b"half")
    assert reproduce.plan(jobs, out, stale="keep")[1] == ("tgt", "interrupted: resumes from last.ckpt")

    _fake_data(tmp_path / "data")
    result = subprocess.run(
        [sys.executable, str(REPO / "experiments" / "reproduce.py"), "--budget", "smoke", "--data-root",
         str(tmp_path / "data"), "--out", str(tmp_path / "o"), "--only", "main", "--no-results", "--dry-run"],
        capture_output=True, text=True, timeout=120, cwd=REPO,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert [line.split()[0] for line in result.stdout.splitlines()] == ["mfif", reproduce.MAIN_RUN]
    assert all(line.endswith("new: trains") for line in result.stdout.splitlines())
    assert not (tmp_path / "o" / "mfif").exists()  # nothing trained, nothing written
