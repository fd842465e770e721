#!/usr/bin/python3
"""Writes tests/fixtures/report/plot_reference.json: the colours that
matplotlib gives the inputs of tests/report/test_plot.c, so the pixels
kvlab's PLplot figures draw can be checked against an independent colour
mapping.

- heatmap: z values and, per cell, matplotlib's default image colouring,
  viridis(Normalize(z.min(), z.max())(z)) (NaN cells: null, i.e. blank);
- confusion: counts, their row-normalised rates (numpy; a row without
  samples is NaN) and viridis(rate) on a fixed [0, 1] scale;
- tab10: matplotlib's categorical colours (bar and line series colours).

Colours are floats in [0, 255] (unrounded).  Run with Debian's python3
(matplotlib 3.6, numpy 1.24):

    /usr/bin/python3 tests/reference/make_plot_fixtures.py
"""

import json
import os
import sys

import matplotlib
import numpy as np
from matplotlib.colors import Normalize

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "..", "fixtures", "report", "plot_reference.json")


def rgb255(colours):
    """RGBA floats (or NaN for bad values) -> [r, g, b] in [0, 255]."""
    return [[round(float(c) * 255.0, 4) for c in rgba[:3]] for rgba in colours]


def cell_colours(values, norm):
    cmap = matplotlib.colormaps["viridis"]
    flat = np.asarray(values, dtype=float).ravel()
    out = []
    for v in flat:
        out.append(None if np.isnan(v) else rgb255([cmap(norm(v))])[0])
    return out


def heatmap_case():
    # A 2 x 4 map whose normalised values are t = (z - 3) / 8; one NaN cell.
    t = np.array([[0.0, 0.1, 0.37, 0.5], [0.63, 0.81, np.nan, 1.0]])
    z = 3.0 + 8.0 * t
    norm = Normalize(vmin=np.nanmin(z), vmax=np.nanmax(z))
    return {
        "rows": 2,
        "cols": 4,
        "z": [None if np.isnan(v) else float(v) for v in z.ravel()],
        "rgb": cell_colours(z, norm),
    }


def confusion_case():
    counts = np.array([[5, 1, 0], [2, 6, 2], [0, 0, 0]], dtype=np.int64)
    sums = counts.sum(axis=1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        rates = np.where(sums > 0, counts / sums, np.nan)
    norm = Normalize(vmin=0.0, vmax=1.0)
    return {
        "n": 3,
        "counts": counts.ravel().tolist(),
        "rates": [None if np.isnan(v) else float(v) for v in rates.ravel()],
        "rgb": cell_colours(rates, norm),
    }


def main():
    data = {
        "generator": "tests/reference/make_plot_fixtures.py",
        "matplotlib": matplotlib.__version__,
        "numpy": np.__version__,
        "heatmap": heatmap_case(),
        "confusion": confusion_case(),
        "tab10": rgb255(matplotlib.colormaps["tab10"].colors),
    }
    os.makedirs(os.path.dirname(OUT), exist_ok=True)
    with open(OUT, "w") as f:
        json.dump(data, f, indent=1)
        f.write("\n")
    print("wrote", os.path.normpath(OUT), file=sys.stderr)


if __name__ == "__main__":
    main()
