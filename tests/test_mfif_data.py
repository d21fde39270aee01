"""Multi-focus synthesis, real multi-focus pairs and MFIFDataModule."""

from __future__ import annotations

import gc
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from data_modules.errors import (
    DataFolderNotFoundError,
    EmptyFolderError,
    SizeMismatchError,
    UnpairedFilesError,
)
from data_modules.fake_data import write_fake_multifocus, write_fake_natural_images
from data_modules.mfif import (
    MFIFDataModule,
    MultiFocusPairFolder,
    MultiFocusSynthesizer,
    SyntheticMultiFocusDataset,
    disk_kernel,
    find_natural_images,
    random_focus_mask,
)
from data_modules.synthetic_textures import make_texture_array


def _gradient_energy(image: np.ndarray, region: np.ndarray) -> float:
    gx = cv2.Sobel(image, cv2.CV_32F, 1, 0, ksize=3)
    gy = cv2.Sobel(image, cv2.CV_32F, 0, 1, ksize=3)
    return float((gx**2 + gy**2)[region].mean())


@pytest.mark.parametrize("blur", ["gaussian", "disk", "mixed"])
def test_hard_mask_samples_obey_their_definition(blur: str) -> None:
    synthesizer = MultiFocusSynthesizer(crop_size=64, blur=blur)
    rng = np.random.default_rng(0)
    for index in range(12):
        image = make_texture_array(index, 200, 200, channels=1)[:, :, 0]
        sample = synthesizer.sample(image, rng)
        a, b, gt, mask = sample["a"], sample["b"], sample["gt"], sample["mask"]
        assert a.shape == b.shape == gt.shape == mask.shape == (64, 64) and a.dtype == np.float32
        assert set(np.unique(mask)) <= {0.0, 1.0} and 0.2 < mask.mean() < 0.8
        focused = mask == 1  # M = 1 where A is in focus, also after a random swap
        assert np.array_equal(a[focused], gt[focused]) and np.array_equal(b[~focused], gt[~focused])
        # away from the focus boundary the defocused side is a blurred G: less gradient energy
        inner_a = cv2.erode(mask.astype(np.uint8), np.ones((5, 5), np.uint8)).astype(bool)
        inner_b = cv2.erode((1 - mask).astype(np.uint8), np.ones((5, 5), np.uint8)).astype(bool)
        if inner_a.sum() > 50:
            assert _gradient_energy(b, inner_a) < 0.9 * _gradient_energy(gt, inner_a)
        if inner_b.sum() > 50:
            assert _gradient_energy(a, inner_b) < 0.9 * _gradient_energy(gt, inner_b)


def test_soft_edges_give_a_feathered_mask_that_still_mixes_exactly() -> None:
    synthesizer = MultiFocusSynthesizer(crop_size=64, soft_edges=True, blur="gaussian")
    sample = synthesizer.sample(
        make_texture_array(3, 150, 150, channels=1)[:, :, 0], np.random.default_rng(1)
    )
    mask = sample["mask"]
    assert ((mask > 0.01) & (mask < 0.99)).mean() > 0.02  # a real transition band
    blurred = sample["a"] + sample["b"] - sample["gt"]  # A + B = G + blur(G) for any mask
    assert np.allclose(sample["a"], mask * sample["gt"] + (1 - mask) * blurred, atol=1e-5)


def test_masks_and_kernels_are_valid() -> None:
    rng = np.random.default_rng(2)
    fractions = [random_focus_mask(rng, 96, 80).mean() for _ in range(30)]
    assert min(fractions) >= 0.2 and max(fractions) <= 0.8
    kernel = disk_kernel(4.5)
    assert kernel.shape == (11, 11) and kernel.sum() == pytest.approx(1.0) and kernel[5, 5] == kernel.max()
    assert kernel[0, 0] == 0.0
    with pytest.raises(ValueError, match="blur must be one of"):
        MultiFocusSynthesizer(blur="motion")


def test_small_sources_are_padded_to_the_crop_and_uint8_is_scaled() -> None:
    synthesizer = MultiFocusSynthesizer(crop_size=48)
    tiny = (np.random.default_rng(0).random((20, 30)) * 255).astype(np.uint8)
    sample = synthesizer.sample(tiny, np.random.default_rng(0))
    assert sample["gt"].shape == (48, 48) and 0.0 <= sample["gt"].min() and sample["gt"].max() <= 1.0
    assert set(np.unique(np.rint(sample["gt"] * 255))) <= set(np.unique(tiny).astype(float))


def test_validation_samples_are_identical_across_instances_and_processes(tmp_path: Path) -> None:
    root = write_fake_natural_images(tmp_path / "natural", {"set_a": 3, "set_b/deeper": 2})

    def validation_batches(seed: int, workers: int) -> list[dict]:
        dm = MFIFDataModule(
            roots=[str(root)], num_workers=workers, val_samples=4, val_crop_size=40, batch_size=2, seed=seed
        )
        dm.setup("fit")
        batches = list(dm.val_dataloader())
        gc.collect()
        return batches

    in_process = validation_batches(seed=5, workers=0)
    in_workers = validation_batches(seed=5, workers=2)  # two other processes build the same samples
    assert len(in_process) == 2 and in_process[0]["a"].shape == (2, 1, 40, 40)
    for mine, theirs in zip(in_process, in_workers):
        for key in ("a", "b", "gt", "mask"):
            assert torch.equal(mine[key], theirs[key])
        assert mine["name"] == theirs["name"]
    other = validation_batches(seed=6, workers=0)
    assert not torch.equal(in_process[0]["gt"], other[0]["gt"])


def test_training_samples_differ_between_workers(tmp_path: Path) -> None:
    image = (np.random.default_rng(0).random((80, 80)) * 255).astype(np.uint8)
    (tmp_path / "one").mkdir()
    cv2.imwrite(
        str(tmp_path / "one" / "only.png"), image
    )  # one source image: samples differ only by randomness
    dataset = SyntheticMultiFocusDataset(
        MultiFocusSynthesizer(crop_size=32), 4, find_natural_images([tmp_path])
    )
    from data_modules.transforms import WorkerSeeder

    loader = DataLoader(
        dataset,
        batch_size=1,
        num_workers=2,
        worker_init_fn=WorkerSeeder(),
        generator=torch.Generator().manual_seed(0),
    )
    batches = list(loader)
    del loader
    gc.collect()
    assert not torch.equal(batches[0]["a"], batches[1]["a"])  # worker 0 and worker 1


def test_natural_images_are_found_recursively_and_a_few_held_out(tmp_path: Path) -> None:
    root = write_fake_natural_images(tmp_path / "natural", {"kodak": 6, "bsd/sub": 14})
    (tmp_path / "natural" / "kodak" / "notes.txt").write_text("ignored")
    assert len(find_natural_images([root])) == 20
    dm = MFIFDataModule(
        roots=[str(root)],
        num_workers=0,
        samples_per_epoch=6,
        batch_size=3,
        crop_size=32,
        val_fraction=0.1,
        seed=0,
    )
    dm.setup("fit")
    assert len(dm.train_dataset.image_paths) == 18 and len(dm.val_dataset.image_paths) == 2
    assert not set(dm.train_dataset.image_paths) & set(dm.val_dataset.image_paths)
    batches = list(dm.train_dataloader())
    assert len(batches) == 2 and set(batches[0]) == {"a", "b", "gt", "mask", "name"}
    assert batches[0]["gt"].shape == (3, 1, 32, 32) and len(batches[0]["name"]) == 3
    with pytest.raises(DataFolderNotFoundError, match="does not exist"):
        find_natural_images([tmp_path / "none"])
    (tmp_path / "empty").mkdir()
    with pytest.raises(EmptyFolderError, match="contains no images"):
        find_natural_images([tmp_path / "empty"])


def test_embedded_texture_default_and_real_validation_pairs(tmp_path: Path) -> None:
    real = write_fake_multifocus(tmp_path / "lytro", "folders", n_pairs=2, size=(36, 44))
    dm = MFIFDataModule(
        num_workers=0,
        samples_per_epoch=4,
        val_samples=2,
        val_crop_size=48,
        crop_size=32,
        batch_size=2,
        real_val_root=str(real),
    )
    dm.setup("fit")
    train = next(iter(dm.train_dataloader()))
    assert train["a"].shape == (2, 1, 32, 32) and train["mask"].shape == (2, 1, 32, 32)
    synthetic_loader, real_loader = dm.val_dataloader()
    assert next(iter(synthetic_loader))["gt"].shape == (2, 1, 48, 48)
    real_batch = next(iter(real_loader))
    assert set(real_batch) == {"a", "b", "name", "size"} and real_batch["a"].shape == (1, 1, 36, 44)
    assert real_batch["name"] == ["lytro-01"]
    single = MFIFDataModule(num_workers=0, val_samples=2)
    single.setup("fit")
    assert isinstance(single.val_dataloader(), DataLoader)


def test_real_pairs_in_a_single_folder_with_a_b_suffixes(tmp_path: Path) -> None:
    root = write_fake_multifocus(tmp_path / "cmf", "suffix", n_pairs=3, size=(24, 24))
    dataset = MultiFocusPairFolder(root)
    assert len(dataset) == 3 and dataset[2]["name"] == "lytro-03"
    item = dataset[0]
    assert item["a"].shape == item["b"].shape == (1, 24, 24)
    # the synthetic pair is focused on the left (A) and right (B) halves
    assert _gradient_energy(item["a"][0].numpy(), np.s_[:, 2:10]) > _gradient_energy(
        item["b"][0].numpy(), np.s_[:, 2:10]
    )


def test_real_pair_errors_name_the_files(tmp_path: Path) -> None:
    root = write_fake_multifocus(tmp_path / "lytro", "folders", n_pairs=3)
    (root / "b" / "lytro-02.jpg").unlink()
    (root / "b" / "lytro-03.jpg").unlink()
    with pytest.raises(UnpairedFilesError, match=r"without B \(2\): lytro-02, lytro-03"):
        MultiFocusPairFolder(root)
    suffix = write_fake_multifocus(tmp_path / "cmf", "suffix", n_pairs=1, size=(24, 24))
    write_fake_multifocus(tmp_path / "big", "suffix", n_pairs=1, size=(30, 30))
    (suffix / "lytro-01-B.jpg").write_bytes((tmp_path / "big" / "lytro-01-B.jpg").read_bytes())
    with pytest.raises(SizeMismatchError, match=r"lytro-01-B\.jpg' is 30×30"):
        MultiFocusPairFolder(suffix)
    (tmp_path / "plain").mkdir()
    with pytest.raises(EmptyFolderError, match="expected subfolders a/ \\+ b/"):
        MultiFocusPairFolder(tmp_path / "plain")
    with pytest.raises(DataFolderNotFoundError):
        MultiFocusPairFolder(tmp_path / "missing")


def test_two_validation_loaders_reach_validation_step_with_their_index(tmp_path: Path) -> None:
    import pytorch_lightning as pl

    class Recorder(pl.LightningModule):
        def __init__(self) -> None:
            super().__init__()
            self.weight = torch.nn.Parameter(torch.zeros(1))
            self.val_keys: dict[int, set[str]] = {}

        def training_step(self, batch: dict, batch_idx: int) -> torch.Tensor:
            fused = torch.sigmoid(self.weight) * batch["a"] + (1 - torch.sigmoid(self.weight)) * batch["b"]
            return (fused - batch["gt"]).abs().mean()

        def validation_step(self, batch: dict, batch_idx: int, dataloader_idx: int = 0) -> None:
            self.val_keys[dataloader_idx] = set(batch)

        def configure_optimizers(self) -> torch.optim.Optimizer:
            return torch.optim.SGD(self.parameters(), lr=0.1)

    real = write_fake_multifocus(tmp_path / "lytro", "folders", n_pairs=2, size=(32, 32))
    dm = MFIFDataModule(
        num_workers=0,
        samples_per_epoch=4,
        val_samples=2,
        val_crop_size=32,
        crop_size=32,
        batch_size=2,
        real_val_root=str(real),
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
    assert module.val_keys == {0: {"a", "b", "gt", "mask", "name"}, 1: {"a", "b", "name", "size"}}
