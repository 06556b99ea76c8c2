"""The bench experiment (experiments/bench.json): `monet bench` per GEMM backend and seed, from
<run>/bench.json.

Numbers per job and row (config × precision): C++ tokens/s, its fraction of the GEMM peak of its
own mode, and with the twin, PyTorch's tokens/s.
The claims, per config, as a value per seed:
  twin   C++ tokens/s / PyTorch tokens/s − 1 > 0: the C++ step is faster than the PyTorch twin
         (fp32, the default backend oneDNN)
  bf16   bf16 tokens/s / fp32 tokens/s − 1 > 0 on oneDNN: bf16 products buy speed
"""
import json
import statistics

from exp.stats import Summary


def collect(job):
    b = json.loads((job.run / "bench.json").read_text())
    rows = []
    for w in b["rows"]:
        rows.append({"config": w["config"], "kind": w["kind"], "precision": w["precision"],
                     "gemm": w["gemm"], "cpp": w["cpp"]["tokens_per_second"],
                     "of_peak": w["gflops"] / w["peak_gflops"] if w["peak_gflops"] else 0.0,
                     "torch": w["torch"]["tokens_per_second"] if "torch" in w else None})
    return {"rows": rows, "threads": b["threads"], "peaks": b["peaks"]}


def _cells(results):
    """{(config, precision, gemm): {"cpp": {seed: v}, "torch": {...}, "of_peak": {...}}}"""
    out = {}
    for job in results["jobs"]:
        for r in job["numbers"]["rows"]:
            c = out.setdefault((r["config"], r["precision"], r["gemm"]),
                               {"cpp": {}, "torch": {}, "of_peak": {}})
            c["cpp"][job["seed"]] = r["cpp"]
            c["of_peak"][job["seed"]] = r["of_peak"]
            if r["torch"]:
                c["torch"][job["seed"]] = r["torch"]
    return out


def claims(results):
    cells, rows = _cells(results), []
    for (config, precision, gemm), c in sorted(cells.items()):
        if precision == "fp32" and gemm == "onednn" and c["torch"]:
            s = Summary(c["cpp"][k] / c["torch"][k] - 1 for k in sorted(set(c["cpp"]) & set(c["torch"])))
            rows.append((f"Speed: the C++ training step of {config} (fp32, oneDNN) is faster than "
                         "its PyTorch twin (tokens/s ratio − 1)", s.fmt(), s.n, s.verdict(+1)))
        if precision == "bf16" and gemm == "onednn" and (config, "fp32", gemm) in cells:
            f = cells[(config, "fp32", gemm)]["cpp"]
            s = Summary(v / f[k] - 1 for k, v in c["cpp"].items() if k in f)
            rows.append((f"Speed: bf16 makes the {config} step faster than fp32 (oneDNN; tokens/s "
                         "ratio − 1)", s.fmt(), s.n, s.verdict(+1)))
    return rows


def blocks(results):
    md = ["| config | precision | GEMM | C++ tokens/s [95%] | of its GEMM peak | PyTorch tokens/s "
          "[95%] | C++ / PyTorch [95%] |", "|---|---|---|---|---:|---|---|"]
    for (config, precision, gemm), c in sorted(_cells(results).items()):
        torch = Summary(c["torch"].values()).fmt(0, signed=False) if c["torch"] else "–"
        ratio = (Summary(c["cpp"][k] / c["torch"][k] for k in c["torch"] if k in c["cpp"])
                 .fmt(2, signed=False) if c["torch"] else "–")
        md.append(f"| {config} | {precision} | {gemm} | "
                  f"{Summary(c['cpp'].values()).fmt(0, signed=False)} | "
                  f"{100 * statistics.fmean(c['of_peak'].values()):.0f}% | {torch} | {ratio} |")
    claims_md = ["| claim | seeds | mean [95% interval] | verdict |", "|---|---:|---|---|"]
    for claim, measured, n, verdict in claims(results):
        claims_md.append(f"| {claim} | {n} | {measured} | {verdict} |")
    return {"table": "\n".join(md), "claims": "\n".join(claims_md)}
