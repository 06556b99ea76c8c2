"""Running a declared experiment: its jobs (one per combination of the matrix and a seed), each a
list of `monet` steps, two jobs side by side on two cores, finished steps skipped.

A declaration (experiments/<name>.json) holds:
  title      one line
  seeds      the seeds; "{seed}" in a step's arguments (run.seed changes initialisation and data order)
  matrix     {"kind": ["monet_vd", ...]}: one job per combination and seed; "{kind}" in arguments
  run        the job's folder, "runs/<name>/{kind}_s{seed}": "{run}" in arguments
  steps      ordered {"name": {"cmd": [...], "resume": [...]}}: the arguments of `monet`; "resume"
             (optional) replaces "cmd" when the job's folder exists but the step did not finish
             (an interrupted training continues where its last checkpoint left it); "ranks"
             (optional) > 1 runs the step under mpirun with that many ranks, and "threads"
             (optional) sets its threads per process
  A matrix value may be an object: "{layout[config]}" reads its field.
  quick      the form `--quick` runs instead (`./test.sh` runs it, end to end): "seeds",
             "matrix" and "args" ({"step": [extra arguments appended]}) replace the full ones;
             "drop" ({"step": [flags]}) removes flags (--vs-torch, which needs PyTorch)
  collect    the module of scripts/exp that turns the jobs' outputs into results.json
  jobs       (optional) how many jobs run side by side; 1 for timings, which need the machine

A step that exits 0 leaves `<run>/.done-<step>` holding its wall time; a later run skips it. A
step that fails stops its job (the others go on) and the runner exits non-zero naming it.
"""
import concurrent.futures
import itertools
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def override(args, extra):
    """args with extra's options applied: an option already in args gets extra's value, others
    (and the repeatable --set) are appended."""
    out = list(args)
    i = 0
    while i < len(extra):
        opt = extra[i]
        has_value = i + 1 < len(extra) and not extra[i + 1].startswith("--")
        if opt != "--set" and opt in out and has_value:
            out[out.index(opt) + 1] = extra[i + 1]
        else:
            out += extra[i:i + 1 + has_value]
        i += 1 + has_value
    return out


class Job:
    def __init__(self, exp, params, seed, quick):
        self.exp, self.params, self.seed, self.quick = exp, dict(params), seed, quick
        self.values = dict(self.params, seed=seed)
        run = exp.decl["run"].format(**self.values)
        self.run = Path(run.replace("runs/", "runs/quick/", 1) if quick else run)
        self.values["run"] = str(self.run)
        self.name = self.run.name

    def field(self, step, key, default):
        """A step's optional setting ("ranks", "threads"), formatted with the job's values."""
        v = self.exp.decl["steps"][step].get(key)
        return default if v is None else int(str(v).format(**self.values))

    def args(self, step):
        spec = self.exp.decl["steps"][step]
        key = "resume" if "resume" in spec and self.run.exists() else "cmd"
        out = [a.format(**self.values) for a in spec[key]]
        if self.quick:
            quick = self.exp.decl["quick"]
            out = [a for a in out if a not in quick.get("drop", {}).get(step, [])]
            out = override(out, [a.format(**self.values) for a in quick.get("args", {}).get(step, [])])
        return out

    def done(self, step):
        return (self.run / f".done-{step}").exists()

    def wall(self):
        total = {}
        for step in self.exp.decl["steps"]:
            f = self.run / f".done-{step}"
            if f.exists():
                total[step] = float(f.read_text())
        return total


class Experiment:
    def __init__(self, name):
        path = ROOT / "experiments" / f"{name}.json"
        if not path.exists():
            known = ", ".join(sorted(p.stem for p in (ROOT / "experiments").glob("*.json")))
            raise SystemExit(f"experiment: no experiments/{name}.json (known: {known})")
        self.name, self.path = name, path
        try:
            self.decl = json.loads(path.read_text())
        except json.JSONDecodeError as e:
            raise SystemExit(f"experiment: {path}: not JSON ({e})")
        for key in ("title", "seeds", "run", "steps", "collect"):
            if key not in self.decl:
                raise SystemExit(f"experiment: {path}: no key '{key}'")

    def _form(self, quick):
        return dict(self.decl, **self.decl.get("quick", {})) if quick else self.decl

    def matrix(self, quick=False):
        return self._form(quick).get("matrix", {})

    def jobs(self, quick=False):
        matrix = self.matrix(quick)
        keys = list(matrix)
        out = []
        for seed in self._form(quick)["seeds"]:
            for combo in itertools.product(*(matrix[k] for k in keys)):
                out.append(Job(self, zip(keys, combo), seed, quick))
        return out


def commit():
    """The checkout's commit, "-dirty" when the program's sources, configs or declarations
    differ from it."""
    def git(*args):
        try:
            return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True,
                                  check=True).stdout.strip()
        except (OSError, subprocess.CalledProcessError):
            return ""
    c = git("rev-parse", "--short=12", "HEAD")
    dirty = git("status", "--porcelain", "--untracked-files=no", "--", "*.cpp", "*.h", "*.cu",
                "*.cuh", "CMakeLists.txt", "configs", "experiments")
    return c + "-dirty" if dirty else c


def machine(threads, logs, at_start):
    """What the numbers were measured on: the commit when the run began, CPU, cores, threads,
    GEMM backend (from the banner `monet train` prints: "GEMM onednn by default")."""
    cpu = platform.processor()
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    gemm = ""
    for log in logs:
        m = re.search(r"GEMM (\w+)", log.read_text(errors="replace")[:2000]) if log.exists() else None
        if m:
            gemm = m[1]
            break
    return {"commit": at_start, "cpu": cpu, "cores": os.cpu_count(), "threads_per_job": threads,
            "gemm": gemm}


MPIRUN = ["mpirun", "--oversubscribe", "--allow-run-as-root", "--mca",
          "btl_vader_single_copy_mechanism", "none", "--bind-to", "core", "-np"]


def run_job(job, monet, threads, log):
    job.run.parent.mkdir(parents=True, exist_ok=True)
    for step in job.exp.decl["steps"]:
        if job.done(step):
            continue
        args = job.args(step)
        n = job.field(step, "threads", threads)
        env = dict(os.environ, OPENBLAS_NUM_THREADS=str(n), OMP_NUM_THREADS=str(n),
                   OMP_WAIT_POLICY="passive")
        ranks = job.field(step, "ranks", 1)
        cmd = ([*MPIRUN, str(ranks), "-x", "OMP_NUM_THREADS", "-x", "OPENBLAS_NUM_THREADS"]
               if ranks > 1 else []) + [monet, *args]
        log(f"{job.name}: {step}: {' '.join(cmd[:-len(args) - 1])}{' ' if ranks > 1 else ''}"
            f"monet {' '.join(args)}")
        t0 = time.monotonic()
        with open(job.run.parent / f"{job.name}.{step}.log", "w") as out:
            rc = subprocess.run(cmd, cwd=ROOT, env=env, stdout=out,
                                stderr=subprocess.STDOUT).returncode
        if rc != 0:
            return f"{job.name}: {step} exited {rc} (log: {job.run.parent / f'{job.name}.{step}.log'})"
        (job.run / f".done-{step}").write_text(f"{time.monotonic() - t0:.1f}\n")
        log(f"{job.name}: {step} done in {time.monotonic() - t0:.0f} s")
    return None


def run(exp, quick, jobs, monet, log):
    """Runs the jobs not yet finished; the quick form starts afresh each time (its runs are
    scratch, and a quick run must test the program as built now)."""
    todo = exp.jobs(quick)
    if quick:
        for j in todo:
            shutil.rmtree(j.run, ignore_errors=True)
    threads = max(1, (os.cpu_count() or 1) // jobs)
    started = time.monotonic()
    errors = []
    with concurrent.futures.ThreadPoolExecutor(max_workers=jobs) as pool:
        for err in pool.map(lambda j: run_job(j, monet, threads, log), todo):
            if err:
                errors.append(err)
                log(f"FAILED {err}")
    return todo, threads, time.monotonic() - started, errors
