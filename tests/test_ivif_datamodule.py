"""IVIFDataModule and PairedAugmentation: alignment, padding, worker seeding, evaluation batches, config."""

from __future__ import annotations

import gc
from pathlib import Path

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from data_modules.errors import SplitError
from data_modules.fake_data import write_fake_layout, write_fake_pairs
from data_modules.io import write_image
from data_modules.ivif import IVIFDataModule
from data_modules.paired import collate_pairs
from data_modules.transforms import PairedAugmentation


def _coordinate_pair(height: int = 90, width: int = 110) -> dict[str, np.ndarray]:
    """IR holds the row, the visible image (row, column, constant), the mask the flat index."""
    yy, xx = np.mgrid[0:height, 0:width]
    ir = (yy / 1000.0).astype(np.float32)[:, :, None]
    vi = np.stack([xx / 1000.0, yy / 1000.0, np.full_like(xx, 0.5, dtype=float)], axis=2).astype(np.float32)
    return {"ir": ir, "vi": vi, "mask": (yy * width + xx).astype(np.uint16)}


def test_geometric_pipeline_moves_every_member_identically() -> None:
    augmentation = PairedAugmentation(crop_size=48, photometric=False, seed=3)
    width = 110
    seen_layouts = set()
    for _ in range(12):
        out = augmentation(_coordinate_pair(width=width))
        rows = np.rint(out["ir"][:, :, 0] * 1000).astype(int)
        cols = np.rint(out["vi"][:, :, 0] * 1000).astype(int)
        assert (
            out["ir"].shape == (48, 48, 1)
            and out["vi"].shape == (48, 48, 3)
            and out["mask"].shape == (48, 48)
        )
        assert np.array_equal(rows, np.rint(out["vi"][:, :, 1] * 1000).astype(int))  # IR and VIS agree
        assert np.array_equal(out["mask"].astype(int), rows * width + cols)  # so does the extra map
        # a rigid crop/flip/rot90: neighbouring output pixels are neighbouring source pixels
        assert np.all(np.abs(np.diff(rows, axis=1)) + np.abs(np.diff(cols, axis=1)) == 1)
        assert np.all(np.abs(np.diff(rows, axis=0)) + np.abs(np.diff(cols, axis=0)) == 1)
        seen_layouts.add((int(np.sign(rows[0, 1] - rows[0, 0])), int(np.sign(cols[0, 1] - cols[0, 0]))))
    assert len(seen_layouts) > 1  # flips/rotations actually happen


def test_photometric_changes_are_independent_per_modality_and_keep_alignment() -> None:
    augmentation = PairedAugmentation(crop_size=32, noise_std=0.0, photometric_p=1.0, seed=5)
    height, width = 40, 40
    ramp = (0.25 + 0.5 * np.arange(height * width, dtype=np.float32) / (height * width)).reshape(
        height, width
    )
    for _ in range(5):
        out = augmentation({"ir": ramp[:, :, None].copy(), "vi": np.repeat(ramp[:, :, None], 3, axis=2)})
        ir, vi = out["ir"][:, :, 0].ravel(), out["vi"][:, :, 0].ravel()
        assert not np.allclose(ir, vi, atol=1e-3)  # different brightness/contrast/gamma per modality
        vi_in_ir_order = vi[np.argsort(ir, kind="stable")]
        assert np.all(np.diff(vi_in_ir_order) >= -1e-5)  # monotone changes of the same pixels: still aligned


def test_small_images_are_reflect_padded_to_the_crop() -> None:
    augmentation = PairedAugmentation(crop_size=64, photometric=False, seed=0)
    image = np.random.default_rng(0).uniform(0.2, 0.8, (20, 30, 1)).astype(np.float32)
    out = augmentation({"ir": image, "vi": image.repeat(3, axis=2)})
    assert out["ir"].shape == (64, 64, 1)
    assert out["ir"].min() >= 0.2  # no constant (zero) border
    assert set(np.unique(out["ir"])) <= set(np.unique(image))


def _identical_pairs_root(root: Path, n_pairs: int, size: tuple[int, int] = (40, 48)) -> Path:
    """A generic layout whose pairs all have the same content, and IR equal to the (grey) visible image."""
    image = np.random.default_rng(1).uniform(0.1, 0.9, size).astype(np.float32)
    for folder in ("ir", "vi"):
        (root / folder).mkdir(parents=True, exist_ok=True)
        for index in range(n_pairs):
            write_image(root / folder / f"{index:02d}.png", image)
    return root


def test_batches_from_the_data_module_stay_pixel_aligned(tmp_path: Path) -> None:
    root = _identical_pairs_root(tmp_path / "same", 6)
    dm = IVIFDataModule(
        train_roots=[str(root)], crop_size=32, batch_size=3, num_workers=0, val_size=2, photometric=False
    )
    dm.setup("fit")
    batch = next(iter(dm.train_dataloader()))
    assert batch["ir"].shape == (3, 1, 32, 32) and batch["vi_cbcr"].shape == (3, 2, 32, 32)
    assert torch.equal(batch["ir"], batch["vi"])
    assert batch["vi_is_color"].tolist() == [False] * 3 and len(batch["name"]) == 3


def _epoch_crops(loader: DataLoader) -> list[torch.Tensor]:
    """The IR crop of every batch of one epoch; the loader's workers are shut down before returning."""
    crops = [batch["ir"][0] for batch in loader]
    del loader
    gc.collect()  # persistent workers otherwise linger until a later collection, slowing the next fork
    return crops


def test_workers_draw_different_augmentations_reproducibly(tmp_path: Path) -> None:
    root = _identical_pairs_root(tmp_path / "same", 4, size=(64, 64))

    def loader(seed: int, seeded_workers: bool = True) -> DataLoader:
        dm = IVIFDataModule(
            train_roots=[str(root)],
            val_roots=[str(root)],
            crop_size=24,
            batch_size=1,
            num_workers=2,
            seed=seed,
        )
        dm.setup("fit")
        train = dm.train_dataloader()
        if not seeded_workers:  # the same loader without the worker seeding, as a control
            train = DataLoader(dm.train_dataset, batch_size=1, num_workers=2, collate_fn=collate_pairs)
        return train

    first = _epoch_crops(loader(seed=7))
    # batches 0 and 1 come from workers 0 and 1; with the same content they differ only by augmentation
    assert not torch.equal(first[0], first[1])
    assert len({tuple(c.flatten().tolist()) for c in first}) == 4
    again = _epoch_crops(loader(seed=7))
    assert all(torch.equal(a, b) for a, b in zip(first, again))
    other_seed = _epoch_crops(loader(seed=8))
    assert not all(torch.equal(a, b) for a, b in zip(first, other_seed))
    control = _epoch_crops(loader(seed=7, seeded_workers=False))
    assert torch.equal(control[0], control[1])  # without reseeding, both workers repeat one sequence


def test_evaluation_uses_full_images_of_varying_size(tmp_path: Path) -> None:
    root = tmp_path / "eval"
    write_fake_pairs(root / "ir", root / "vi", ["a"], size=(30, 40))
    write_fake_pairs(root / "ir", root / "vi", ["b"], size=(36, 28))
    dm = IVIFDataModule(train_roots=[str(root)], val_roots=[str(root)], test_roots=[str(root)], num_workers=0)
    dm.setup("fit")
    dm.setup("test")
    shapes = [tuple(batch["ir"].shape) for batch in dm.val_dataloader()]
    assert shapes == [(1, 1, 30, 40), (1, 1, 36, 28)]
    wide = IVIFDataModule(
        train_roots=[str(root)],
        val_roots=[str(root)],
        test_roots=[str(root)],
        eval_batch_size=2,
        num_workers=0,
    )
    wide.setup("test")
    batch = next(iter(wide.test_dataloader()))
    assert batch["vi"].shape == (2, 1, 36, 40) and batch["size"].tolist() == [[30, 40], [36, 28]]
    dm.setup("predict")
    assert [b["name"] for b in dm.predict_dataloader()] == [["a"], ["b"]]


def test_several_training_roots_and_a_held_out_validation_split(tmp_path: Path) -> None:
    generic = write_fake_layout(tmp_path / "one", "generic", n_pairs=4, size=(24, 24))
    roadscene = write_fake_layout(tmp_path / "two", "roadscene", n_pairs=5, size=(24, 24))
    dm = IVIFDataModule(
        train_roots=[str(generic), str(roadscene)],
        val_size=3,
        crop_size=16,
        batch_size=2,
        num_workers=0,
        seed=1,
    )
    dm.setup("fit")
    assert len(dm.train_dataset) == 6 and len(dm.val_dataset) == 3
    train_names = {dm.train_dataset[i]["name"] for i in range(len(dm.train_dataset))}
    val_names = {dm.val_dataset[i]["name"] for i in range(len(dm.val_dataset))}
    assert not train_names & val_names and len(train_names | val_names) == 9
    again = IVIFDataModule(train_roots=[str(generic), str(roadscene)], val_size=3, num_workers=0, seed=1)
    again.setup("fit")
    assert {again.val_dataset[i]["name"] for i in range(3)} == val_names
    with pytest.raises(RuntimeError, match="pass test_roots"):
        dm.test_dataloader()
    with pytest.raises(SplitError, match="too few to hold out val_size=20"):
        IVIFDataModule(train_roots=[str(generic)], val_size=20, num_workers=0).setup("fit")


def _graded_root(root: Path, levels: list[float]) -> Path:
    """A flat root whose pair i has a uniform visible image of brightness ``levels[i]``."""
    (root / "ir").mkdir(parents=True)
    (root / "vi").mkdir()
    for index, level in enumerate(levels):
        write_image(root / "ir" / f"p{index:02d}.png", np.full((12, 12), 0.5, dtype=np.float32))
        write_image(root / "vi" / f"p{index:02d}.png", np.full((12, 12), level, dtype=np.float32))
    return root


def test_stratified_split_holds_out_every_root_over_dark_and_bright_scenes(tmp_path: Path) -> None:
    big = _graded_root(tmp_path / "big", [i / 40 for i in range(40)])  # pair i: brightness i/40
    small = _graded_root(tmp_path / "small", [0.9, 0.1, 0.8, 0.2, 0.7, 0.3])

    def held_out(strata: str, seed: int = 0, minimum: int = 1) -> tuple[dict[str, list[str]], int]:
        dm = IVIFDataModule(train_roots=[str(big), str(small)], val_size=8, split_seed=seed, num_workers=0,
                            crop_size=8, val_strata=strata, val_min_per_root=minimum)  # fmt: skip
        dm.setup("fit")
        names: dict[str, list[str]] = {}
        for part in dm.val_dataset.datasets:
            names[part.ir_dir.parent.name] = [part[i]["name"] for i in range(len(part))]
        return names, len(dm.train_dataset)

    names, train = held_out("stratified", minimum=3)
    assert {k: len(v) for k, v in names.items()} == {"big": 5, "small": 3} and train == 46 - 8
    # the big root's 5 are one from each fifth of the brightness range
    assert sorted(int(n[1:]) // 8 for n in names["big"]) == [0, 1, 2, 3, 4]
    # the small root's 3: one of its 2 darkest, one of the middle 2, one of its 2 brightest pairs
    level = {"p00": 0.9, "p01": 0.1, "p02": 0.8, "p03": 0.2, "p04": 0.7, "p05": 0.3}
    ranked = sorted(level.values())
    assert sorted(ranked.index(level[n]) // 2 for n in names["small"]) == [0, 1, 2]
    assert held_out("stratified", minimum=3) == (names, train)  # deterministic
    assert held_out("stratified", seed=1, minimum=3)[0] != names
    # one each, the other 6 in proportion to the pairs left (38 : 4, largest remainder)
    assert {k: len(v) for k, v in held_out("stratified")[0].items()} == {"big": 6, "small": 2}
    with pytest.raises(ValueError, match="val_strata must be one of"):
        IVIFDataModule(train_roots=[str(big)], val_strata="by-name")
    with pytest.raises(ValueError, match="val_min_per_root must be an integer ≥ 1"):
        IVIFDataModule(train_roots=[str(big)], val_strata="stratified", val_min_per_root=0)
    with pytest.raises(SplitError, match="cannot hold out 5 pair"):
        IVIFDataModule(train_roots=[str(big), str(small)], val_size=8, num_workers=0, crop_size=8,
                       val_strata="stratified", val_min_per_root=5).setup("fit")  # fmt: skip


def test_split_layouts_use_train_and_eval_splits(tmp_path: Path) -> None:
    root = write_fake_layout(tmp_path / "MSRS", "msrs", n_pairs=3, size=(20, 20))
    (root / "test" / "ir" / "00001D.png").rename(root / "test" / "ir" / "99999D.png")
    (root / "test" / "vi" / "00001D.png").rename(root / "test" / "vi" / "99999D.png")
    dm = IVIFDataModule(train_roots=[str(root)], val_roots=[str(root)], crop_size=16, num_workers=0)
    dm.setup("fit")
    assert "99999D" not in {dm.train_dataset[i]["name"] for i in range(3)}
    assert "99999D" in {dm.val_dataset[i]["name"] for i in range(3)}


def test_embedded_default_is_deterministic_by_seed() -> None:
    def build(seed: int) -> IVIFDataModule:
        dm = IVIFDataModule(
            num_workers=0,
            default_train_size=8,
            default_image_size=48,
            val_size=2,
            crop_size=32,
            batch_size=4,
            seed=seed,
        )
        dm.setup("fit")
        dm.setup("test")
        return dm

    dm = build(0)
    batch = next(iter(dm.train_dataloader()))
    assert batch["ir"].shape == (4, 1, 32, 32) and batch["vi_cbcr"].shape == (4, 2, 32, 32)
    assert 0.0 <= float(batch["vi"].min()) and float(batch["vi"].max()) <= 1.0
    val = next(iter(dm.val_dataloader()))
    assert val["ir"].shape == (1, 1, 48, 48) and val["vi_is_color"].tolist() == [True]
    assert torch.equal(val["vi"], next(iter(build(0).val_dataloader()))["vi"])
    assert not torch.equal(val["vi"], next(iter(build(1).val_dataloader()))["vi"])
    assert not torch.equal(val["vi"], next(iter(dm.test_dataloader()))["vi"])  # test pairs are other pairs


def test_prepare_data_keeps_no_state_and_setup_builds_per_stage(tmp_path: Path) -> None:
    dm = IVIFDataModule(num_workers=0, default_train_size=4, val_size=1)
    before = dict(vars(dm))
    dm.prepare_data()
    assert dict(vars(dm)) == before
    dm.setup("test")
    assert dm.train_dataset is None and dm.test_dataset is not None


def test_arguments_are_plain_types_configurable_from_yaml(tmp_path: Path) -> None:
    from jsonargparse import ArgumentParser

    root = write_fake_layout(tmp_path / "g", "generic", n_pairs=3)
    parser = ArgumentParser()
    parser.add_class_arguments(IVIFDataModule, "data")
    config = parser.parse_string(
        f"data:\n  train_roots: [{root}]\n  crop_size: 16\n  num_workers: 0\n  val_size: 1\n"
    )
    dm = parser.instantiate_classes(config).data
    assert isinstance(dm, IVIFDataModule) and dm.train_roots == [str(root)] and dm.crop_size == 16
    assert dm.hparams["train_roots"] == [str(root)]
    with pytest.raises(TypeError, match="train_roots must be a non-empty list"):
        IVIFDataModule(train_roots=str(root))


def test_the_data_module_drives_a_lightning_trainer(tmp_path: Path) -> None:
    import pytorch_lightning as pl

    class Recorder(pl.LightningModule):
        def __init__(self) -> None:
            super().__init__()
            self.scale = torch.nn.Parameter(torch.ones(1))
            self.seen: dict[str, list[tuple[int, ...]]] = {"train": [], "val": [], "test": []}

        def _step(self, batch: dict, stage: str) -> torch.Tensor:
            self.seen[stage].append(tuple(batch["ir"].shape))
            return ((self.scale * batch["ir"] - batch["vi"]) ** 2).mean()

        def training_step(self, batch: dict, batch_idx: int) -> torch.Tensor:
            return self._step(batch, "train")

        def validation_step(self, batch: dict, batch_idx: int) -> None:
            self._step(batch, "val")

        def test_step(self, batch: dict, batch_idx: int) -> None:
            self._step(batch, "test")

        def configure_optimizers(self) -> torch.optim.Optimizer:
            return torch.optim.SGD(self.parameters(), lr=0.01)

    dm = IVIFDataModule(
        num_workers=0, default_train_size=4, default_image_size=40, val_size=2, crop_size=32, batch_size=2
    )
    trainer = pl.Trainer(
        accelerator="cpu",
        max_epochs=1,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        default_root_dir=tmp_path,
    )
    module = Recorder()
    trainer.fit(module, datamodule=dm)
    trainer.test(module, datamodule=dm, verbose=False)
    assert module.seen["train"] == [(2, 1, 32, 32)] * 2
    assert (1, 1, 40, 40) in module.seen["val"] and module.seen["test"] == [(1, 1, 40, 40)] * 2
