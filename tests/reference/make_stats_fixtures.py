#!/usr/bin/python3
"""Writes tests/fixtures/stats/stats_reference.json: what SciPy, NumPy and
statsmodels' formulas give for the datasets below, for
tests/stats/test_stats.c (src/stats/stats.c, rank_tests.c, spectrum.c).

Made with Debian's python3 (numpy 1.24, scipy 1.10.1); statsmodels is not
needed: its Holm step-down and Wilson formulas are written out below.

    /usr/bin/python3 tests/reference/make_stats_fixtures.py [--out FILE]

Every dataset is drawn from a seeded numpy Generator, so rerunning gives
the same file.  Values are written with repr() (exact round trip); float32
matrices are written as 4-decimal numbers that both sides turn into float32
the same way (double -> nearest float32).
"""
import argparse
import json
import os

import numpy as np
import scipy
import scipy.stats as st
from scipy.stats import _mannwhitneyu as mwu_mod

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DEFAULT_OUT = os.path.join(ROOT, "tests", "fixtures", "stats", "stats_reference.json")


def fl(a):
    return [float(v) for v in a]


# ---- descriptive and ranks ---------------------------------------------------

def descriptive_cases(rng):
    out = []
    shapes = [(1, "normal"), (2, "normal"), (7, "normal"), (10, "ties"),
              (51, "normal"), (200, "lognormal")]
    for n, kind in shapes:
        if kind == "ties":
            x = np.round(rng.normal(0, 2, n))
        elif kind == "lognormal":
            x = rng.lognormal(1.0, 1.5, n) + 1e6  # large offset: cancellation
        else:
            x = rng.normal(3.0, 2.0, n)
        out.append({"x": fl(x), "mean": float(np.mean(x)),
                    "var0": float(np.var(x, ddof=0)),
                    "var1": float(np.var(x, ddof=1)) if n > 1 else None,
                    "median": float(np.median(x))})
    return out


def tie_term(x):
    _, t = np.unique(x, return_counts=True)
    return float(np.sum(t.astype(float) ** 3 - t))


def rank_cases(rng):
    out = []
    for n, decimals in [(1, None), (6, None), (25, 0), (40, 1), (300, 0)]:
        x = rng.normal(0, 3, n)
        if decimals is not None:
            x = np.round(x, decimals)
        out.append({"x": fl(x), "ranks": fl(st.rankdata(x)), "tie_sum": tie_term(x)})
    return out


# ---- Kruskal-Wallis ------------------------------------------------------------

def kruskal_case(name, groups):
    x = np.concatenate(groups)
    gid = np.concatenate([[g] * len(v) for g, v in enumerate(groups)])
    res = st.kruskal(*groups)
    return {"name": name, "x": fl(x), "group": [int(g) for g in gid],
            "n_groups": len(groups), "df": len(groups) - 1,
            "h": float(res.statistic), "p": float(res.pvalue)}


def kruskal_cases(rng):
    out = []
    out.append(kruskal_case("2 groups no ties", [rng.normal(0, 1, 6), rng.normal(1, 1, 9)]))
    out.append(kruskal_case("3 groups ties unequal", [
        np.round(rng.normal(0, 2, 5)), np.round(rng.normal(0.5, 2, 12)),
        np.round(rng.normal(1.0, 2, 8))]))
    out.append(kruskal_case("4 groups heavy ties", [
        rng.integers(0, 4, n).astype(float) for n in (10, 3, 7, 15)]))
    out.append(kruskal_case("5 groups no ties", [
        rng.normal(mu, 1, n) for mu, n in zip((0, 0.2, 0.4, 0.6, 0.8), (4, 6, 8, 10, 12))]))
    out.append(kruskal_case("6 groups singletons", [
        rng.normal(0, 1, n) for n in (1, 1, 2, 1, 3, 1)]))
    out.append(kruskal_case("7 groups large ties", [
        np.round(rng.normal(g * 0.1, 1, 60 + 13 * g), 1) for g in range(7)]))
    out.append(kruskal_case("2 groups strong effect", [rng.normal(0, 1, 40), rng.normal(3, 1, 40)]))
    # Shifted interleaving in a shuffled order: group ids not contiguous.
    c = kruskal_case("3 groups null", [rng.normal(0, 1, n) for n in (20, 25, 30)])
    perm = rng.permutation(len(c["x"]))
    c["x"] = [c["x"][i] for i in perm]
    c["group"] = [c["group"][i] for i in perm]
    c["name"] = "3 groups null shuffled"
    out.append(c)
    return out


# ---- Mann-Whitney U ------------------------------------------------------------

def mwu_case(name, x, y):
    x, y = np.asarray(x, float), np.asarray(y, float)
    res = st.mannwhitneyu(x, y, alternative="two-sided", method="auto",
                          use_continuity=True)
    method = mwu_mod._mwu_choose_method(len(x), len(y), np.concatenate([x, y]), "auto")
    if method == "exact":  # the auto result is the exact one
        ex = st.mannwhitneyu(x, y, alternative="two-sided", method="exact")
        assert ex.pvalue == res.pvalue
    return {"name": name, "x": fl(x), "y": fl(y), "u1": float(res.statistic),
            "p": float(res.pvalue), "exact": method == "exact"}


def mwu_cases(rng):
    out = []
    # The worked example of SciPy's docstring (Shier 2004): U = 17, p = 1/9.
    out.append(mwu_case("shier diabetes", [19, 22, 16, 29, 24], [20, 11, 17, 12]))
    out.append(mwu_case("1 vs 1", [0.3], [1.7]))
    out.append(mwu_case("2 vs 2 centred (p clipped)", [1.0, 4.0], [2.0, 3.0]))
    out.append(mwu_case("3 vs 40 exact", rng.normal(0.5, 1, 3), rng.normal(0, 1, 40)))
    out.append(mwu_case("8 vs 8 exact", rng.normal(0, 1, 8), rng.normal(1, 1, 8)))
    out.append(mwu_case("8 vs 30 exact", rng.normal(0, 1, 8), rng.normal(0.7, 1, 30)))
    out.append(mwu_case("30 vs 7 exact", rng.normal(0, 1, 30), rng.normal(-0.5, 1, 7)))
    out.append(mwu_case("5 vs 6 separated exact", rng.normal(0, 1, 5), rng.normal(10, 1, 6)))
    out.append(mwu_case("9 vs 9 asymptotic", rng.normal(0, 1, 9), rng.normal(0.8, 1, 9)))
    out.append(mwu_case("5 vs 6 ties asymptotic", np.round(rng.normal(0, 2, 5)),
                        np.round(rng.normal(1, 2, 6))))
    out.append(mwu_case("200 vs 150 ties", np.round(rng.normal(0, 1, 200), 1),
                        np.round(rng.normal(0.2, 1, 150), 1)))
    out.append(mwu_case("60 vs 45 no ties", rng.normal(0, 1, 60), rng.normal(0.3, 1.5, 45)))
    out.append(mwu_case("all equal", [2.0] * 4, [2.0] * 5))
    # Counts of U beyond 2^53 (C(508, 8) ~ 1e17): still SciPy's exact branch.
    out.append(mwu_case("8 vs 500 exact", rng.normal(0.4, 1, 8), rng.normal(0, 1, 500)))
    out.append(mwu_case("strong separation large", rng.normal(0, 1, 50), rng.normal(6, 1, 50)))
    return out


# ---- Holm: statsmodels' multipletests(method="holm") written out ---------------

def holm(p):
    p = np.asarray(p, float)
    order = np.argsort(p, kind="mergesort")
    m = len(p)
    raw = p[order] * np.arange(m, 0, -1)
    adj_sorted = np.minimum(1.0, np.maximum.accumulate(raw))
    adj = np.empty(m)
    adj[order] = adj_sorted
    return adj


def holm_cases(rng):
    cases = [
        [0.5],
        [0.01, 0.02, 0.03, 0.04, 0.05],
        [0.2, 0.01, 0.2, 0.01, 0.9, 0.0, 1.0],  # ties, 0 and 1
        fl(rng.uniform(0, 0.1, 12)),
        fl(np.concatenate([rng.uniform(0, 1e-4, 5), rng.uniform(0, 1, 45)])),
        fl(rng.uniform(0.3, 1, 9)),  # everything capped at 1
    ]
    return [{"p": fl(c), "adjusted": fl(holm(c))} for c in cases]


# ---- Wilson: statsmodels' proportion_confint(method="wilson") written out ------

def wilson(k, n, z):
    q = k / n
    z2 = z * z
    denom = 1 + z2 / n
    center = (q + z2 / (2 * n)) / denom
    dist = z * np.sqrt(q * (1 - q) / n + z2 / (4 * n * n)) / denom
    return float(center - dist), float(center + dist)


def wilson_cases():
    out = []
    for k, n, z in [(0, 10, 1.959964), (10, 10, 1.959964), (7, 20, 1.959964),
                    (1, 1, 1.959964), (523, 1000, 2.575829), (3, 400, 1.0),
                    (50, 100, 0.0), (999999, 1000000, 1.959964)]:
        lo, hi = wilson(k, n, z)
        out.append({"k": k, "n": n, "z": z, "lo": lo, "hi": hi})
    return out


def cohens_d_cases(rng):
    out = []
    for nx, ny, shift in [(5, 7, 0.5), (30, 30, -1.0), (2, 1, 0.3), (100, 60, 0.1)]:
        x, y = rng.normal(shift, 1, nx), rng.normal(0, 2, ny)
        ss = np.sum((x - x.mean()) ** 2) + np.sum((y - y.mean()) ** 2)
        d = (x.mean() - y.mean()) / np.sqrt(ss / (nx + ny - 2))
        out.append({"x": fl(x), "y": fl(y), "d": float(d)})
    return out


# ---- spectra ---------------------------------------------------------------------

def spectrum_summaries(s):
    p = s / s.sum()
    p = p[p > 0]
    erank = float(np.exp(-np.sum(p * np.log(p))))
    e = s ** 2 / np.sum(s ** 2)
    e = e[e > 0]
    sent = float(-np.sum(e * np.log(e)) / np.log(len(s))) if len(s) > 1 else 0.0
    return erank, sent


def svd_case(name, m64):
    m64 = np.round(m64, 4)
    m32 = m64.astype(np.float32)  # what the C side gets: (float)strtod(text)
    s = np.linalg.svd(m32.astype(np.float64), compute_uv=False)
    erank, sent = spectrum_summaries(s)
    return {"name": name, "rows": m64.shape[0], "cols": m64.shape[1],
            "m": fl(m64.ravel()), "sv": fl(s), "effective_rank": erank,
            "spectral_entropy": sent}


def svd_cases(rng):
    out = [svd_case("5x3", rng.normal(0, 1, (5, 3))),
           svd_case("3x7", rng.normal(0, 1, (3, 7))),
           svd_case("1x6", rng.normal(0, 1, (1, 6))),
           svd_case("6x1", rng.normal(0, 1, (6, 1))),
           svd_case("24x24 scaled", rng.normal(0, 30, (24, 24))),
           svd_case("64x12 decaying", rng.normal(0, 1, (64, 12)) * (0.6 ** np.arange(12)))]
    low = rng.normal(0, 1, (20, 3)) @ rng.normal(0, 1, (3, 16))
    out.append(svd_case("20x16 rank 3", low))
    return out


# ---- tails and bootstrap ------------------------------------------------------

def tail_cases():
    chi2 = [(0.5, 1), (3.841458820694124, 1), (10, 3), (100, 3), (1000, 3), (25, 6),
            (0.01, 7), (50, 50), (1e-5, 2), (7.5, 2.5), (300, 200)]
    norm = [-8, -5, -1, 0, 0.5, 1.959963984540054, 5, 10, 30, 37]
    return ([{"x": x, "df": d, "sf": float(st.chi2.sf(x, d))} for x, d in chi2],
            [{"z": z, "sf": float(st.norm.sf(z))} for z in norm])


def bootstrap_cases(rng):
    out = []
    for n, kind, level in [(20, "normal", 0.95), (40, "exponential", 0.95),
                           (100, "normal", 0.9), (15, "ties", 0.95)]:
        if kind == "normal":
            x = rng.normal(5, 2, n)
        elif kind == "exponential":
            x = rng.exponential(3, n)
        else:
            x = np.round(rng.normal(0, 2, n))
        los, his = [], []
        for rep in range(20):  # resampling noise of one 20000-resample run
            r = st.bootstrap((x,), np.mean, n_resamples=20000, method="percentile",
                             confidence_level=level, random_state=1000 + rep)
            los.append(r.confidence_interval.low)
            his.append(r.confidence_interval.high)
        out.append({"x": fl(x), "level": level, "n_resamples": 20000,
                    "lo": float(los[0]), "hi": float(his[0]),
                    "mc_sd_lo": float(np.std(los, ddof=1)),
                    "mc_sd_hi": float(np.std(his, ddof=1))})
    return out


def bootstrap_coverage(rng, n=25, b=1000, trials=10000, level=0.95):
    """Coverage of the true mean by the percentile interval for normal
    samples of size n: below nominal (the interval uses the plug-in standard
    error and normal-like quantiles), so the C test compares with this."""
    hits = 0
    a = (1 - level) / 2
    for _ in range(trials // 500):
        x = rng.normal(0, 1, (500, n))
        idx = rng.integers(0, n, (500, b, n))
        means = np.take_along_axis(x[:, None, :].repeat(b, 1), idx, 2).mean(2)
        lo = np.percentile(means, 100 * a, axis=1)
        hi = np.percentile(means, 100 * (1 - a), axis=1)
        hits += int(np.sum((lo <= 0) & (0 <= hi)))
    return {"n": n, "n_resamples": b, "level": level, "trials": trials,
            "coverage": hits / trials}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default=DEFAULT_OUT)
    args = ap.parse_args()
    rng = np.random.default_rng(20240607)
    chi2, norm = tail_cases()
    doc = {
        "generator": "tests/reference/make_stats_fixtures.py",
        "versions": {"numpy": np.__version__, "scipy": scipy.__version__},
        "descriptive": descriptive_cases(rng),
        "rank": rank_cases(rng),
        "kruskal": kruskal_cases(rng),
        "mwu": mwu_cases(rng),
        "holm": holm_cases(rng),
        "wilson": wilson_cases(),
        "cohens_d": cohens_d_cases(rng),
        "svd": svd_cases(rng),
        "chi2_sf": chi2,
        "norm_sf": norm,
        "bootstrap": bootstrap_cases(rng),
        "bootstrap_coverage": bootstrap_coverage(rng),
    }
    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    with open(args.out, "w") as f:
        json.dump(doc, f, indent=None, separators=(",", ":"))
        f.write("\n")
    print(f"wrote {args.out} ({os.path.getsize(args.out)} bytes)")


if __name__ == "__main__":
    main()
