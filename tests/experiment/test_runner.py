"""The experiment runner's pieces (scripts/exp/): argument overrides, intervals and verdicts, and
rendering into marked blocks, on hand-made results. Run: python3 -m unittest discover -s
tests/experiment (CTest's Experiment.Units)."""
import json
import sys
import tempfile
import unittest
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "scripts"))
from exp import render, runner, stats  # noqa: E402


class Override(unittest.TestCase):
    def test_replaces_options_and_appends_the_rest(self):
        got = runner.override(["mask", "--windows", "32", "--set", "a=1", "--control"],
                              ["--windows", "2", "--set", "b=2", "--draws", "3", "--quiet"])
        self.assertEqual(got, ["mask", "--windows", "2", "--set", "a=1", "--control",
                               "--set", "b=2", "--draws", "3", "--quiet"])


class Statistics(unittest.TestCase):
    def test_t_interval_by_hand(self):
        s = stats.Summary([1.0, 2.0, 3.0])  # mean 2, sd 1, t(2) = 4.303
        self.assertAlmostEqual(s.mean, 2.0)
        self.assertAlmostEqual(s.sd, 1.0)
        self.assertAlmostEqual(s.hi - s.mean, 4.303 / 3 ** 0.5, places=6)
        self.assertEqual(s.verdict(+1), "inconclusive")  # [-0.48, 4.48] straddles 0

    def test_verdicts(self):
        self.assertEqual(stats.Summary([1.0, 1.1, 0.9]).verdict(+1), "reproduced")
        self.assertEqual(stats.Summary([1.0, 1.1, 0.9]).verdict(-1), "not reproduced")
        self.assertEqual(stats.Summary([-1.0, -1.1, -0.9]).verdict(+1), "not reproduced")
        self.assertTrue(stats.Summary([1.0, 1.1]).verdict(+1).startswith("inconclusive"))
        self.assertIn("1 seed", stats.Summary([0.5]).fmt())
        self.assertEqual(stats.paired({0: 3.0, 1: 5.0, 2: 1.0}, {0: 1.0, 1: 1.0}), [2.0, 4.0])
        self.assertEqual(stats.Summary([0.01, 0.0, -0.01]).within(0.1), "reproduced")
        self.assertEqual(stats.Summary([0.5, 0.5, 0.5]).within(0.1), "not reproduced")
        self.assertEqual(stats.Summary([0.0, 0.2, 0.1]).within(0.1), "inconclusive")
        with self.assertRaises(ValueError):
            stats.Summary([])


def fake_interp(seeds):
    """Results of the interp experiment with two domains, one kind: the masked domain rises by
    0.3 + seed/100, the controls by 0.1."""
    jobs = []
    for s in seeds:
        own = {"a": 0.3 + s / 100, "b": 0.3}
        jobs.append({"kind": "monet_vd", "seed": s, "wall": {"train": 60.0}, "numbers": {
            "domains": ["a", "b"], "own": own, "control": {"a": 0.1, "b": 0.1},
            "others": {"a": 0.05, "b": 0.05}, "removed": {"a": [3], "b": [4]},
            "mass_ratio": [0.97, 1.02],
            "purge": {"threshold": 0.05, "removed": 9, "fraction": 0.01, "comment": 0.2,
                      "other": 0.05, "control_gap": 0.01 * s}}})
    return {"experiment": "interp", "title": "t", "collect": "interp", "quick": False,
            "order": ["monet_vd"], "jobs": jobs,
            "meta": {"commit": "abc", "cpu": "cpu", "cores": 2, "threads_per_job": 1,
                     "gemm": "onednn", "wall_seconds": 180.0, "elapsed_seconds": 90.0}}


class Render(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory()
        self.root = Path(self.tmp.name)
        (self.root / "docs").mkdir()
        (self.root / "results" / "interp").mkdir(parents=True)
        (self.root / "results" / "interp" / "results.json").write_text(
            json.dumps(fake_interp([0, 1, 2])))
        (self.root / "README.md").write_text(
            "intro\n<!-- results claims -->\nold\n<!-- /results -->\nend\n")
        (self.root / "docs" / "x.md").write_text(
            "<!-- results interp/masking -->\n<!-- /results -->\n"
            "<!-- results megablocks/table -->\n<!-- /results -->\n")

    def tearDown(self):
        self.tmp.cleanup()

    def test_blocks_are_rendered_checked_and_stable(self):
        results = self.root / "results"
        stale = render.render(self.root, results, check=True)
        self.assertEqual(len(stale), 3)  # three blocks differ; nothing written
        self.assertIn("old", (self.root / "README.md").read_text())
        render.render(self.root, results)
        readme = (self.root / "README.md").read_text()
        self.assertNotIn("old", readme)
        self.assertTrue(readme.startswith("intro\n") and readme.endswith("end\n"))
        self.assertIn("MONET-VD: Removing a domain's experts", readme)
        self.assertIn("| **reproduced** |", readme)  # selective: 0.2 + small, tight interval
        doc = (self.root / "docs" / "x.md").read_text()
        self.assertIn("| MONET-VD | a | 3 | +0.310 [", doc)
        self.assertIn("Not run yet: `python3 scripts/experiment.py run megablocks`", doc)
        self.assertIn("commit abc, seeds 0, 1, 2", doc)
        self.assertEqual(render.render(self.root, results, check=True), [])
        # A changed result makes the committed block stale.
        (self.root / "results" / "interp" / "results.json").write_text(
            json.dumps(fake_interp([0, 1])))
        self.assertEqual(len(render.render(self.root, results, check=True)), 2)


class MegaBlocks(unittest.TestCase):
    def test_paired_claims_at_equal_tokens_and_equal_time(self):
        from exp import megablocks
        jobs = []
        for seed in (0, 1, 2):
            # dropless: slower (100 s for 100 steps), loss 2.0; cf 1: faster (50 s), loss 2.1.
            # At cf 1's end (50 s) dropless is at step 50, where its train loss is 3.0.
            for cf, secs, final, mid in ((0, 100.0, 2.0, 3.0), (1.0, 50.0, 2.1, 2.5)):
                curve = [(secs * s / 100, mid if s <= 50 else final) for s in range(1, 101)]
                jobs.append({"capacity_factor": cf, "seed": seed, "numbers": {
                    "loss": final + seed / 1000, "seconds": secs, "steps": 100,
                    "tokens_per_second": 2048 * 100 / secs, "dropped": 0.0 if cf == 0 else 0.1,
                    "curve": curve}})
        r = {"order": [0, 1.0], "jobs": jobs}
        rows = megablocks.claims(r)
        self.assertEqual(len(rows), 2)
        self.assertIn("equal tokens", rows[0][0])
        self.assertEqual(rows[0][1], "+0.100 [+0.100, +0.100]")
        self.assertEqual(rows[0][3], "reproduced")
        self.assertIn("equal training time", rows[1][0])
        # cf 1's mean loss over its last 20 steps (2.1) − dropless's over the 20 steps before 50 s (3.0)
        self.assertEqual(rows[1][1], "-0.900 [-0.900, -0.900]")
        self.assertEqual(rows[1][3], "not reproduced")
        self.assertIn("| capacity factor 1 | 10.0% |", megablocks.blocks(r)["table"])


if __name__ == "__main__":
    unittest.main()
