"""Pack the training data compactly: only what training reads, as 8-bit grey PNGs in the same layout.

    python experiments/pack_data.py --data-root ../shared/data --out outputs/pack

Both stages train on luminance only, so colour is dropped from lossless files: every PNG/BMP/TIFF image of
``train/natural`` and ``train/ivif`` becomes its Y channel (BT.601, as training computes it, rounded to 8 bits).
JPEG files are copied byte for byte (re-encoding their Y losslessly would make them larger); training reads
their Y as before. The layout is kept (``train/natural/...``, ``train/ivif/{roadscene,msrs}/{ir,vi}``), so the
pack is a data root like any other: ``experiments/reproduce.py --data-root outputs/pack --no-results``. File
stems are unchanged, so the held-out validation split is the same pairs. About 56 MiB instead of 117 MiB:
small enough to carry to a GPU machine with the code (experiments/gpu_recipe.sh).
"""

from __future__ import annotations

import argparse
import os
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import cv2
import numpy as np

from data_modules.io import IMAGE_EXTENSIONS
from stfuse.runtime import find_data_root

REPO = Path(__file__).resolve().parents[1]


def to_y8(path: Path) -> np.ndarray:
    from data_modules.io import read_image_array
    from data_modules.paired import luma

    image = read_image_array(path)  # H×W×C float in [0, 1]
    y = luma(image)[:, :, 0] if image.shape[2] == 3 else image[:, :, 0]
    return np.clip(np.rint(y * 255.0), 0, 255).astype(np.uint8)


JPEG_SUFFIXES = {".jpg", ".jpeg"}


def pack_one(source: Path, target: Path) -> int:
    if target.is_file():
        return target.stat().st_size
    target.parent.mkdir(parents=True, exist_ok=True)
    if source.suffix.lower() in JPEG_SUFFIXES:
        payload = source.read_bytes()
    else:
        ok, encoded = cv2.imencode(".png", to_y8(source), [cv2.IMWRITE_PNG_COMPRESSION, 6])
        if not ok:
            raise SystemExit(f"could not encode {source}")
        payload = encoded.tobytes()
    tmp = target.with_name(target.name + ".tmp")
    tmp.write_bytes(payload)
    os.replace(tmp, target)
    return len(payload)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-root", default=str(find_data_root()))
    parser.add_argument("--out", default="outputs/pack")
    args = parser.parse_args()
    data, out = Path(args.data_root).resolve(), (REPO / args.out).resolve()
    folders = [data / "train" / "natural", data / "train" / "ivif"]
    missing = [str(f) for f in folders if not f.is_dir()]
    if missing:
        raise SystemExit(
            f"missing training folder(s): {', '.join(missing)}; pass --data-root or set STFUSE_DATA"
        )
    jobs = []
    for folder in folders:
        for source in sorted(folder.rglob("*")):
            if source.suffix.lower() in IMAGE_EXTENSIONS and "mask" not in source.relative_to(data).parts:
                target = out / source.relative_to(data)
                jobs.append(
                    (source, target if source.suffix.lower() in JPEG_SUFFIXES else target.with_suffix(".png"))
                )
    with ThreadPoolExecutor(max_workers=os.cpu_count() or 1) as pool:
        sizes = list(pool.map(lambda job: pack_one(*job), jobs))
    print(f"packed {len(jobs)} images into {out}: {sum(sizes) / 2**20:.1f} MiB")
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(REPO))
    raise SystemExit(main())
