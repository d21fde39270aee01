"""A compact CenterNet-style detector in plain torch, trained from scratch.

No pretrained weights can be downloaded here, and torchvision does not import beside the CPU torch, so the
downstream model is written out: a small residual encoder down to stride 32, a top-down feature pyramid
back to stride 4, and three heads on the stride-4 map:

- ``heatmap`` (K classes): a Gaussian peak at each object centre (penalty-reduced focal loss);
- ``size`` (2): log of box width and height in output cells (L1), so small pedestrians weigh as much as
  large cars;
- ``offset`` (2): sub-cell position of the centre (L1).

Every source goes through the identical network (same ``in_channels``), so differences in mAP come from the
images only.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

STRIDE = 4


class ConvBNAct(nn.Sequential):
    """conv → BatchNorm → ReLU."""

    def __init__(self, cin: int, cout: int, kernel: int = 3, stride: int = 1) -> None:
        super().__init__(
            nn.Conv2d(cin, cout, kernel, stride, kernel // 2, bias=False),
            nn.BatchNorm2d(cout),
            nn.ReLU(inplace=True),
        )


class ResidualBlock(nn.Module):
    """Two 3×3 convs with an identity skip."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.body = nn.Sequential(
            ConvBNAct(channels, channels),
            nn.Conv2d(channels, channels, 3, 1, 1, bias=False),
            nn.BatchNorm2d(channels),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(x + self.body(x))


class CenterNetDetector(nn.Module):
    """Heatmap + size + offset heads at stride 4; ``width`` scales every layer."""

    def __init__(self, num_classes: int = 3, in_channels: int = 1, width: int = 16) -> None:
        super().__init__()
        self.num_classes = num_classes
        self.in_channels = in_channels
        self.width = width
        c = [width, 2 * width, 3 * width, 4 * width, 6 * width]  # strides 2, 4, 8, 16, 32
        self.stem = ConvBNAct(in_channels, c[0], stride=2)
        self.stages = nn.ModuleList(
            nn.Sequential(
                ConvBNAct(c[i], c[i + 1], stride=2), *[ResidualBlock(c[i + 1]) for _ in range(depth)]
            )
            for i, depth in zip(range(4), (1, 2, 2, 1))
        )
        head = 2 * width
        self.lateral = nn.ModuleList(nn.Conv2d(ch, head, 1) for ch in c[1:])
        # the stride-4 map is the costliest part, so the three heads share one 3×3 trunk
        self.smooth = nn.Sequential(ConvBNAct(head, head), ConvBNAct(head, head))
        self.heatmap = nn.Conv2d(head, num_classes, 1)
        self.size = nn.Conv2d(head, 2, 1)
        self.offset = nn.Conv2d(head, 2, 1)
        # start from a 1% prior so the focal loss is not swamped by background at step 0
        nn.init.constant_(self.heatmap.bias, -math.log((1 - 0.01) / 0.01))

    @property
    def config(self) -> dict[str, int]:
        """Kwargs that rebuild this network."""
        return {"num_classes": self.num_classes, "in_channels": self.in_channels, "width": self.width}

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """``x`` N×C×H×W (H, W multiples of 32) → raw head maps N×·×H/4×W/4."""
        feats = []
        y = self.stem(x)
        for stage in self.stages:
            y = stage(y)
            feats.append(y)
        top = self.lateral[-1](feats[-1])
        for lateral, feat in zip(reversed(self.lateral[:-1]), reversed(feats[:-1])):
            top = lateral(feat) + F.interpolate(top, size=feat.shape[-2:], mode="nearest")
        top = self.smooth(top)
        return {"heatmap": self.heatmap(top), "size": self.size(top), "offset": self.offset(top)}


@dataclass
class Targets:
    """Dense training targets on the stride-4 grid."""

    heatmap: torch.Tensor  # N×K×h×w in [0, 1], exactly 1 at object centres
    size: torch.Tensor  # N×2×h×w, log box size in cells, valid where mask
    offset: torch.Tensor  # N×2×h×w, centre minus its cell, valid where mask
    mask: torch.Tensor  # N×1×h×w bool, centre cells


def build_targets(
    boxes: list[torch.Tensor], labels: list[torch.Tensor], num_classes: int, out_hw: tuple[int, int]
) -> Targets:
    """Render pixel-space xyxy boxes (in input pixels) into CenterNet targets.

    The Gaussian follows the box shape (σ = 0.54·side/6 per axis, as in TTFNet), floored at half a cell so
    that tiny pedestrians still get a neighbourhood of soft negatives.
    """
    n = len(boxes)
    h, w = out_hw
    heat = torch.zeros(n, num_classes, h, w)
    size = torch.zeros(n, 2, h, w)
    offset = torch.zeros(n, 2, h, w)
    mask = torch.zeros(n, 1, h, w, dtype=torch.bool)
    ys = torch.arange(h, dtype=torch.float32).view(h, 1)
    xs = torch.arange(w, dtype=torch.float32).view(1, w)
    for i, (bxs, lbs) in enumerate(zip(boxes, labels)):
        for box, cls in zip(bxs.tolist(), lbs.tolist()):
            x0, y0, x1, y1 = (v / STRIDE for v in box)
            bw, bh = x1 - x0, y1 - y0
            if bw <= 0 or bh <= 0:
                continue
            cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
            ix, iy = min(int(cx), w - 1), min(int(cy), h - 1)
            sx, sy = max(0.54 * bw / 6, 0.5), max(0.54 * bh / 6, 0.5)
            g = torch.exp(-((xs - ix) ** 2) / (2 * sx * sx) - ((ys - iy) ** 2) / (2 * sy * sy))
            heat[i, cls] = torch.maximum(heat[i, cls], g)
            heat[i, cls, iy, ix] = 1.0
            size[i, :, iy, ix] = torch.tensor([math.log(bw), math.log(bh)])
            offset[i, :, iy, ix] = torch.tensor([cx - ix, cy - iy])
            mask[i, 0, iy, ix] = True
    return Targets(heat, size, offset, mask)


def focal_loss(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """CenterNet's penalty-reduced focal loss, normalised by the number of objects."""
    pred = torch.sigmoid(logits.float()).clamp(1e-4, 1 - 1e-4)
    pos = target.eq(1).float()
    neg = 1.0 - pos
    pos_loss = torch.log(pred) * (1 - pred) ** 2 * pos
    neg_loss = torch.log(1 - pred) * pred**2 * (1 - target) ** 4 * neg
    num_pos = pos.sum().clamp(min=1.0)
    return -(pos_loss.sum() + neg_loss.sum()) / num_pos


def detection_loss(out: dict[str, torch.Tensor], targets: Targets) -> dict[str, torch.Tensor]:
    """Total loss and its parts: heatmap focal + L1 on log size + L1 on offset at centre cells."""
    dev = out["heatmap"].device
    heat = targets.heatmap.to(dev)
    mask = targets.mask.to(dev).float()
    num = mask.sum().clamp(min=1.0)
    hm = focal_loss(out["heatmap"], heat)
    size = (F.l1_loss(out["size"].float(), targets.size.to(dev), reduction="none") * mask).sum() / num
    off = (F.l1_loss(out["offset"].float(), targets.offset.to(dev), reduction="none") * mask).sum() / num
    total = hm + size + off
    return {"loss": total, "heatmap": hm, "size": size, "offset": off}


@torch.no_grad()
def decode(
    out: dict[str, torch.Tensor], max_det: int = 100, min_score: float = 1e-3
) -> list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
    """Peaks of the heatmap (3×3 max-pool NMS) → per image (xyxy in input pixels, scores, labels)."""
    heat = torch.sigmoid(out["heatmap"].float())
    n, k, h, w = heat.shape
    keep = heat == F.max_pool2d(heat, 3, stride=1, padding=1)
    heat = heat * keep
    scores, idx = heat.reshape(n, -1).topk(min(max_det, k * h * w))
    cls = idx // (h * w)
    cell = idx % (h * w)
    cy, cx = (cell // w).float(), (cell % w).float()
    results = []
    for i in range(n):
        off = out["offset"][i].float().reshape(2, -1)[:, cell[i]]
        size = out["size"][i].float().reshape(2, -1)[:, cell[i]].clamp(max=8.0).exp()
        px, py = (cx[i] + off[0]) * STRIDE, (cy[i] + off[1]) * STRIDE
        bw, bh = size[0] * STRIDE, size[1] * STRIDE
        xyxy = torch.stack([px - bw / 2, py - bh / 2, px + bw / 2, py + bh / 2], dim=1)
        good = scores[i] >= min_score
        results.append((xyxy[good].cpu(), scores[i][good].cpu(), cls[i][good].cpu()))
    return results
