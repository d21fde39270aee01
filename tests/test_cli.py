"""Every experiment YAML runs through the LightningCLI on tiny data, so no config rots.

Mirrors torchgeo's CLI tests: ``main(["fit", "--config", ...])``, then ``test``/``validate``/``predict``
on the produced checkpoint.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from stfuse.cli import main
from stfuse.losses import GUIDANCE_MODES

REPO = Path(__file__).resolve().parents[1]
EXPERIMENTS = REPO / "experiments"
TINY_NET = json.dumps({"preset": "tiny"})


def _base_of(overlay: Path) -> Path:
    for line in overlay.read_text().splitlines():
        if line.startswith("# base:"):
            return REPO / line.split(":", 1)[1].strip()
    raise AssertionError(f"{overlay} does not name its base config in a '# base:' comment")


def _mfif_tiny(root: Path) -> list[str]:
    return [
        "--trainer.default_root_dir", str(root),
        "--trainer.enable_progress_bar", "false",
        "--model.init_args.net", TINY_NET,
        "--data.init_args.crop_size", "32",
        "--data.init_args.batch_size", "2",
        "--data.init_args.num_workers", "0",
        "--data.init_args.samples_per_epoch", "4",
        "--data.init_args.val_samples", "2",
        "--data.init_args.val_crop_size", "32",
    ]  # fmt: skip


def _ivif_tiny(
    root: Path, source_ckpt: Path | None, replay: bool = True, net: str | None = None
) -> list[str]:
    args = [
        "--trainer.default_root_dir", str(root),
        "--trainer.enable_progress_bar", "false",
        "--model.init_args.val_metrics", '["EN", "SF", "Qabf"]',
        "--data.init_args.ivif.init_args.crop_size", "32",
        "--data.init_args.ivif.init_args.batch_size", "2",
        "--data.init_args.ivif.init_args.num_workers", "0",
        "--data.init_args.ivif.init_args.val_size", "2",
        "--data.init_args.ivif.init_args.default_train_size", "4",
        "--data.init_args.ivif.init_args.default_image_size", "40",
    ]  # fmt: skip
    if source_ckpt is not None:
        args += ["--model.init_args.source_ckpt", str(source_ckpt)]
    if net is not None:
        args += ["--model.init_args.net", net]
    if replay:
        args += [
            "--data.init_args.replay.init_args.crop_size", "32",
            "--data.init_args.replay.init_args.batch_size", "2",
            "--data.init_args.replay.init_args.num_workers", "0",
            "--data.init_args.replay.init_args.samples_per_epoch", "4",
        ]  # fmt: skip
    return args


@pytest.fixture(scope="module")
def source_ckpt(tmp_path_factory) -> Path:
    """A real source-stage run through the CLI: fit, then validate/test/predict on its checkpoint."""
    root = tmp_path_factory.mktemp("mfif_cli")
    main(["fit", "--config", str(EXPERIMENTS / "mfif.yaml"), *_mfif_tiny(root),
          "--trainer.max_steps", "2", "--trainer.limit_val_batches", "1"])  # fmt: skip
    ckpt = root / "checkpoints" / "last.ckpt"
    assert ckpt.is_file(), f"fit did not write {ckpt}"
    for sub in ("validate", "test"):
        main([sub, "--config", str(EXPERIMENTS / "mfif.yaml"), *_mfif_tiny(root), "--ckpt_path", str(ckpt),
              "--trainer.limit_test_batches", "1", "--trainer.limit_val_batches", "1"])  # fmt: skip
    return ckpt


def test_fit_resumes_from_last_ckpt_automatically(source_ckpt):
    root = source_ckpt.parent.parent
    cli = main(["fit", "--config", str(EXPERIMENTS / "mfif.yaml"), *_mfif_tiny(root),
                "--trainer.max_steps", "3", "--trainer.limit_val_batches", "1"])  # fmt: skip
    assert cli.trainer.global_step == 3, "the rerun should continue from step 2, not start afresh"


def test_ivif_config_fit_test_predict(source_ckpt, tmp_path):
    config = str(EXPERIMENTS / "ivif.yaml")
    tiny = _ivif_tiny(tmp_path, source_ckpt)
    main(["fit", "--config", config, *tiny, "--trainer.max_steps", "2", "--trainer.limit_val_batches", "1"])
    ckpt = tmp_path / "checkpoints" / "last.ckpt"
    assert ckpt.is_file()
    main(["test", "--config", config, *tiny, "--ckpt_path", str(ckpt), "--trainer.limit_test_batches", "2"])
    out = tmp_path / "pred"
    main(["predict", "--config", config, *tiny, "--ckpt_path", str(ckpt), "--trainer.limit_predict_batches", "2",
          "--trainer.callbacks+=stfuse.stages.FusedImageWriter", f"--trainer.callbacks.output_dir={out}"])  # fmt: skip
    written = sorted(out.glob("*.png"))
    assert len(written) == 2, f"expected 2 fused images, got {written}"


OVERLAYS = sorted((EXPERIMENTS / "ablations").glob("*.yaml"))
TRAINER_PRESETS = sorted((EXPERIMENTS / "trainer").glob("*.yaml"))


def test_every_ablation_of_method_md_has_an_overlay():
    names = {p.stem for p in OVERLAYS}
    expected = {"no_transfer", "no_guidance", "cem_off", "self_only", "mutual_only", "no_replay", "separate_encoders",
                *(f"guidance_{mode}" for mode in GUIDANCE_MODES)}  # fmt: skip
    assert expected <= names, f"missing ablation configs: {sorted(expected - names)}"


@pytest.mark.parametrize("overlay", OVERLAYS, ids=[p.stem for p in OVERLAYS])
def test_ablation_overlay_runs_fast_dev_run(overlay, source_ckpt, tmp_path):
    base = _base_of(overlay)
    spec = yaml.safe_load(overlay.read_text()) or {}
    if base.name == "mfif.yaml":
        net = spec["model"]["init_args"]["net"]
        tiny = _mfif_tiny(tmp_path)
        tiny[tiny.index("--model.init_args.net") + 1] = json.dumps({**net, **json.loads(TINY_NET)})
    else:
        replay = spec.get("data", {}).get("init_args", {}).get("replay", "keep") is not None
        net = spec.get("model", {}).get("init_args", {}).get("net")
        if net is not None and spec["model"]["init_args"].get("transfer", True) is False:
            net = TINY_NET
        elif net is not None:
            net = json.dumps(net)
        model_args = spec.get("model", {}).get("init_args", {})
        ckpt = None if "source_ckpt" in model_args and model_args["source_ckpt"] is None else source_ckpt
        tiny = _ivif_tiny(tmp_path, ckpt, replay=replay, net=net)
    cli = main(["fit", "--config", str(base), "--config", str(overlay), *tiny, "--trainer.fast_dev_run", "1"])
    assert cli.trainer.state.finished
    for key, value in (spec.get("model", {}).get("init_args") or {}).items():
        if key != "net":
            assert cli.model.hparams[key] == value, f"{overlay.name}: {key} did not reach the stage"


@pytest.mark.parametrize("preset", TRAINER_PRESETS, ids=[p.stem for p in TRAINER_PRESETS])
def test_trainer_preset_parses_and_runs_on_cpu(preset, tmp_path):
    """GPU/DDP presets cannot run here; they are parsed as written, then run with CPU overrides."""
    spec = yaml.safe_load(preset.read_text())
    assert set(spec) == {"trainer"}
    cpu_overrides = []
    if spec["trainer"].get("accelerator") == "gpu" or spec["trainer"].get("devices", 1) != 1:
        cpu_overrides = ["--trainer.accelerator", "cpu", "--trainer.devices", "1", "--trainer.num_nodes", "1",
                         "--trainer.strategy", "auto", "--trainer.precision", "32-true",
                         "--trainer.sync_batchnorm", "false"]  # fmt: skip
    cli = main(["fit", "--config", str(EXPERIMENTS / "mfif.yaml"), "--config", str(preset), *_mfif_tiny(tmp_path),
                *cpu_overrides, "--trainer.fast_dev_run", "1"])  # fmt: skip
    assert cli.trainer.state.finished


def test_epoch_display_counts_from_one_and_never_shows_a_negative_total():
    from types import SimpleNamespace

    from stfuse.callbacks import EpochProgressBar, epoch_text

    assert epoch_text(SimpleNamespace(current_epoch=0, max_epochs=-1)) == "epoch 1"  # a step-bounded run
    assert epoch_text(SimpleNamespace(current_epoch=2, max_epochs=40)) == "epoch 3/40"
    bar = EpochProgressBar()
    bar._trainer = SimpleNamespace(current_epoch=0, max_epochs=-1)
    assert bar._get_train_description(0).strip() == "Epoch 1"


def test_progress_is_a_bar_on_a_terminal_and_plain_lines_in_a_log(monkeypatch):
    import io

    from stfuse.callbacks import EpochProgressBar, PlainProgress, progress_callback

    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    monkeypatch.setenv("TERM", "xterm")
    assert isinstance(progress_callback(stream=Terminal()), EpochProgressBar)
    assert isinstance(progress_callback(stream=io.StringIO()), PlainProgress)


def test_interval_checkpoint_refuses_a_non_positive_interval():
    from stfuse.callbacks import IntervalCheckpoint

    with pytest.raises(ValueError, match="every_n_train_steps must be ≥ 1"):
        IntervalCheckpoint(every_n_train_steps=0)
    with pytest.raises(ValueError, match="every_minutes must be > 0"):
        IntervalCheckpoint(every_minutes=0)


def test_root_is_the_data_root_in_dock_too(tmp_path):
    from stfuse.docking.cli import _docking_folder, build_parser

    (tmp_path / "docking" / "msrs_det").mkdir(parents=True)
    assert _docking_folder(build_parser().parse_args(["--root", str(tmp_path)])) == str(
        tmp_path / "docking" / "msrs_det"
    )
    own = tmp_path / "docking" / "msrs_det"
    assert _docking_folder(build_parser().parse_args(["--root", str(own)])) == str(
        own
    )  # the folder itself works too


def _target_probes() -> list[tuple[str, list[Path]]]:
    """The probes of experiments/probes/probes.yaml that change only the target stage of full STFuse."""
    spec = yaml.safe_load((EXPERIMENTS / "probes" / "probes.yaml").read_text())
    return [
        (name, [EXPERIMENTS / "probes" / config for config in probe["configs"]])
        for name, probe in spec.items()
        if probe["variant"] == "stfuse" and not probe.get("source_configs") and probe["configs"]
    ]


@pytest.mark.parametrize(("name", "overlays"), _target_probes(), ids=[name for name, _ in _target_probes()])
def test_probe_overlays_run_fast_dev_run(name, overlays, source_ckpt, tmp_path):
    """Each probe's overlays on experiments/ivif.yaml, as `make reproduce` stacks them, reach the stage."""
    model_args: dict = {}
    replay = True
    for overlay in overlays:
        spec = yaml.safe_load(overlay.read_text()) or {}
        model_args.update(spec.get("model", {}).get("init_args") or {})
        replay = replay and spec.get("data", {}).get("init_args", {}).get("replay", "keep") is not None
    net = json.dumps(model_args["net"]) if "net" in model_args else None
    configs = [arg for overlay in overlays for arg in ("--config", str(overlay))]
    tiny = _ivif_tiny(tmp_path, source_ckpt, replay=replay, net=net)
    cli = main(
        ["fit", "--config", str(EXPERIMENTS / "ivif.yaml"), *configs, *tiny, "--trainer.fast_dev_run", "1"]
    )
    assert cli.trainer.state.finished, name
    for key, value in model_args.items():
        if key != "net":
            assert cli.model.hparams[key] == value, f"probe {name}: {key} did not reach the stage"
        else:
            assert all(cli.model.net.config[k] == v for k, v in value.items()), f"probe {name}: net {value}"
