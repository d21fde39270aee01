"""mAP@0.5 and mAP@0.5:0.95, overall and per class, from pycocotools' COCOeval.

Boxes are scored in the pixel frame of the original image (640×480 for MSRS), so every source is measured
in the same frame whatever size the detector ran at. A class without ground truth in the test set gets
NaN and is left out of the overall mean, as COCOeval does.
"""

from __future__ import annotations

import contextlib
import io
import math
from collections.abc import Mapping, Sequence

import numpy as np
import torch

from stfuse.docking.labels import Boxes

Detections = tuple[torch.Tensor, torch.Tensor, torch.Tensor]  # xyxy normalised, scores, labels


def to_coco(
    gts: Mapping[str, Boxes],
    dets: Mapping[str, Detections],
    frames: Mapping[str, tuple[int, int]],
    num_classes: int,
) -> tuple[dict, list[dict]]:
    """Ground truth as a COCO data-set dict and detections as a COCO result list (xywh pixels)."""
    images, annotations, results = [], [], []
    for image_id, stem in enumerate(sorted(gts), start=1):
        w, h = frames[stem]
        images.append({"id": image_id, "file_name": stem, "width": w, "height": h})
        scale = torch.tensor([w, h, w, h], dtype=torch.float32)
        for box, cls in zip((gts[stem].xyxy * scale).tolist(), gts[stem].labels.tolist()):
            bw, bh = box[2] - box[0], box[3] - box[1]
            annotations.append(
                {
                    "id": len(annotations) + 1,
                    "image_id": image_id,
                    "category_id": int(cls) + 1,
                    "bbox": [box[0], box[1], bw, bh],
                    "area": bw * bh,
                    "iscrowd": 0,
                }
            )
        if stem in dets:
            xyxy, scores, labels = dets[stem]
            for box, score, cls in zip((xyxy * scale).tolist(), scores.tolist(), labels.tolist()):
                results.append(
                    {
                        "image_id": image_id,
                        "category_id": int(cls) + 1,
                        "bbox": [box[0], box[1], box[2] - box[0], box[3] - box[1]],
                        "score": float(score),
                    }
                )
    dataset = {
        "images": images,
        "annotations": annotations,
        "categories": [{"id": k + 1, "name": str(k)} for k in range(num_classes)],
    }
    return dataset, results


def mean_average_precision(
    gts: Mapping[str, Boxes],
    dets: Mapping[str, Detections],
    frames: Mapping[str, tuple[int, int]],
    class_names: Sequence[str],
) -> dict[str, object]:
    """``{"map": , "map50": , "per_class": {name: {"ap": , "ap50": , "num_gt": }}}`` (floats, NaN if no GT)."""
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    num_classes = len(class_names)
    dataset, results = to_coco(gts, dets, frames, num_classes)
    num_gt = [sum(1 for a in dataset["annotations"] if a["category_id"] == k + 1) for k in range(num_classes)]
    ap = [math.nan] * num_classes
    ap50 = [math.nan] * num_classes
    if results:
        with contextlib.redirect_stdout(io.StringIO()):
            coco_gt = COCO()
            coco_gt.dataset = dataset
            coco_gt.createIndex()
            coco_dt = coco_gt.loadRes(results)
            evaluator = COCOeval(coco_gt, coco_dt, iouType="bbox")
            evaluator.evaluate()
            evaluator.accumulate()
        # precision: T (IoU thresholds) × R (recall points) × K (classes) × A (areas, 0 = all) × M (max dets)
        precision = evaluator.eval["precision"][:, :, :, 0, -1]
        iou50 = int(np.argmin(np.abs(evaluator.params.iouThrs - 0.5)))
        for k in range(num_classes):
            p = precision[:, :, k]
            if num_gt[k] and (p > -1).any():
                ap[k] = float(p[p > -1].mean())
                p50 = p[iou50]
                ap50[k] = float(p50[p50 > -1].mean())
    else:
        ap = [0.0 if n else math.nan for n in num_gt]
        ap50 = list(ap)
    valid = [k for k in range(num_classes) if num_gt[k]]
    return {
        "map": float(np.mean([ap[k] for k in valid])) if valid else math.nan,
        "map50": float(np.mean([ap50[k] for k in valid])) if valid else math.nan,
        "per_class": {
            name: {"ap": ap[k], "ap50": ap50[k], "num_gt": num_gt[k]} for k, name in enumerate(class_names)
        },
    }
