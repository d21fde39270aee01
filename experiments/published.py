"""Published and measured reference numbers the results tables compare with (same pairs, same metric code)."""

from __future__ import annotations

SETS = {"tno": "TNO-25", "roadscene": "RoadScene-50", "msrs": "MSRS-20"}
TABLE_METRICS = ["EN", "SD", "SF", "MI", "SCD", "VIF", "Qabf", "SSIM"]
#: CDDFuse (CVPR 2023), Table 1 of the paper, on the same pairs with the same metric code.
CDDFUSE = {
    "tno": dict(zip(TABLE_METRICS, [7.12, 46.00, 13.15, 2.19, 1.76, 0.77, 0.54, 1.03])),
    "roadscene": dict(zip(TABLE_METRICS, [7.44, 54.67, 16.36, 2.30, 1.81, 0.69, 0.52, 0.98])),
}
#: SeAFusion's released outputs scored with this project's metric code (issue 11 of the tracker).
SEAFUSION = {
    "tno": dict(zip(TABLE_METRICS, [7.10, 44.20, 12.41, 2.00, 1.72, 0.69, 0.51, 0.99])),
    "roadscene": dict(zip(TABLE_METRICS, [7.43, 54.14, 16.21, 2.25, 1.74, 0.68, 0.52, 0.92])),
    "msrs": dict(zip(TABLE_METRICS, [6.49, 44.65, 11.72, 2.75, 1.75, 0.99, 0.67, 0.99])),
}
