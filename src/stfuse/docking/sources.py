"""Image sources of the docking protocol: IR, VIS, fused folders and fusion on the fly.

All sources are read for the same stems and end up as the same kind of detector input (see
:func:`to_detector_input`), so the detector cannot tell them apart except by content. Fusion on the fly
(a classical baseline or a checkpoint) runs once at the data set's native resolution and is cached as
8-bit PNG under ``<out>/cache/<name>/``, which is what a fused folder written by any method looks like too.
"""

from __future__ import annotations

import hashlib
import importlib
import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import torch

from data_modules.io import ImageReadError, ImageWriteError, luma_array, read_image_array
from data_modules.io import write_image as io_write_image
from data_modules.stems import index_by_stem
from stfuse.docking.errors import DockingError
from stfuse.docking.settings import COLOR_MODES

SOURCE_KINDS = ("dataset", "folder", "baseline", "checkpoint")
#: which way grey and colour images enter the detector


@dataclass(frozen=True)
class SourceSpec:
    """One image source: ``kind`` is dataset (``ir``/``vi``), folder, baseline or checkpoint."""

    name: str
    kind: str
    location: str = ""

    def __post_init__(self) -> None:
        if self.kind not in SOURCE_KINDS:
            raise DockingError(f"source {self.name!r}: kind must be one of {SOURCE_KINDS}, got {self.kind!r}")
        if not self.name or any(c in self.name for c in "/\\ =,"):
            raise DockingError(
                f"source name {self.name!r} must be non-empty without '/', '\\', ' ', '=' or ','"
            )
        if self.kind == "dataset" and self.name not in ("ir", "vi"):
            raise DockingError(f"data-set source must be 'ir' or 'vi', got {self.name!r}")


def read_image(path: str | Path) -> np.ndarray:
    """H×W×C float32 in [0, 1] by ``data_modules.io`` (C = 1 for grey, also grey stored as equal channels)."""
    try:
        return read_image_array(path)
    except ImageReadError as error:
        raise DockingError(f"{path}: cannot be read as an image ({error.reason})") from error


def write_image(path: Path, img: np.ndarray) -> None:
    """Write H×W×C [0, 1] as 8-bit PNG (grey or RGB), creating the folder."""
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        io_write_image(path, np.clip(img, 0.0, 1.0))
    except ImageWriteError as error:
        raise DockingError(f"{path}: could not write image ({error.reason})") from error


def luminance(img: np.ndarray) -> np.ndarray:
    """BT.601 luma (the Y of YCbCr the fusion network sees) of an H×W×C image, as H×W×1."""
    if img.shape[2] == 1:
        return img
    return luma_array(img)[:, :, None]


def to_detector_input(img: np.ndarray, color: str, size: tuple[int, int]) -> torch.Tensor:
    """Resize (area) to ``size`` = (W, H) and convert to the detector's channels.

    ``luma``: every source becomes 1-channel luminance, so VIS colour gives no extra cue over grey fused
    images. ``rgb``: grey sources are replicated to 3 channels and colour stays colour.
    """
    if color not in COLOR_MODES:
        raise DockingError(f"color mode must be one of {COLOR_MODES}, got {color!r}")
    img = luminance(img) if color == "luma" else (np.repeat(img, 3, axis=2) if img.shape[2] == 1 else img)
    resized = cv2.resize(img, size, interpolation=cv2.INTER_AREA)
    if resized.ndim == 2:
        resized = resized[:, :, None]
    return torch.from_numpy(np.ascontiguousarray(resized.transpose(2, 0, 1)))


def list_stems(folder: Path) -> dict[str, Path]:
    """stem -> image file in ``folder``; two files with one stem is an error."""
    if not folder.is_dir():
        raise DockingError(f"{folder}: image folder does not exist")
    found = index_by_stem(folder)
    for stem, paths in found.duplicates.items():
        raise DockingError(f"{folder}: two images share the stem {stem!r} ({paths[0].name}, {paths[1].name})")
    return found.files


def check_stems(name: str, folder: Path, available: Iterable[str], needed: Iterable[str]) -> None:
    """Every needed stem must be present; the error lists what is missing."""
    missing = sorted(set(needed) - set(available))
    if missing:
        shown = ", ".join(missing[:6]) + (" ..." if len(missing) > 6 else "")
        raise DockingError(
            f"source {name!r} ({folder}) lacks {len(missing)} stem(s) that the other sources and the split "
            f"have: {shown}"
        )


def _baseline_function() -> Callable[[str, torch.Tensor, torch.Tensor], torch.Tensor]:
    try:
        module = importlib.import_module("stfuse.baselines")
    except ImportError as exc:  # pragma: no cover - the package ships the module
        raise DockingError(f"--baseline needs stfuse.baselines, which failed to import: {exc}") from exc
    func = getattr(module, "fuse_baseline", None)
    if func is None:
        raise DockingError(
            "--baseline needs stfuse.baselines.fuse_baseline(name, ir, vi), which this install lacks"
        )
    return func


def _fuser_class() -> type:
    import stfuse

    fuser = getattr(stfuse, "Fuser", None)
    if fuser is None:
        try:
            fuser = importlib.import_module("stfuse.inference").Fuser
        except (ImportError, AttributeError) as exc:
            raise DockingError(
                f"--ckpt needs stfuse.Fuser (stfuse.inference), which is not available: {exc}"
            ) from exc
    return fuser


def _as_image(result: object, origin: str) -> np.ndarray:
    """A fusion result (tensor or array, with or without batch/channel axes) as H×W×C float32."""
    if isinstance(result, torch.Tensor):
        arr = result.detach().float().cpu().numpy()
    else:
        arr = np.asarray(result, dtype=np.float32)
    if arr.ndim == 4:
        if arr.shape[0] != 1:
            raise DockingError(f"{origin}: expected one fused image, got a batch of {arr.shape[0]}")
        arr = arr[0]
    if arr.ndim == 2:
        arr = arr[None]
    if arr.ndim != 3:
        raise DockingError(f"{origin}: fused result has shape {arr.shape}, expected (1×)C×H×W")
    if arr.shape[0] in (1, 3):
        arr = arr.transpose(1, 2, 0)
    elif arr.shape[2] not in (1, 3):
        raise DockingError(f"{origin}: fused result has shape {arr.shape}, expected 1 or 3 channels")
    return np.clip(arr, 0.0, 1.0).astype(np.float32)


def _content_digest(path: Path) -> str:
    """SHA-256 of a file's bytes: what a cached result depends on, unlike its modification time (a copied or
    re-synced data folder gets new times and the same contents)."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _identity(spec: SourceSpec) -> dict[str, object]:
    """What the cached fused images depend on."""
    ident: dict[str, object] = {"kind": spec.kind, "location": spec.location}
    if spec.kind == "checkpoint":
        path = Path(spec.location)
        if not path.is_file():
            raise DockingError(f"--ckpt {spec.name}={spec.location}: checkpoint file not found")
        ident.update(sha256=_content_digest(path))
    return ident


def fingerprint(spec: SourceSpec, files: dict[str, Path]) -> str:
    """Hash of the source's identity and its files' contents, to know when results go stale (a copy of the
    same files with new modification times keeps the fingerprint)."""
    digest = hashlib.sha256(json.dumps(_identity(spec), sort_keys=True).encode())
    for stem in sorted(files):
        digest.update(f"{stem}:{_content_digest(files[stem])};".encode())
    return digest.hexdigest()[:16]


def resolve_source_files(
    spec: SourceSpec,
    data_root: Path,
    stems: list[str],
    cache_dir: Path,
    log: Callable[[str], None] = print,
) -> dict[str, Path]:
    """stem -> image file for every stem, fusing and caching first where the source is on the fly."""
    if spec.kind == "dataset":
        folder = data_root / spec.name
        files = list_stems(folder)
        check_stems(spec.name, folder, files, stems)
        return {s: files[s] for s in stems}
    if spec.kind == "folder":
        folder = Path(spec.location)
        files = list_stems(folder)
        check_stems(spec.name, folder, files, stems)
        return {s: files[s] for s in stems}
    return _fuse_on_the_fly(spec, data_root, stems, cache_dir, log)


def _fuse_on_the_fly(
    spec: SourceSpec, data_root: Path, stems: list[str], cache_dir: Path, log: Callable[[str], None]
) -> dict[str, Path]:
    folder = cache_dir / spec.name
    meta_path = folder / "source.json"
    ident = _identity(spec)
    if meta_path.is_file():
        try:
            cached_ident = json.loads(meta_path.read_text())
        except json.JSONDecodeError:
            cached_ident = None
        if cached_ident != ident:
            for old in folder.glob("*.png"):
                old.unlink()
    folder.mkdir(parents=True, exist_ok=True)
    meta_path.write_text(json.dumps(ident, sort_keys=True))
    todo = [s for s in stems if not (folder / f"{s}.png").is_file()]
    if todo:
        ir_files, vi_files = list_stems(data_root / "ir"), list_stems(data_root / "vi")
        check_stems("ir", data_root / "ir", ir_files, todo)
        check_stems("vi", data_root / "vi", vi_files, todo)
        if spec.kind == "baseline":
            func = _baseline_function()

            def fuse(ir: np.ndarray, vi: np.ndarray) -> object:
                a = torch.from_numpy(luminance(ir).transpose(2, 0, 1))[None]  # 1×1×H×W
                b = torch.from_numpy(luminance(vi).transpose(2, 0, 1))[None]  # 1×1×H×W
                return func(spec.location, a, b)

        else:
            fuser = _fuser_class().from_checkpoint(spec.location)

            def fuse(ir: np.ndarray, vi: np.ndarray) -> object:
                a = torch.from_numpy(luminance(ir).transpose(2, 0, 1))[None]  # 1×1×H×W
                b = torch.from_numpy(vi.transpose(2, 0, 1).copy())[None]  # 1×C×H×W
                with torch.no_grad():
                    return fuser.fuse(a, b)

        log(f"[dock] fusing {len(todo)} pair(s) for source {spec.name!r} -> {folder}")
        for stem in todo:
            ir, vi = read_image(ir_files[stem]), read_image(vi_files[stem])
            fused = _as_image(fuse(ir, vi), f"source {spec.name!r}, stem {stem}")
            if fused.shape[:2] != ir.shape[:2]:
                raise DockingError(
                    f"source {spec.name!r}, stem {stem}: fused image is {fused.shape[1]}×{fused.shape[0]}, "
                    f"the pair is {ir.shape[1]}×{ir.shape[0]}"
                )
            write_image(folder / f"{stem}.png", fused)
    return {s: folder / f"{s}.png" for s in stems}
