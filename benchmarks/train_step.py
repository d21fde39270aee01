"""Training-step throughput of both stages and both presets; prints JSON.

    python benchmarks/train_step.py                       # 256×256, batch 16, CPU (and CUDA when present)
    python benchmarks/train_step.py --size 128 --batch 8 --repeats 3 --presets small

Each measurement runs the stage's real training step (network, losses, guidance teacher and MFIF replay
for the target stage, AdamW update) on random tensors of the given size; data loading is excluded
(benchmarks/dataloader.py measures it). The ``cem=off`` variant of each preset is the in-run baseline:
the cost of the cross-feature enhancement module is the difference. Medians over ``--repeats`` timed
steps after ``--warmup`` untimed ones.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time

import torch

from stfuse.losses import GuidanceLoss, IVIFFusionLoss, MFIFLoss
from stfuse.models import build_network


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def measure(stage: str, config: dict, size: int, batch: int, device: torch.device, precision: str,
            warmup: int, repeats: int, layout: str = "contiguous") -> dict:  # fmt: skip
    memory_format = torch.channels_last if layout == "channels_last" else torch.contiguous_format
    net = build_network(config).to(device, memory_format=memory_format)
    teacher = (
        build_network(config).to(device, memory_format=memory_format).eval().requires_grad_(False)
        if stage == "ivif"
        else None
    )
    optimizer = torch.optim.AdamW(net.parameters(), lr=1e-4)
    fusion, guidance, supervised = (
        IVIFFusionLoss().to(device),
        GuidanceLoss("feature_in"),
        MFIFLoss().to(device),
    )
    a, b, g = (torch.rand(batch, 1, size, size, device=device) for _ in range(3))
    replay = tuple(torch.rand(max(1, batch // 2), 1, size, size, device=device) for _ in range(3))
    autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=precision == "bf16")

    def step() -> None:
        with autocast:
            if stage == "mfif":
                loss = supervised(net(a, b), g)["total"]
            else:
                fused, features = net(a, b, return_features=True)
                with torch.no_grad():
                    t_fused, t_features = teacher(a, b, return_features=True)
                loss = fusion(fused, a, b)["total"] + guidance(fused, t_fused, features, t_features)
                loss = loss + 0.5 * supervised(net(replay[0], replay[1]), replay[2])["total"]
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    for _ in range(warmup):
        step()
    times = []
    for _ in range(repeats):
        _sync(device)
        start = time.perf_counter()
        step()
        _sync(device)
        times.append(time.perf_counter() - start)
    median = statistics.median(times)
    return {
        "stage": stage, "preset": config["preset"], "cem": config.get("cem", "full"), "device": device.type,
        "precision": precision, "layout": layout, "size": size, "batch": batch, "median_s_per_step": round(median, 4),
        "steps_per_s": round(1 / median, 3), "images_per_s": round(batch / median, 2),
        "params": sum(p.numel() for p in net.parameters()), "repeats": repeats,
    }  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--presets", default="small,base")
    parser.add_argument("--stages", default="mfif,ivif")
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--no-baseline", action="store_true", help="skip the cem=off in-run baseline")
    parser.add_argument(
        "--layouts", default="contiguous", help="memory layouts to time: contiguous, channels_last or both"
    )
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    devices = [torch.device("cpu")] + ([torch.device("cuda")] if torch.cuda.is_available() else [])
    results = []
    for device in devices:
        precisions = ["fp32", "bf16"] if device.type == "cuda" else ["fp32"]
        for preset in args.presets.split(","):
            for cem in ["full"] + ([] if args.no_baseline else ["off"]):
                for stage in args.stages.split(","):
                    for precision in precisions:
                        for layout in args.layouts.split(","):
                            config = {"preset": preset, "cem": cem}
                            results.append(measure(stage, config, args.size, args.batch, device, precision,
                                                   args.warmup, args.repeats, layout))  # fmt: skip
                            print(json.dumps(results[-1]), flush=True)
    print(json.dumps({"benchmark": "train_step", "torch": torch.__version__, "threads": args.threads,
                      "cpu": platform.processor() or platform.machine(), "results": results}, indent=2))  # fmt: skip


if __name__ == "__main__":
    main()
