"""Retrain the reference STFuse model and its ablations from scratch, then regenerate docs/results.md.

    python experiments/reproduce.py --budget cpu            # what produced the committed weights (2-core CPU)
    python experiments/reproduce.py --budget gpu            # the same recipe at GPU scale
    python experiments/reproduce.py --skip-train            # re-evaluate existing runs only

Stages (each a LightningCLI run, exactly what `make train-mfif` / `make transfer-ivif` run):
1. source stage on synthetic multi-focus pairs from DATA/train/natural (420 all-in-focus images);
2. target stage on DATA/train/ivif/{roadscene,msrs} (171 + 12 pairs), three variants on one budget:
   full STFuse, transfer without L_g (no_guidance), and no transfer (IVIF from scratch);
3. the full model's network is exported to src/stfuse/weights/stfuse_default.safetensors with its config,
   seed, command, data and wall time;
4. every model and the classical baselines fuse TNO-25, RoadScene-50 and MSRS-20, and the `cddfuse` preset
   scores them (experiments/results.py writes the tables).
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

BUDGETS = {
    # steps, crops and batch sizes per stage; the three IVIF variants share one budget.
    "cpu": {"preset": "small", "mfif_steps": 400, "ivif_steps": 120, "crop": 96, "batch": 8, "workers": 2,
            "trainer": "experiments/reference/cpu.yaml"},
    "gpu": {"preset": "base", "mfif_steps": 20000, "ivif_steps": 6000, "crop": 192, "batch": 16, "workers": 8,
            "trainer": "experiments/reference/gpu.yaml"},
}  # fmt: skip

VARIANTS = {
    "stfuse": [],
    "no_guidance": ["--config", "experiments/ablations/no_guidance.yaml"],
    "no_transfer": ["--config", "experiments/ablations/no_transfer.yaml"],
}


def run(command: list[str], log: Path) -> float:
    """Run a CLI command, tee its output to ``log``; return the wall time in seconds."""
    log.parent.mkdir(parents=True, exist_ok=True)
    print("$ " + shlex.join(command), flush=True)
    started = time.perf_counter()
    with log.open("w") as handle:
        process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=REPO)
        assert process.stdout is not None
        for line in process.stdout:
            handle.write(line)
            if "Epoch" not in line:  # keep the console readable; the log has the progress bars
                sys.stdout.write(line)
        code = process.wait()
    if code != 0:
        raise SystemExit(f"command failed with exit code {code}; see {log}")
    return time.perf_counter() - started


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--budget", choices=sorted(BUDGETS), default="cpu")
    parser.add_argument("--data-root", default=os.environ.get("STFUSE_DATA", str(REPO.parent / "shared" / "data")))
    parser.add_argument("--out", default="outputs/reproduce")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--skip-train", action="store_true", help="only export and evaluate existing runs")
    parser.add_argument("--mfif-steps", type=int, help="override the budget's source-stage steps")
    parser.add_argument("--ivif-steps", type=int, help="override the budget's target-stage steps")
    parser.add_argument("--skip-mfif", action="store_true", help="reuse <out>/mfif/checkpoints/last.ckpt")
    parser.add_argument("--mfif-ckpt", help="with --skip-mfif: a source checkpoint elsewhere")
    parser.add_argument("--ivif-args", default="", help="extra CLI overrides for every target-stage run")
    parser.add_argument("--no-results", action="store_true", help="train only; skip export and evaluation")
    parser.add_argument("--variants", default=",".join(VARIANTS), help="comma-separated IVIF variants to train")
    args = parser.parse_args()

    budget = dict(BUDGETS[args.budget])
    budget["mfif_steps"] = args.mfif_steps or budget["mfif_steps"]
    budget["ivif_steps"] = args.ivif_steps or budget["ivif_steps"]
    data = Path(args.data_root).resolve()
    out = (REPO / args.out).resolve()
    for needed in ("train/natural", "train/ivif/roadscene", "train/ivif/msrs", "ivif/tno", "mfif/lytro"):
        if not (data / needed).is_dir():
            raise SystemExit(f"data root {data} lacks {needed}; pass --data-root or set STFUSE_DATA")
    stfuse = [sys.executable, "-m", "stfuse", "fit"]
    net = json.dumps({"preset": budget["preset"]})
    timings: dict[str, float] = {}
    mfif_ckpt = Path(args.mfif_ckpt).resolve() if args.mfif_ckpt else out / "mfif" / "checkpoints" / "last.ckpt"

    if not args.skip_train:
        mfif_cmd = stfuse + [
            "--config", "experiments/mfif.yaml", "--config", budget["trainer"],
            "--seed_everything", str(args.seed),
            "--trainer.default_root_dir", str(out / "mfif"),
            "--trainer.max_steps", str(budget["mfif_steps"]),
            "--trainer.val_check_interval", str(max(1, budget["mfif_steps"] // 2)),
            "--model.init_args.net", net,
            "--data.init_args.roots", json.dumps([str(data / "train" / "natural")]),
            "--data.init_args.real_val_root", str(data / "mfif" / "lytro"),
            "--data.init_args.crop_size", str(budget["crop"]),
            "--data.init_args.batch_size", str(budget["batch"]),
            "--data.init_args.num_workers", str(budget["workers"]),
            "--data.init_args.samples_per_epoch", str(budget["mfif_steps"] * budget["batch"]),
            "--data.init_args.val_samples", "32",
            "--data.init_args.cache_images", "true",
        ]  # fmt: skip
        if args.skip_mfif:
            if not mfif_ckpt.is_file():
                raise SystemExit(f"--skip-mfif needs {mfif_ckpt}")
            previous = out / "timings.json"
            if previous.is_file():
                timings.update(json.loads(previous.read_text()).get("seconds", {}))
        else:
            timings["mfif"] = run(mfif_cmd, out / "logs" / "mfif.log")
        steps_per_epoch = max(1, (183 - 8) // budget["batch"])
        for variant in [v for v in args.variants.split(",") if v]:
            ivif_cmd = stfuse + [
                "--config", "experiments/ivif.yaml", *VARIANTS[variant], "--config", budget["trainer"],
                "--seed_everything", str(args.seed),
                "--trainer.default_root_dir", str(out / f"ivif_{variant}"),
                "--trainer.max_steps", str(budget["ivif_steps"]),
                "--trainer.check_val_every_n_epoch", str(max(1, budget["ivif_steps"] // steps_per_epoch // 2)),
                "--model.init_args.source_ckpt", str(mfif_ckpt),
                "--data.init_args.ivif.init_args.train_roots",
                json.dumps([str(data / "train" / "ivif" / "roadscene"), str(data / "train" / "ivif" / "msrs")]),
                "--data.init_args.ivif.init_args.val_roots", json.dumps([str(data / "ivif" / "tno")]),
                "--data.init_args.ivif.init_args.crop_size", str(budget["crop"]),
                "--data.init_args.ivif.init_args.batch_size", str(budget["batch"]),
                "--data.init_args.ivif.init_args.num_workers", str(budget["workers"]),
            ]  # fmt: skip
            ivif_cmd += shlex.split(args.ivif_args)
            if variant == "no_transfer":
                ivif_cmd += ["--model.init_args.net", net]
            else:
                ivif_cmd += [
                    "--data.init_args.replay.init_args.roots", json.dumps([str(data / "train" / "natural")]),
                    "--data.init_args.replay.init_args.crop_size", str(budget["crop"]),
                    "--data.init_args.replay.init_args.batch_size", str(max(2, budget["batch"] // 2)),
                    "--data.init_args.replay.init_args.num_workers", "1",
                    "--data.init_args.replay.init_args.samples_per_epoch", str(steps_per_epoch * budget["batch"]),
                    "--data.init_args.replay.init_args.cache_images", "true",
                ]  # fmt: skip
            timings[f"ivif_{variant}"] = run(ivif_cmd, out / "logs" / f"ivif_{variant}.log")
        (out / "timings.json").write_text(json.dumps({"budget": args.budget, **budget, "seconds": timings}, indent=2))

    if args.no_results:
        return 0
    results_cmd = [sys.executable, str(REPO / "experiments" / "results.py"), "--out", str(out), "--data-root", str(data),
                   "--budget", args.budget]  # fmt: skip
    run(results_cmd, out / "logs" / "results.log")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
