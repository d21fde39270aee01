"""End-to-end training throughput: a real ``stfuse fit`` on the real training folders against the bare step.

    python benchmarks/train_e2e.py                      # both stages, 300 steps each, the cpu budget's schedule
    python benchmarks/train_e2e.py --stages ivif --steps 200 --threads 1

For each stage this runs, in one invocation:
1. the *bare* step (benchmarks/train_step.py's ``measure``: network, losses, teacher and replay for the target
   stage, AdamW update, on tensors already in memory) of the reference configuration;
2. a real ``fit`` through the CLI with exactly the command experiments/reproduce.py uses for the
   reference model (data loading and synthesis, logging, one validation and the checkpoints included),
   timed phase by phase by :class:`stfuse.utils.throughput.ThroughputMonitor`.

It prints one JSON object per stage with ``ratio`` = bare s/step ÷ end-to-end s/step (1.0 would mean
no overhead at all) and the per-step breakdown (data wait, step, validation, checkpoint). The fit here
validates once per ``--steps`` steps, more often than the reference schedule (once per 1000 source steps),
so its ratio is a lower bound for the real run. Needs the data root (``$STFUSE_DATA`` or ../shared/data).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "experiments"))
sys.path.insert(0, str(REPO / "benchmarks"))

from stfuse.runtime import find_data_root  # noqa: E402


def bare_step(stage: str, preset: str, crop: int, batch: int, repeats: int) -> float:
    import torch
    from train_step import measure

    runs = [measure(stage, {"preset": preset}, crop, batch, torch.device("cpu"), "fp32", 3, repeats)["median_s_per_step"]
            for _ in range(3)]  # fmt: skip
    return statistics.median(runs)


def end_to_end(stage: str, steps: int, threads: int, data: Path, work: Path) -> dict:
    import reproduce

    budget = dict(reproduce.BUDGETS["cpu"])
    budget["mfif_steps"] = steps
    if stage == "mfif":
        command = reproduce.mfif_command(budget, data, work / "mfif", 0)
    else:
        from stfuse.models import build_network
        from stfuse.models.checkpoint import save_network

        source = save_network(build_network({"preset": budget["preset"]}), work / "source.safetensors")
        command = reproduce.ivif_command(budget, data, work / "ivif", "stfuse", 0, steps, source, [])
    timings = work / f"{stage}_times.json"
    command += ["--trainer.callbacks+=stfuse.utils.throughput.ThroughputMonitor",
                f"--trainer.callbacks.path={timings}", "--trainer.enable_progress_bar", "false"]  # fmt: skip
    env = {
        **os.environ,
        "OMP_NUM_THREADS": str(threads),
        "OMP_WAIT_POLICY": "PASSIVE",
        "WANDB_MODE": "disabled",
    }
    result = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True)
    if result.returncode != 0:
        raise SystemExit(
            f"the {stage} fit failed (exit {result.returncode}):\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
        )
    return json.loads(timings.read_text())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stages", default="mfif,ivif")
    parser.add_argument(
        "--steps", type=int, default=300, help="optimizer steps of each real fit (default 300)"
    )
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--repeats", type=int, default=10, help="timed bare steps per measurement")
    parser.add_argument("--data-root", default=str(find_data_root()))
    args = parser.parse_args()

    import reproduce
    import torch

    torch.set_num_threads(args.threads)
    data = Path(args.data_root).resolve()
    if not (data / "train" / "natural").is_dir():
        raise SystemExit(f"{data} has no train/natural: set STFUSE_DATA or pass --data-root")
    budget = reproduce.BUDGETS["cpu"]
    results = []
    with tempfile.TemporaryDirectory(prefix="stfuse_e2e_") as tmp:
        for stage in [s for s in args.stages.split(",") if s]:
            bare = bare_step(stage, budget["preset"], budget["crop"], budget["batch"], args.repeats)
            timed = end_to_end(stage, args.steps, args.threads, data, Path(tmp))
            e2e = timed["end_to_end_s_per_step"]
            row = {
                "benchmark": "train_e2e", "stage": stage, "preset": budget["preset"], "crop": budget["crop"],
                "batch": budget["batch"], "threads": args.threads, "steps": args.steps,
                "bare_s_per_step": round(bare, 4), "end_to_end_s_per_step": e2e,
                "ratio": round(bare / e2e, 3) if e2e else None,
                "breakdown_s_per_step": timed["s_per_step"], "setup_s": timed["seconds"]["setup"],
            }  # fmt: skip
            results.append(row)
            print(json.dumps(row), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
