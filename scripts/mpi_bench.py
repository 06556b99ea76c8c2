#!/usr/bin/env python3
"""Data and expert parallel training measured (docs/results/mpi.md): tokens/s of `monet train` on the bench
configs as 1 process x 2 threads against 2 MPI ranks x 1 thread (data parallel, and for the SMoE
also expert parallel), with the payload bytes each rank's collectives carry per step and the
share of the step spent inside them (waiting for the other rank included).

    python3 scripts/mpi_bench.py [--sizes 128,256] [--steps 30] [--repeats 3] [--out runs/mpi_bench]

Each layout trains the config for --steps steps (evaluation off but for one window at the end);
tokens/s is the run's own figure (`done: ... tokens/s`), the median of --repeats runs. Runs one
after another, never two at once. Prints a Markdown table; the logs stay under --out.
"""
import argparse
import json
import os
import re
import statistics
import subprocess
import sys

MPIRUN = ["mpirun", "--oversubscribe", "--allow-run-as-root",
          "--mca", "btl_vader_single_copy_mechanism", "none", "-np", "2", "--bind-to", "core"]

# (kind, label, ranks, extra --set)
LAYOUTS = [
    ("dense", "1 process x 2 threads", 1, []),
    ("dense", "2 ranks x 1 thread, data parallel", 2, []),
    ("smoe", "1 process x 2 threads", 1, []),
    ("smoe", "2 ranks x 1 thread, data parallel", 2, []),
    ("smoe", "2 ranks x 1 thread, expert parallel", 2, ["run.expert_parallel=true"]),
    ("monet_vd", "1 process x 2 threads", 1, []),
    ("monet_vd", "2 ranks x 1 thread, data parallel", 2, []),
]


def run(monet, config, out, ranks, sets, steps):
    cmd = [monet, "train", "--config", config, "--out", out, "--force",
           "--set", f"run.steps={steps}", "--set", "run.eval_windows=1"]
    for s in sets:
        cmd += ["--set", s]
    env = dict(os.environ, OMP_NUM_THREADS=str(2 if ranks == 1 else 1))
    if ranks > 1:
        cmd = MPIRUN + cmd
    p = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if p.returncode != 0:
        sys.exit(f"mpi_bench: {' '.join(cmd)} failed ({p.returncode}):\n{p.stderr[-2000:]}")
    m = re.search(r"done: \d+ steps, (\d+) tokens/s", p.stdout)
    if not m:
        sys.exit(f"mpi_bench: no 'done' line from {' '.join(cmd)}")
    lines = [json.loads(line) for line in open(os.path.join(out, "log.jsonl"))]
    steps_log = [j for j in lines if "lr" in j]  # step lines (evaluation lines have no lr)
    return float(m.group(1)), steps_log


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                 formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    ap.add_argument("--monet", default="build/monet")
    ap.add_argument("--sizes", default="128,256", help="bench config widths d")
    ap.add_argument("--steps", type=int, default=30)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--out", default="runs/mpi_bench")
    a = ap.parse_args()
    print("| config | layout | tokens/s | vs 1 process | all-reduce bytes/step | "
          "all-to-all bytes/step | time in collectives |")
    print("|---|---|---:|---:|---:|---:|---:|")
    for d in a.sizes.split(","):
        base = {}
        for kind, label, ranks, sets in LAYOUTS:
            config = f"configs/bench_{kind}_d{d}.json"
            rates, logs = [], None
            for r in range(a.repeats):
                out = os.path.join(a.out, f"{kind}_d{d}_{ranks}_{len(sets)}_{r}")
                rate, logs = run(a.monet, config, out, ranks, sets, a.steps)
                rates.append(rate)
            rate = statistics.median(rates)
            base.setdefault(kind, rate)
            last = logs[-1]
            if ranks > 1:
                c = json.load(open(config))
                tokens = len(logs) * c["run"]["batch"] * c["model"]["context"]
                share = sum(s["comm_seconds"] for s in logs) / (tokens / rate)
                ar, aa = last["all_reduce_bytes"], last["all_to_all_bytes"]
                cols = f"{ar / 1e6:.2f} MB | {aa / 1e6:.2f} MB | {share:.0%}"
            else:
                cols = "– | – | –"
            print(f"| {kind} d{d} | {label} | {rate:,.0f} | {rate / base[kind]:.2f}x | {cols} |",
                  flush=True)


if __name__ == "__main__":
    main()
