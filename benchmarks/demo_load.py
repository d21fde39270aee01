"""`stfuse demo` wall time on this machine, alone and with two busy processes beside it (`yes > /dev/null`).

    python benchmarks/demo_load.py                  # both runs, default demo budget; JSON on stdout
    python benchmarks/demo_load.py --skip-idle      # only the run under load

The goals (issue 12): at most 3 minutes alone on 2 cores, and at most twice that with two busy processes.
The machine should be otherwise idle: the script prints the load average before each run.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

STFUSE = Path(sys.executable).parent / "stfuse"


def _demo(out: Path, extra: list[str]) -> dict[str, float]:
    load = os.getloadavg()[0]
    started = time.perf_counter()
    before = os.times()
    result = subprocess.run([str(STFUSE), "demo", "--out", str(out), *extra], capture_output=True, text=True)
    after = os.times()
    if result.returncode != 0:
        sys.exit(f"stfuse demo failed ({result.returncode}):\n{result.stderr[-3000:]}")
    return {
        "wall_s": round(time.perf_counter() - started, 1),
        "cpu_s": round(
            (after.children_user - before.children_user) + (after.children_system - before.children_system), 1
        ),
        "load_average_before": round(load, 2),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--skip-idle", action="store_true", help="only the run beside two busy processes")
    parser.add_argument(
        "--busy", type=int, default=2, help="busy processes beside the loaded run (default: 2)"
    )
    parser.add_argument("demo_args", nargs="*", help="extra `stfuse demo` arguments (after --)")
    args = parser.parse_args(argv)
    report: dict[str, object] = {
        "cpus": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    }
    folder = Path(tempfile.mkdtemp(prefix="stfuse-demo-bench-"))
    try:
        if not args.skip_idle:
            report["alone"] = _demo(folder / "alone", args.demo_args)
        busy = [subprocess.Popen(["yes"], stdout=subprocess.DEVNULL) for _ in range(args.busy)]
        try:
            time.sleep(2.0)
            report[f"beside_{args.busy}_busy"] = _demo(folder / "loaded", args.demo_args)
        finally:
            for process in busy:
                process.kill()
                process.wait()
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    if "alone" in report:
        loaded = report[f"beside_{args.busy}_busy"]["wall_s"]  # type: ignore[index]
        report["slowdown"] = round(loaded / report["alone"]["wall_s"], 2)  # type: ignore[index]
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
