"""Run the benchmarks one after another (each prints its own figures and ratios).

    .venv/bin/python bench/run_all.py [--quick]

They measure on the machine as it is: run them when nothing else is busy, and compare ratios
taken within one run rather than absolute numbers across runs. `--quick` skips the slow parts
(the 1M-cell synthetic store, the 50k-point projection, the experiment); bench/distill.py (the
ReBase vs baselines experiment, hours on a CPU) is never started from here.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    runs = [
        ["datastore.py", "--configs", "60" if args.quick else "150"],
        ["hnsw.py", "--cells", "50000" if args.quick else "200000", "--unique"],
        ["retrieval.py", "--sizes", "bundled", *([] if args.quick else ["1000000"])],
        ["transform.py", "--rows", "4" if args.quick else "8"],
        ["plans.py", *(["--presets", "nli", "squad"] if args.quick else [])],
        ["llm_throughput.py", *(["--skip-local"] if args.quick else [])],
        ["diversity.py", "--sizes", "2000", *([] if args.quick else ["10000", "50000"])],
    ]
    for script, *rest in runs:
        started = time.perf_counter()
        print(f"\n=== bench/{script} {' '.join(rest)}", flush=True)
        code = subprocess.call([sys.executable, str(HERE / script), *rest])
        print(f"=== {script}: exit {code}, {time.perf_counter() - started:.0f} s", flush=True)


if __name__ == "__main__":
    main()
