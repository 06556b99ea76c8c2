"""Intervals and verdicts for claims measured over seeds (standard library only).

A claim is a number per seed (an effect: the masked domain's loss rise minus the random control's,
a paired difference of two arms run from the same seed, ...). Its summary is the mean with a 95%
t-interval over the seeds, and its verdict reads the interval against zero in the claimed
direction: reproduced when the whole interval lies on the claimed side, not reproduced when the
whole interval lies on the other side (or on zero), inconclusive when it straddles zero.
"""
import math
import statistics

# Student's t, two-sided 95% (the 0.975 quantile) for 1..30 degrees of freedom; the normal 1.96
# beyond. Values from any t table (e.g. NIST/SEMATECH e-Handbook, Table 1.3.6.7.2).
_T975 = [12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179,
         2.160, 2.145, 2.131, 2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064,
         2.060, 2.056, 2.052, 2.048, 2.045, 2.042]


def t975(df):
    if df < 1:
        raise ValueError(f"a t-interval needs at least 2 values (df = {df})")
    return _T975[df - 1] if df <= len(_T975) else 1.96


class Summary:
    """Mean, sample sd and the 95% t-interval of the values (n >= 2), or just the value (n = 1)."""

    def __init__(self, values):
        self.values = [float(v) for v in values]
        if not self.values:
            raise ValueError("no values to summarise")
        self.n = len(self.values)
        self.mean = statistics.fmean(self.values)
        self.sd = statistics.stdev(self.values) if self.n > 1 else 0.0
        half = t975(self.n - 1) * self.sd / math.sqrt(self.n) if self.n > 1 else math.inf
        self.lo, self.hi = self.mean - half, self.mean + half

    def verdict(self, direction=+1):
        """The claim is that the value is > 0 (direction +1) or < 0 (direction -1)."""
        lo, hi = (self.lo, self.hi) if direction > 0 else (-self.hi, -self.lo)
        if self.n < 3:
            return "inconclusive (fewer than 3 seeds)"
        if lo > 0:
            return "reproduced"
        if hi <= 0:
            return "not reproduced"
        return "inconclusive"

    def within(self, tolerance):
        """The claim is that the value is 0 within ±tolerance (a measured exponent minus the
        paper's, say)."""
        if self.n < 3:
            return "inconclusive (fewer than 3 seeds)"
        if -tolerance <= self.lo and self.hi <= tolerance:
            return "reproduced"
        if self.lo > tolerance or self.hi < -tolerance:
            return "not reproduced"
        return "inconclusive"

    def fmt(self, digits=3, signed=True):
        """"+0.123 [+0.045, +0.201]"; signed=False for a level rather than a change."""
        f = f"{{:{'+' if signed else ''}.{digits}f}}"
        if self.n == 1:
            return f"{f.format(self.mean)} (1 seed)"
        return f"{f.format(self.mean)} [{f.format(self.lo)}, {f.format(self.hi)}]"


def paired(a, b):
    """The per-seed differences a[s] - b[s] over the seeds both hold (dicts keyed by seed)."""
    seeds = sorted(set(a) & set(b))
    return [a[s] - b[s] for s in seeds]
