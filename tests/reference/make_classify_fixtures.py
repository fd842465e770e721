#!/usr/bin/env python3
"""Reference values for tests/stats/test_classify.c (src/stats/classify.h).

Writes tests/fixtures/stats/classify_reference.json with seeded datasets and
what scikit-learn computes on them:

  logreg  LogisticRegression(C=1/lambda, multi_class="multinomial",
          solver="lbfgs", tol=1e-12, max_iter=10000) on StandardScaler
          output: coef_, intercept_ (centred across classes) and
          predict_proba of the first rows.  L-BFGS-B stops on its relative
          objective change (ftol) before a 1e-12 gradient, so every solution
          is also polished here by Newton's method on the same objective
          (numpy, exact Hessian, to a gradient below 1e-11) and the script
          asserts that the two agree to 1e-5.  The fixture keeps both:
          sklearn's numbers (compared at 1e-5) and the polished optimum
          (compared at 1e-6).
  tree    DecisionTreeClassifier(max_depth=3) with all features: a single
          CART tree is deterministic up to ties, so kvlab's one-tree forest
          without bootstrap must match its node count, predictions and
          importances.  The features are multiples of 1/32 so sklearn's
          float32 copy of X is exact.
  forest  RandomForestClassifier(n_estimators=100) stratified 5-fold CV
          accuracy (pooled held-out predictions), averaged over 30 seeds, and
          feature_importances_ averaged over 10 seeds of 200 trees.

Run with Debian's python3 (numpy 1.24, scikit-learn 1.2.1):
    /usr/bin/python3 tests/reference/make_classify_fixtures.py
"""
import json
import os
import sys

import numpy as np
import sklearn
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedKFold, cross_val_predict
from sklearn.preprocessing import StandardScaler
from sklearn.tree import DecisionTreeClassifier

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "..", "fixtures", "stats", "classify_reference.json")
N_PROBA_ROWS = 12
# The CV accuracy of one seeded run varies (sd ~0.03 on random labels), so
# the reference is the mean of many.
CV_REPEATS = 30


def rounded(x, decimals=4):
    """Round so that the JSON text is the exact value both sides use."""
    return np.round(np.asarray(x, dtype=np.float64), decimals)


def softmax(s):
    s = s - s.max(axis=1, keepdims=True)
    e = np.exp(s)
    return e / e.sum(axis=1, keepdims=True)


def newton_polish(z, y, k, lam, coef, intercept, iters=50):
    """Minimise sum_i -log softmax(W z_i + b)[y_i] + lam/2 ||W||^2 by Newton
    steps from sklearn's solution (exact Hessian, lstsq for the singular
    intercept direction).  Returns W, b (b centred) and the final gradient."""
    n, d = z.shape
    za = np.hstack([z, np.ones((n, 1))])
    theta = np.hstack([coef, intercept[:, None]])  # k x (d+1)
    onehot = np.eye(k)[y]
    reg = np.full(d + 1, lam)
    reg[d] = 0.0
    for _ in range(iters):
        p = softmax(za @ theta.T)
        g = (p - onehot).T @ za + theta * reg
        h = np.zeros((k * (d + 1), k * (d + 1)))
        for a in range(k):
            for c in range(k):
                w = p[:, a] * ((a == c) - p[:, c])
                h[a * (d + 1):(a + 1) * (d + 1), c * (d + 1):(c + 1) * (d + 1)] = (
                    za.T @ (za * w[:, None]))
        h += np.diag(np.tile(reg, k))
        step = np.linalg.lstsq(h, g.ravel(), rcond=None)[0]
        theta = theta - step.reshape(k, d + 1)
        if np.abs(g).max() < 1e-11:
            break
    p = softmax(za @ theta.T)
    g = (p - onehot).T @ za + theta * reg
    b = theta[:, d] - theta[:, d].mean()
    return theta[:, :d], b, np.abs(g).max()


def logreg_case(name, x, y, k, lam):
    assert len(np.unique(y)) == k
    x = rounded(x)
    z = StandardScaler().fit_transform(x)
    fits = {}
    for solver in ("lbfgs", "newton-cg"):
        m = LogisticRegression(C=1.0 / lam, multi_class="multinomial", solver=solver,
                               tol=1e-12, max_iter=10000).fit(z, y)
        if k == 2:
            # For two classes sklearn still fits the full 2-row softmax model
            # but keeps only class 1's row (_logistic.py: multi_w0[1]); the
            # penalty makes the rows sum to zero and the solvers started
            # from zero keep the intercepts summing to zero: (-w, w), (-b, b).
            coef = np.vstack([-m.coef_[0], m.coef_[0]])
            intercept = np.array([-m.intercept_[0], m.intercept_[0]])
        else:
            coef = m.coef_
            intercept = m.intercept_ - m.intercept_.mean()
        fits[solver] = (m, coef, intercept)
    m, coef, intercept = fits["newton-cg"]
    w_pol, b_pol, gmax = newton_polish(z, y, k, lam, coef, intercept)
    def dist(w, b):
        return max(np.abs(w_pol - w).max(), np.abs(b_pol - b).max())
    diff = dist(coef, intercept)
    m_lb, coef_lb, intercept_lb = fits["lbfgs"]
    diff_lb = dist(coef_lb, intercept_lb)
    print(f"logreg {name}: n={len(y)} d={x.shape[1]} k={k} lambda={lam} "
          f"|newton-cg - optimum|={diff:.1e} |lbfgs - optimum|={diff_lb:.1e} "
          f"(lbfgs n_iter={m_lb.n_iter_[0]}) optimum grad={gmax:.1e} "
          f"max|coef|={np.abs(coef).max():.2f}")
    assert diff < 1e-7, f"{name}: sklearn newton-cg is {diff} from the optimum"
    assert diff_lb < 1e-4, f"{name}: sklearn lbfgs is {diff_lb} from the optimum"
    proba = m.predict_proba(z[:N_PROBA_ROWS])
    return {
        "name": name, "n": int(len(y)), "d": int(x.shape[1]), "n_classes": k,
        "lambda": lam, "x": x.ravel().tolist(), "y": [int(v) for v in y],
        "coef": coef.ravel().tolist(), "intercept": intercept.tolist(),
        "coef_optimum": w_pol.ravel().tolist(), "intercept_optimum": b_pol.tolist(),
        "coef_lbfgs": coef_lb.ravel().tolist(), "intercept_lbfgs": intercept_lb.tolist(),
        "lbfgs_error": diff_lb,
        "proba_rows": N_PROBA_ROWS, "proba": proba.ravel().tolist(),
    }


def logreg_cases():
    rng = np.random.default_rng(20240501)
    cases = []
    # 2 classes, d = 3, features on different scales and offsets.
    x = rng.normal(size=(60, 3)) * [1.0, 5.0, 0.2] + [0.0, 10.0, -3.0]
    t = x @ [1.0, 0.3, -4.0] + rng.normal(scale=1.5, size=60)
    cases.append(logreg_case("two_class_d3", x, (t > np.median(t)).astype(int), 2, 1.0))
    # 4 classes, d = 10.
    w = rng.normal(size=(10, 4))
    x = rng.normal(size=(200, 10)) * rng.uniform(0.5, 3.0, size=10)
    y = np.argmax(x @ w + rng.gumbel(size=(200, 4)), axis=1)
    cases.append(logreg_case("four_class_d10", x, y, 4, 0.5))
    # 4 classes, d = 16, one constant feature (standardised to 0).
    w = rng.normal(size=(16, 4))
    x = rng.normal(size=(240, 16))
    y = np.argmax(x @ w * 0.7 + rng.gumbel(size=(240, 4)), axis=1)
    x[:, 5] = 3.5
    cases.append(logreg_case("four_class_d16_const", x, y, 4, 2.0))
    # Nearly separable: a wide margin with three flipped labels, weak penalty.
    x = rng.normal(size=(100, 4))
    t = x @ [2.0, -1.0, 0.5, 0.0]
    y = (t > 0).astype(int)
    for i in np.argsort(np.abs(t))[:3]:
        y[i] = 1 - y[i]
    cases.append(logreg_case("nearly_separable", x, y, 2, 0.05))
    return cases


def tree_case():
    rng = np.random.default_rng(7)
    n, d = 120, 4
    x = rng.integers(-64, 65, size=(n, d)) / 32.0
    y = np.where(x[:, 0] > 0.3, 2, np.where(x[:, 1] + 0.5 * x[:, 2] > 0, 1, 0))
    flip = rng.random(n) < 0.1
    y[flip] = rng.integers(0, 3, size=flip.sum())
    grid = rng.integers(-80, 81, size=(40, d)) / 32.0
    t = DecisionTreeClassifier(max_depth=3, random_state=0).fit(x, y)
    # Ties between features would make the tree depend on sklearn's random
    # feature order; refit with other orders and insist on one answer.
    for rs in range(1, 20):
        o = DecisionTreeClassifier(max_depth=3, random_state=rs).fit(x, y)
        assert (o.predict(grid) == t.predict(grid)).all(), "tie between features"
    print(f"tree: nodes={t.tree_.node_count} train acc={t.score(x, y):.3f}")
    return {
        "n": n, "d": d, "n_classes": 3, "max_depth": 3, "x": x.ravel().tolist(),
        "y": [int(v) for v in y], "node_count": int(t.tree_.node_count),
        "train_pred": [int(v) for v in t.predict(x)],
        "grid": grid.ravel().tolist(), "grid_pred": [int(v) for v in t.predict(grid)],
        "importance": t.feature_importances_.tolist(),
    }


def forest_case(name, x, y, k, importances=False):
    x = rounded(x)
    accs = []
    for rep in range(CV_REPEATS):
        folds = StratifiedKFold(n_splits=5, shuffle=True, random_state=rep)
        rf = RandomForestClassifier(n_estimators=100, random_state=100 + rep)
        pred = cross_val_predict(rf, x, y, cv=folds)
        accs.append(np.mean(pred == y))
    out = {"name": name, "n": int(len(y)), "d": int(x.shape[1]), "n_classes": k,
           "x": x.ravel().tolist(), "y": [int(v) for v in y],
           "sklearn_cv_accuracy": float(np.mean(accs)),
           "sklearn_cv_accuracy_sd": float(np.std(accs))}
    if importances:
        imp = np.mean([RandomForestClassifier(n_estimators=200, random_state=s)
                       .fit(x, y).feature_importances_ for s in range(10)], axis=0)
        out["sklearn_importance"] = imp.tolist()
    print(f"forest {name}: cv accuracy {np.mean(accs):.3f} (sd {np.std(accs):.3f})"
          + (f" importance {np.round(out['sklearn_importance'], 3)}" if importances else ""))
    return out


def forest_cases():
    rng = np.random.default_rng(99)
    cases = []
    # Only features 0 and 1 carry the (4-class) label.
    x = rng.normal(size=(240, 8))
    y = (x[:, 0] > 0).astype(int) + 2 * (x[:, 1] > 0).astype(int)
    cases.append(forest_case("informative01", x, y, 4, importances=True))
    # Three well separated blobs.
    centres = np.array([[4, 0, 0, 0, 0], [0, 4, 0, 0, 0], [0, 0, 4, 0, 0]], float)
    y = np.repeat(np.arange(3), 50)
    x = centres[y] + rng.normal(size=(150, 5))
    cases.append(forest_case("separable", x, y, 3))
    # Labels independent of the features.
    x = rng.normal(size=(160, 6))
    y = rng.permutation(np.repeat([0, 1], 80))
    cases.append(forest_case("random_labels", x, y, 2))
    # A moderately hard 3-class problem (noisy linear and XOR-like parts).
    x = rng.normal(size=(210, 8))
    s = x[:, 0] + 0.8 * x[:, 2] * np.sign(x[:, 3]) + rng.normal(scale=0.6, size=210)
    y = np.digitize(s, np.quantile(s, [1 / 3, 2 / 3]))
    cases.append(forest_case("medium", x, y, 3))
    return cases


def main():
    doc = {
        "generator": "tests/reference/make_classify_fixtures.py",
        "versions": {"python": sys.version.split()[0], "numpy": np.__version__,
                     "sklearn": sklearn.__version__},
        "logreg": logreg_cases(),
        "tree": tree_case(),
        "forest": forest_cases(),
    }
    os.makedirs(os.path.dirname(OUT), exist_ok=True)
    with open(OUT, "w") as f:
        json.dump(doc, f, separators=(",", ":"))
        f.write("\n")
    print(f"wrote {OUT} ({os.path.getsize(OUT)} bytes)")


if __name__ == "__main__":
    main()
