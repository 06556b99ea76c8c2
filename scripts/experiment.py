#!/usr/bin/env python3
"""Experiments anyone can regenerate: run one (resumable, two jobs side by side), then render the
tables of README.md and docs/ from the committed results.

  python3 scripts/experiment.py list
  python3 scripts/experiment.py run interp [--jobs 2] [--quick] [--results results]
  python3 scripts/experiment.py render [--check] [--results results]

`run` writes results/<experiment>/results.json (every number per seed, the commit, the CPU, cores,
threads, GEMM backend and wall times); `--quick` runs the declaration's small form into
runs/quick/ and, unless --results says otherwise, build/quick-results/. The declarations are
experiments/*.json (scripts/exp/runner.py describes them); the modules that read their outputs,
and the claims and verdicts, are scripts/exp/*.py.
"""
import argparse
import importlib
import json
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from exp import render, runner  # noqa: E402

ROOT = runner.ROOT


def log(msg):
    sys.stderr.write(f"[{time.strftime('%H:%M:%S')}] {msg}\n")
    sys.stderr.flush()


def cmd_run(a):
    exp = runner.Experiment(a.experiment)
    results_dir = Path(a.results or ("build/quick-results" if a.quick else "results"))
    monet = str(Path(a.monet).resolve())
    if not Path(monet).exists():
        raise SystemExit(f"experiment: no monet program at {a.monet} (build it: ./test.sh, or --monet)")
    at_start = runner.commit()
    side_by_side = a.jobs or exp.decl.get("jobs", 2)
    jobs, threads, elapsed, errors = runner.run(exp, a.quick, side_by_side, monet, log)
    if errors:
        raise SystemExit("experiment: " + "; ".join(errors))
    mod = importlib.import_module(f"exp.{exp.decl['collect']}")
    matrix = exp.matrix(a.quick)
    out = {"experiment": exp.name, "title": exp.decl["title"], "collect": exp.decl["collect"],
           "quick": a.quick, "order": next(iter(matrix.values()), []), "jobs": []}
    wall = 0.0
    for j in jobs:
        w = j.wall()
        wall += sum(w.values())
        out["jobs"].append(dict(j.params, seed=j.seed, wall=w, numbers=mod.collect(j)))
    logs = [j.run.parent / f"{j.name}.{next(iter(exp.decl['steps']))}.log" for j in jobs]
    out["meta"] = dict(runner.machine(threads, logs, at_start), wall_seconds=wall, elapsed_seconds=elapsed)
    target = ROOT / results_dir / exp.name / "results.json"
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_suffix(".tmp")
    tmp.write_text(json.dumps(out, indent=1, sort_keys=True) + "\n")
    os.replace(tmp, target)
    log(f"wrote {target.relative_to(ROOT)} ({len(jobs)} jobs, {wall / 60:.1f} min of work)")


def cmd_render(a):
    results_dir = ROOT / (a.results or "results")
    out_dir = Path(a.out).resolve() if a.out else None
    stale = render.render(ROOT, results_dir, check=a.check, out_dir=out_dir)
    if a.check and stale:
        raise SystemExit("render: these blocks differ from what the committed results give "
                         "(run `python3 scripts/experiment.py render`):\n  " + "\n  ".join(stale))
    log(f"{len(stale)} block(s) {'differ' if a.check else 'rewritten'}")


def cmd_list(_):
    for f in sorted((ROOT / "experiments").glob("*.json")):
        d = json.loads(f.read_text())
        res = ROOT / "results" / f.stem / "results.json"
        print(f"{f.stem:12} {d['title']}  [{'results committed' if res.exists() else 'not run'}]")


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="command", required=True)
    r = sub.add_parser("run", help="run an experiment (finished steps are skipped)")
    r.add_argument("experiment")
    r.add_argument("--jobs", type=int, help="jobs side by side (default: the declaration's "
                   "\"jobs\", else 2)")
    r.add_argument("--quick", action="store_true", help="the small form, for tests")
    r.add_argument("--results", help="results folder (default: results, or build/quick-results)")
    r.add_argument("--monet", default="build/monet", help="the program (default: %(default)s)")
    r.set_defaults(func=cmd_run)
    g = sub.add_parser("render", help="rewrite the results blocks of README.md and docs/")
    g.add_argument("--check", action="store_true", help="fail if a block differs; write nothing")
    g.add_argument("--results", help="results folder (default: results)")
    g.add_argument("--out", help="write the rendered documents here instead of in place")
    g.set_defaults(func=cmd_render)
    sub.add_parser("list", help="the declared experiments").set_defaults(func=cmd_list)
    a = p.parse_args()
    if (getattr(a, "jobs", None) or 1) < 1:
        p.error("--jobs must be at least 1")
    a.func(a)


if __name__ == "__main__":
    main()
