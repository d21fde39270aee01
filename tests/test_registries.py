"""Each rule lives in one place: the lists and lookups that other modules derive from it."""

from __future__ import annotations

import typing
from pathlib import Path

import numpy as np
import pytest

from data_modules.io import LUMA_WEIGHTS, luma_array, write_image
from data_modules.layouts import LAYOUT_NAMES
from data_modules.stems import index_by_stem, pair_by_stem
from stfuse import runtime
from stfuse.evaluation.sources import DATASETS
from stfuse.losses import GUIDANCE_MODES, GuidanceLoss
from stfuse.metrics import classes
from stfuse.metrics.registry import LOWER_IS_BETTER, METRIC_NAMES, METRICS, NO_REFERENCE
from stfuse.metrics.suite import DEFINITIONS
from stfuse.models import DEFAULT_PRESET, PRESETS, build_network
from stfuse.stages.ivif import IVIFTransferStage


def test_evaluate_dataset_names_are_the_named_layouts() -> None:
    assert DATASETS == tuple(name for name in LAYOUT_NAMES if name != "generic")
    assert "llvip" in DATASETS


def test_lower_is_better_and_no_reference_follow_each_metric() -> None:
    assert METRIC_NAMES == tuple(METRICS)
    assert (
        {name for name in METRIC_NAMES if not DEFINITIONS[name].higher_is_better}
        == LOWER_IS_BETTER
        == {"MSE", "Nabf"}
    )
    assert {name for name in METRIC_NAMES if not DEFINITIONS[name].needs_sources} == NO_REFERENCE
    for cls in classes.METRIC_CLASSES.values():
        assert cls.higher_is_better == cls.definition.higher_is_better, cls.__name__
        assert cls.needs_sources == cls.definition.needs_sources, cls.__name__


def test_guidance_argument_is_typed_from_the_loss_registry() -> None:
    hints = typing.get_type_hints(IVIFTransferStage.__init__)
    assert typing.get_args(hints["guidance"]) == GUIDANCE_MODES
    assert typing.get_args(typing.get_type_hints(GuidanceLoss.__init__)["mode"]) == GUIDANCE_MODES


def test_guidance_choices_appear_in_the_cli_help() -> None:
    from jsonargparse import ArgumentParser

    parser = ArgumentParser(exit_on_error=False)
    parser.add_class_arguments(IVIFTransferStage, "model")
    help_text = parser.format_help()
    for mode in GUIDANCE_MODES:
        assert mode in help_text
    with pytest.raises(Exception):  # noqa: B017 - jsonargparse's own error type varies by version
        parser.parse_args(["--model.guidance", "no_such_mode"])


def test_tiny_preset_is_the_former_test_network() -> None:
    former = build_network({"preset": "small", "channels": 8, "num_blocks": 1, "heads": 2}).config
    tiny = build_network({"preset": "tiny"}).config
    assert {**former, "preset": "tiny"} == tiny
    assert DEFAULT_PRESET in PRESETS


def test_find_data_root_prefers_explicit_then_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(runtime.DATA_ENV, str(tmp_path))
    assert runtime.find_data_root() == tmp_path
    assert runtime.find_data_root(tmp_path / "other") == tmp_path / "other"
    monkeypatch.setenv(runtime.DATA_ENV, str(tmp_path / "missing"))
    candidates = runtime.data_root_candidates()
    assert candidates[0] == tmp_path / "missing"
    existing = [candidate for candidate in candidates if candidate.is_dir()]
    assert runtime.find_data_root() == (existing[0] if existing else tmp_path / "missing")


def test_stem_index_and_pairing(tmp_path: Path) -> None:
    grey = np.zeros((4, 4), np.float32)
    for folder, names in {
        "ir": ["01.png", "02.png", "03.png", "03.jpg"],
        "vi": ["01.png", "02.bmp", "04.png"],
    }.items():
        (tmp_path / folder).mkdir()
        for name in names:
            write_image(tmp_path / folder / name, grey)
        (tmp_path / folder / "notes.txt").write_text("not an image")
    ir, vi = index_by_stem(tmp_path / "ir"), index_by_stem(tmp_path / "vi")
    assert sorted(ir.files) == ["01", "02"] and list(ir.duplicates) == ["03"]
    assert ir.first()["03"].name == "03.jpg"
    pairing = pair_by_stem(ir.first(), vi.files)
    assert (pairing.common, pairing.only_first, pairing.only_second) == (["01", "02"], ["03"], ["04"])
    assert not pairing.complete


def test_luma_weights_are_bt601() -> None:
    rgb = np.array([[[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]]], np.float32)
    assert np.allclose(luma_array(rgb)[0], LUMA_WEIGHTS)


def test_a_metric_without_its_own_class_gets_one_from_its_definition() -> None:
    import torch

    torch.manual_seed(0)
    fused, ir, vi = (torch.rand(2, 1, 32, 32) for _ in range(3))
    built, named = classes.defined_metric_class("CC")(), classes.CCMetric()
    built.update(fused, ir, vi)
    named.update(fused, ir, vi)
    assert torch.equal(built.compute(), named.compute())
    assert classes.defined_metric_class("MSE").higher_is_better is False
