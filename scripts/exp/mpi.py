"""The MPI experiment (experiments/mpi.json): one process × 2 threads against 2 ranks × 1 thread
on the same two cores, from <run>/log.jsonl.

Numbers per job: tokens/s (the run's own figure at its last step), the payload bytes of one
rank's all-reduce and all-to-all per step, and the share of the step time spent inside the
collectives (waiting for the other rank included). No paper claim rests on it: on two cores of
one machine the layouts do the same arithmetic, so it shows the ranks' overhead, not a speed-up.
"""
import json
import statistics

from exp.stats import Summary


def collect(job):
    steps = [json.loads(line) for line in open(job.run / "log.jsonl")]
    steps = [j for j in steps if "lr" in j]  # step lines (evaluation lines have no lr)
    last = steps[-1]
    cfg = json.loads((job.run / "config.json").read_text())
    tokens = len(steps) * cfg["run"]["batch"] * cfg["model"]["context"]
    seconds = tokens / last["tokens_per_second"]
    comm = sum(j.get("comm_seconds", 0.0) for j in steps)
    return {"tokens_per_second": last["tokens_per_second"],
            "all_reduce_bytes": last.get("all_reduce_bytes", 0),
            "all_to_all_bytes": last.get("all_to_all_bytes", 0),
            "comm_share": comm / seconds if seconds > 0 else 0.0, "ranks": last.get("ranks", 1)}


def claims(results):
    return []


def blocks(results):
    runs = {}
    for j in results["jobs"]:
        runs.setdefault(j["layout"]["name"], (j["layout"], []))[1].append(j)
    md = ["| layout | config | ranks × threads | tokens/s [95%] | vs 1 process [95%] | "
          "all-reduce MB/step | all-to-all MB/step | time in collectives |",
          "|---|---|---|---|---|---:|---:|---:|"]
    for layout in results["order"]:
        if layout["name"] not in runs:
            continue
        jobs = runs[layout["name"]][1]
        base = next((v[1] for v in runs.values() if v[0]["config"] == layout["config"]
                     and v[0]["ranks"] == 1), None)
        tps = {j["seed"]: j["numbers"]["tokens_per_second"] for j in jobs}
        ratio = "–"
        if base and layout["ranks"] > 1:
            b = {j["seed"]: j["numbers"]["tokens_per_second"] for j in base}
            ratio = Summary(tps[s] / b[s] for s in tps if s in b).fmt(2, signed=False)
        n = jobs[0]["numbers"]
        md.append(f"| {layout['name']} | {layout['config'].split('/')[-1]} | "
                  f"{layout['ranks']} × {layout['threads']} | "
                  f"{Summary(tps.values()).fmt(0, signed=False)} | {ratio} | "
                  f"{n['all_reduce_bytes'] / 1e6:.2f} | {n['all_to_all_bytes'] / 1e6:.2f} | "
                  f"{100 * statistics.fmean(j['numbers']['comm_share'] for j in jobs):.0f}% |")
    return {"table": "\n".join(md)}
