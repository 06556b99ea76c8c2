"""Tables written by code: every block between

    <!-- results EXPERIMENT/BLOCK -->            (or <!-- results claims -->: every claim)
    ...
    <!-- /results -->

in README.md and docs/**/*.md is rendered from results/<experiment>/results.json by the
experiment's module (scripts/exp/<collect>.py: blocks() and claims()). `--check` renders without
writing and fails on any block that differs from what the committed results give.
"""
import importlib
import json
import re
from pathlib import Path

BLOCK = re.compile(r"(<!-- results (\S+) -->\n)(.*?)(<!-- /results -->)", re.S)


def load_results(results_dir):
    out = {}
    for f in sorted(Path(results_dir).glob("*/results.json")):
        r = json.loads(f.read_text())
        out[r["experiment"]] = r
    return out


def _provenance(r):
    m = r["meta"]
    seeds = sorted({j["seed"] for j in r["jobs"]})
    return (f"_Rendered from `results/{r['experiment']}/results.json`: commit {m['commit']}, "
            f"seeds {', '.join(map(str, seeds))}, {m['cpu']} ({m['cores']} cores, "
            f"{m['threads_per_job']} thread(s) per job, GEMM {m['gemm'] or '?'}), "
            f"{m['wall_seconds'] / 60:.0f} min of jobs in {m['elapsed_seconds'] / 60:.0f} min._")


def render_block(name, results):
    if name == "claims":
        md = ["| claim | measured: mean [95% interval] | seeds | verdict | details |",
              "|---|---|---:|---|---|"]
        for exp, r in sorted(results.items()):
            mod = importlib.import_module(f"exp.{r['collect']}")
            for claim, measured, n, verdict in mod.claims(r):
                md.append(f"| {claim} | {measured} | {n} | **{verdict}** | "
                          f"[{exp}](docs/results/{exp}.md) |")
        return "\n".join(md) + "\n"
    exp, _, block = name.partition("/")
    if exp not in results:
        return f"_Not run yet: `python3 scripts/experiment.py run {exp}`._\n"
    r = results[exp]
    blocks = importlib.import_module(f"exp.{r['collect']}").blocks(r)
    if block not in blocks:
        raise SystemExit(f"render: experiment {exp} has no block '{block}' "
                         f"(it has: {', '.join(blocks)})")
    return blocks[block] + "\n\n" + _provenance(r) + "\n"


def documents(root):
    return [root / "README.md", *sorted((root / "docs").rglob("*.md"))]


def render(root, results_dir, check=False, out_dir=None):
    """Rewrites every block (or, with check, lists those that differ). Returns the stale blocks."""
    results = load_results(results_dir)
    stale = []
    for doc in documents(root):
        text = doc.read_text()
        new = BLOCK.sub(lambda m: m[1] + render_block(m[2], results) + m[4], text)
        if new == text:
            continue
        stale += [f"{doc.relative_to(root)}: {m[2]}" for m in BLOCK.finditer(text)
                  if m[3] != render_block(m[2], results)]
        if check:
            continue
        target = (out_dir / doc.relative_to(root)) if out_dir else doc
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(new)
    return stale
