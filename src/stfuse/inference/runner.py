"""Folder-to-folder fusion behind ``stfuse fuse``: pairing, batched loading, writing and the run summary.

A run never stops for one bad pair: unpaired, unreadable or mismatched pairs are recorded with their
reason and the run goes on; the summary lists them and the exit code says whether anything failed.
Decoding runs in DataLoader workers and encoding in a writer thread, so both overlap the network.
"""

from __future__ import annotations

import os
import sys
import time
from collections import defaultdict, deque
from collections.abc import Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from data_modules.formats import SIXTEEN_BIT_FORMATS, SUFFIX_FORMATS
from data_modules.levels import quantise
from stfuse.inference.fuser import Fuser
from stfuse.inference.options import OUTPUT_FORMATS

__all__ = [
    "FusionReport",
    "PairJob",
    "SizeGroupedBatchSampler",
    "collect_pairs",
    "fuse_pairs",
    "stored_bit_depth",
]


@dataclass
class PairJob:
    """One pair to fuse and where its result goes."""

    name: str
    ir_path: Path
    vi_path: Path
    out_path: Path
    size: tuple[int, int] = (0, 0)  # H, W from the file headers


@dataclass
class FusionReport:
    """What a run did: fused names, skipped and failed names with their reasons."""

    fused: list[str] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)
    failed: list[tuple[str, str]] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def exit_code(self) -> int:
        return 1 if self.failed else 0

    def summary(self) -> str:
        rate = f" ({len(self.fused) / self.seconds:.2f} pairs/s)" if self.fused and self.seconds > 0 else ""
        lines = [
            f"{len(self.fused)} fused, {len(self.skipped)} skipped, {len(self.failed)} failed "
            f"in {self.seconds:.1f} s{rate}"
        ]
        if self.skipped:
            lines.append("skipped:")
            lines += [f"  {name}: {reason}" for name, reason in self.skipped]
        if self.failed:
            lines.append("failed:")
            lines += [f"  {name}: {reason}" for name, reason in self.failed]
        return "\n".join(lines)


# ------------------------------------------------------------------------------------------------ pairing
def collect_pairs(ir: Path, vi: Path) -> tuple[list[tuple[str, Path, Path]], list[tuple[str, str]]]:
    """Pairs ``(name, ir_path, vi_path)`` matched by stem, and ``(name, reason)`` for files left unpaired.

    ``ir`` and ``vi`` are two folders or two files. An ambiguous stem (``01.png`` and ``01.jpg``) or a file
    without a partner is reported rather than guessed, as the data layer does.
    """
    if ir.is_file() and vi.is_file():
        return [(ir.stem, ir, vi)], []
    if not (ir.is_dir() and vi.is_dir()):
        raise ValueError(f"--ir and --vi must both be folders or both be files, got '{ir}' and '{vi}'")
    from data_modules.stems import index_by_stem, pair_by_stem

    ir_found, vi_found = index_by_stem(ir), index_by_stem(vi)
    problems: list[tuple[str, str]] = []
    for found in (ir_found, vi_found):
        for stem, paths in sorted(found.duplicates.items()):
            names = ", ".join(p.name for p in paths)
            problems.append((stem, f"ambiguous: several images with this stem in '{found.folder}' ({names})"))
    ambiguous = set(ir_found.duplicates) | set(vi_found.duplicates)
    ir_index = {stem: path for stem, path in ir_found.files.items() if stem not in ambiguous}
    vi_index = {stem: path for stem, path in vi_found.files.items() if stem not in ambiguous}
    pairing = pair_by_stem(ir_index, vi_index)
    broken_ir, broken_vi = _dangling_links(ir), _dangling_links(vi)
    unpaired = [
        (stem, _missing_partner(ir_index[stem], "visible", vi, broken_vi)) for stem in pairing.only_first
    ]
    unpaired += [
        (stem, _missing_partner(vi_index[stem], "infrared", ir, broken_ir)) for stem in pairing.only_second
    ]
    problems += sorted(unpaired, key=lambda problem: problem[0])
    pairs = [(stem, ir_index[stem], vi_index[stem]) for stem in pairing.common]
    return pairs, problems


def _dangling_links(folder: Path) -> dict[str, Path]:
    """Symbolic links in ``folder`` whose target is missing, by stem (the image index skips them)."""
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return {}
    return {
        Path(entry.name).stem: Path(entry.path)
        for entry in entries
        if entry.is_symlink() and not os.path.exists(entry.path)
    }


def _missing_partner(path: Path, modality: str, folder: Path, broken: dict[str, Path]) -> str:
    link = broken.get(path.stem)
    if link is not None:
        return f"its {modality} partner '{link}' is a broken symbolic link (target '{os.readlink(link)}' is missing)"
    return f"'{path}' has no {modality} partner in '{folder}'"


def stored_bit_depth(path: Path) -> int:
    """8 or 16: the bit depth stored in a PNG or TIFF header (other formats hold 8 bits)."""
    suffix = path.suffix.lower()
    try:
        if suffix == ".png":
            with path.open("rb") as handle:
                header = handle.read(25)
            return 16 if len(header) == 25 and header[24] == 16 else 8
        if suffix in (".tif", ".tiff"):
            import tifffile

            with tifffile.TiffFile(path) as tiff:
                return 16 if tiff.pages[0].bitspersample > 8 else 8
    except Exception:  # an unreadable header is reported when the pixels are decoded
        return 8
    return 8


# ------------------------------------------------------------------------------------------------ loading
class SizeGroupedBatchSampler(Sampler[list[int]]):
    """Batches of indices whose images share one size, so they stack without padding.

    ``max_pixels`` bounds the pixels of a batch (one image may exceed it alone: it is tiled later).
    """

    def __init__(
        self, sizes: Sequence[tuple[int, int]], batch_size: int, max_pixels: int | None = None
    ) -> None:
        if batch_size < 1:
            raise ValueError(f"batch size must be ≥ 1, got {batch_size}")
        groups: dict[tuple[int, int], list[int]] = defaultdict(list)
        for index, size in enumerate(sizes):
            groups[tuple(size)].append(index)
        self.batches: list[list[int]] = []
        for (height, width), indices in groups.items():
            per_batch = batch_size
            if max_pixels is not None and height * width > 0:
                per_batch = max(1, min(batch_size, max_pixels // (height * width)))
            self.batches += [indices[i : i + per_batch] for i in range(0, len(indices), per_batch)]
        self.batches.sort(key=lambda batch: batch[0])  # roughly the listing order

    def __iter__(self) -> Iterator[list[int]]:
        return iter(self.batches)

    def __len__(self) -> int:
        return len(self.batches)


class _PairDecoder(Dataset):
    """Decodes a pair into IR 1×H×W, visible Y 1×H×W and CbCr; a failure becomes an ``error`` entry."""

    def __init__(self, jobs: Sequence[PairJob]) -> None:
        self.jobs = list(jobs)

    def __len__(self) -> int:
        return len(self.jobs)

    def __getitem__(self, index: int) -> dict[str, Any]:
        from data_modules.io import read_image_array
        from data_modules.paired import luma, make_pair_item

        job = self.jobs[index]
        try:
            ir = read_image_array(job.ir_path)
            vi = read_image_array(job.vi_path)
            if ir.shape[:2] != vi.shape[:2]:
                raise ValueError(
                    f"size mismatch: '{job.ir_path.name}' is {ir.shape[0]}×{ir.shape[1]}, "
                    f"'{job.vi_path.name}' is {vi.shape[0]}×{vi.shape[1]}"
                )
            if ir.shape[2] == 3:
                ir = luma(ir)  # colour-mapped thermal image: keep its luminance
            item = make_pair_item({"ir": ir, "vi": vi}, job.name)
            bits = max(stored_bit_depth(job.ir_path), stored_bit_depth(job.vi_path))
            return {
                "index": index,
                "error": None,
                "ir": item["ir"],
                "vi": item["vi"],
                "cbcr": item["vi_cbcr"],
                "colour": bool(item["vi_is_color"]),
                "bits": bits,
            }
        except Exception as error:  # any decoder failure is reported per pair
            return {"index": index, "error": str(error) or type(error).__name__}


def _as_list(batch: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return batch


# ------------------------------------------------------------------------------------------------ running
def _check_output_folder(out_dir: Path, input_folders: Sequence[Path]) -> None:
    resolved = out_dir.resolve()
    for folder in input_folders:
        same = resolved == folder.resolve()
        if not same and out_dir.exists() and folder.exists():
            same = os.path.samefile(out_dir, folder)
        if same:
            raise ValueError(
                f"--out '{out_dir}' is the input folder '{folder}'; choose another output folder"
            )


def fuse_pairs(
    fuser: Fuser,
    pairs: Sequence[tuple[str, Path, Path]],
    out: Path,
    *,
    problems: Sequence[tuple[str, str]] = (),
    output_format: str = "png",
    bit_depth: str | int = "auto",
    gray: bool = False,
    skip_existing: bool = False,
    batch_size: int = 4,
    workers: int = 0,
    progress: bool = True,
    log: TextIO | None = None,
) -> FusionReport:
    """Fuse ``pairs`` into ``out`` (a folder, or a file path for a single pair) and report what happened.

    ``problems`` are pairing failures found earlier; they go into the report as failed. Outputs are
    written atomically, never over an input, and with ``skip_existing`` existing outputs are kept, so a
    stopped run resumes where it ended.
    """
    from tqdm.auto import tqdm

    from data_modules.io import read_image_size, write_image

    if output_format not in OUTPUT_FORMATS:
        raise ValueError(f"unknown output format {output_format!r}; use one of {', '.join(OUTPUT_FORMATS)}")
    if str(bit_depth) not in ("auto", "8", "16"):
        raise ValueError(f"bit depth must be auto, 8 or 16, got {bit_depth!r}")
    single_file = out.suffix.lower() in SUFFIX_FORMATS
    if single_file and len(pairs) != 1:
        raise ValueError(f"--out '{out}' is a file name but there are {len(pairs)} pairs; give a folder")
    if single_file:
        output_format = SUFFIX_FORMATS[out.suffix.lower()]  # the file name decides the format
    if str(bit_depth) == "16" and output_format not in SIXTEEN_BIT_FORMATS:
        raise ValueError(f"{output_format} stores 8 bits only; use png or tif for 16-bit output")
    log = log or sys.stderr
    started = time.perf_counter()
    report = FusionReport(failed=list(problems))

    out_dir = out.parent if single_file else out
    input_folders = sorted({p.parent for _, ir_path, vi_path in pairs for p in (ir_path, vi_path)})
    _check_output_folder(out_dir, input_folders)
    out_dir.mkdir(parents=True, exist_ok=True)

    jobs: list[PairJob] = []
    for name, ir_path, vi_path in pairs:
        out_path = out if single_file else out_dir / f"{name}{OUTPUT_FORMATS[output_format]}"
        if skip_existing and out_path.exists():
            report.skipped.append((name, f"'{out_path}' exists (--skip-existing)"))
            continue
        try:
            ir_size, vi_size = read_image_size(ir_path), read_image_size(vi_path)
        except Exception as error:  # reported per pair, the run goes on
            report.failed.append((name, str(error)))
            continue
        if ir_size != vi_size:
            report.failed.append(
                (
                    name,
                    f"size mismatch: '{ir_path}' is {ir_size[0]}×{ir_size[1]}, '{vi_path}' is {vi_size[0]}×{vi_size[1]}",
                )
            )
            continue
        jobs.append(PairJob(name, ir_path, vi_path, out_path, ir_size))

    bar = tqdm(total=len(pairs) + len(problems), unit="pair", desc="fusing", disable=not progress, file=log)
    bar.update(len(pairs) + len(problems) - len(jobs))
    if jobs:
        _run_jobs(fuser, jobs, report, bar, write_image, output_format, bit_depth, gray, batch_size, workers)
    bar.close()
    report.seconds = time.perf_counter() - started
    return report


def _run_jobs(
    fuser: Fuser,
    jobs: list[PairJob],
    report: FusionReport,
    bar: Any,
    write_image: Any,
    output_format: str,
    bit_depth: str | int,
    gray: bool,
    batch_size: int,
    workers: int,
) -> None:
    from data_modules.io import merge_y_cbcr

    sampler = SizeGroupedBatchSampler([job.size for job in jobs], batch_size, fuser.max_pixels)
    loader = DataLoader(
        _PairDecoder(jobs),
        batch_sampler=sampler,
        num_workers=workers,
        collate_fn=_as_list,
        pin_memory=fuser.device.type == "cuda",
        prefetch_factor=2 if workers > 0 else None,
        persistent_workers=False,
    )
    pending: deque[tuple[PairJob, Future[Path]]] = deque()

    def settle(block: bool) -> None:
        while pending and (block or pending[0][1].done()):
            job, future = pending.popleft()
            try:
                future.result()
                report.fused.append(job.name)
            except Exception as error:  # a failed write is one failed pair
                report.failed.append((job.name, f"cannot write output: {error}"))
            bar.update(1)

    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="stfuse-writer") as writer:
        for batch in loader:
            ready = []
            for item in batch:
                if item["error"] is not None:
                    report.failed.append((jobs[item["index"]].name, item["error"]))
                    bar.update(1)
                else:
                    ready.append(item)
            by_shape: dict[tuple[int, ...], list[dict[str, Any]]] = defaultdict(list)
            for item in ready:
                by_shape[tuple(item["ir"].shape)].append(item)
            for items in by_shape.values():
                try:
                    ir = torch.stack([item["ir"] for item in items])
                    vi = torch.stack([item["vi"] for item in items])
                    fused = fuser.fuse_luminance(ir, vi).cpu()  # N×1×H×W
                except Exception as error:  # the batch fails, the run goes on
                    for item in items:
                        report.failed.append((jobs[item["index"]].name, f"fusion failed: {error}"))
                        bar.update(1)
                    continue
                for k, item in enumerate(items):
                    job = jobs[item["index"]]
                    image = fused[k]
                    if item["colour"] and not gray:
                        image = merge_y_cbcr(image, item["cbcr"])
                    depth = item["bits"] if str(bit_depth) == "auto" else int(bit_depth)
                    if output_format not in SIXTEEN_BIT_FORMATS:
                        depth = 8
                    future = writer.submit(
                        write_image,
                        job.out_path,
                        quantise(image.float().permute(1, 2, 0), depth).numpy(),  # float32: cheap
                        bit_depth=depth,
                        protected=(job.ir_path, job.vi_path),
                    )
                    pending.append((job, future))
            settle(block=len(pending) > 2 * batch_size)
        settle(block=True)
    report.fused.sort()
