"""Embedded default data: synthetic IR/VIS scenes, textures and the exported default pairs."""

from __future__ import annotations

import time
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from data_modules.io import read_image
from data_modules.layouts import detect_layout, open_dataset
from data_modules.synthetic import derive_seed
from data_modules.synthetic_scenes import (
    SyntheticIVIFDataset,
    make_ivif_pair,
    make_ivif_scene,
    write_embedded_default,
)
from data_modules.synthetic_textures import TextureDataset, make_texture_image


def test_ivif_pair_shapes_ranges_and_determinism() -> None:
    ir, vi = make_ivif_pair(11, 96, 128)
    assert ir.shape == (1, 96, 128) and vi.shape == (3, 96, 128)
    assert ir.dtype == vi.dtype == torch.float32
    assert (
        0.0 <= float(ir.min())
        and float(ir.max()) <= 1.0
        and 0.0 <= float(vi.min())
        and float(vi.max()) <= 1.0
    )
    again_ir, again_vi = make_ivif_pair(11, 96, 128)
    assert torch.equal(ir, again_ir) and torch.equal(vi, again_vi)
    other_ir, _ = make_ivif_pair(12, 96, 128)
    assert not torch.equal(ir, other_ir)
    assert float(vi[0].sub(vi[2]).abs().mean()) > 0.01  # real colour, not grey


def test_targets_are_salient_in_infrared_and_camouflaged_in_visible() -> None:
    ir_contrast, vi_contrast, illuminations = [], [], set()
    for seed in range(16):
        scene = make_ivif_scene(seed, 128, 128)
        illuminations.add(scene.illumination)
        targets = scene.targets
        assert targets.any()
        ring = cv2.dilate(targets.astype(np.uint8), np.ones((7, 7), np.uint8)).astype(bool) & ~targets
        luma = scene.vi @ np.array([0.299, 0.587, 0.114], dtype=np.float32)
        ir_contrast.append(scene.ir[targets].mean() - scene.ir[ring].mean())
        vi_contrast.append(abs(luma[targets].mean() - luma[ring].mean()))
    assert min(ir_contrast) > 0.2  # warm targets stand out in every IR image
    assert np.mean(vi_contrast) < 0.25 * np.mean(ir_contrast)
    assert illuminations == {"day", "dusk", "night"}


def test_night_scenes_are_darker_than_day_scenes() -> None:
    brightness = {"day": [], "night": []}
    for seed in range(30):
        scene = make_ivif_scene(seed, 64, 64)
        if scene.illumination in brightness:
            brightness[scene.illumination].append(float(scene.vi.mean()))
    assert brightness["day"] and brightness["night"]
    assert max(brightness["night"]) < min(brightness["day"])


def test_generation_is_fast() -> None:
    make_ivif_pair(0, 256, 256)
    durations = []
    for seed in range(7):
        start = time.perf_counter()
        make_ivif_pair(seed, 256, 256)
        durations.append(time.perf_counter() - start)
    assert float(np.median(durations)) < 0.05  # a few ms on an idle core; generous for shared CI machines


def test_textures_are_rich_in_high_frequencies() -> None:
    for seed in range(4):
        image = make_texture_image(seed, 128, 128, channels=1)[0].numpy()
        assert image.std() > 0.1
        blurred = cv2.GaussianBlur(image, (0, 0), 2.0)

        def energy(x):
            return float((cv2.Sobel(x, cv2.CV_32F, 1, 0) ** 2 + cv2.Sobel(x, cv2.CV_32F, 0, 1) ** 2).mean())

        assert energy(blurred) < 0.5 * energy(image)  # blur removes much of the detail, so defocus is visible
    colour = make_texture_image(1, 64, 80)
    assert colour.shape == (3, 64, 80) and torch.equal(colour, make_texture_image(1, 64, 80))
    with pytest.raises(ValueError, match="channels"):
        make_texture_image(1, 8, 8, channels=2)


def test_datasets_index_by_seed_stream_and_index() -> None:
    train = SyntheticIVIFDataset(3, 32, 40, seed=4)
    item = train[1]
    assert (
        item["ir"].shape == (1, 32, 40)
        and item["vi_cbcr"].shape == (2, 32, 40)
        and item["name"] == "synthetic_train_00001"
    )
    assert torch.equal(item["ir"], SyntheticIVIFDataset(3, 32, 40, seed=4)[1]["ir"])
    assert not torch.equal(item["ir"], SyntheticIVIFDataset(3, 32, 40, seed=4, stream="val")[1]["ir"])
    with pytest.raises(IndexError):
        train[3]
    with pytest.raises(ValueError, match="unknown seed stream"):
        SyntheticIVIFDataset(3, stream="holdout")
    textures = TextureDataset(2, 24, 24, seed=0)
    assert textures[0]["image"].shape == (3, 24, 24) and textures[1]["name"] == "texture_train_00001"
    assert derive_seed(0, "train", 0) != derive_seed(0, "export", 0)


def test_embedded_default_is_written_in_the_generic_layout(tmp_path: Path) -> None:
    root = write_embedded_default(tmp_path / "demo", n_pairs=3, size=(40, 56), seed=2)
    assert detect_layout(root).name == "generic"
    dataset = open_dataset(root)
    assert dataset.names == ["synthetic_0000", "synthetic_0001", "synthetic_0002"]
    ir = read_image(root / "ir" / "synthetic_0001.png")
    vi = read_image(root / "vi" / "synthetic_0001.png")
    assert ir.shape == (1, 40, 56) and vi.shape == (3, 40, 56)
    expected_ir, _ = make_ivif_pair(derive_seed(2, "export", 1), 40, 56)
    assert (ir - expected_ir).abs().max() <= 0.5 / 255 + 1e-6  # the same scene, quantised to 8 bits
    training = [SyntheticIVIFDataset(3, 40, 56, seed=2)[i]["ir"] for i in range(3)]
    assert all((ir - t).abs().max() > 0.1 for t in training)  # held out from the training stream
