"""Why the Bayesian head's MI separates Fashion-MNIST less well than the fully Bayesian LeNet (issue 11).

    PYTHONPATH=. TFQBNN_DATA_DIR=... python head_features.py SWEEP_DIR [SEEDS...]

For every JQ-4 "head" and "all" model of a `tfqbnn-sweep --arch lenet5` folder, on the whole MNIST and
Fashion-MNIST test sets: the input of the model's first variational layer (the deterministic features for
"head", the image for "all") and
- `norm_auroc`: AUROC of its L2 norm for telling Fashion (positive) from MNIST: below 0.5 = Fashion's is smaller;
- `gda_auroc`: AUROC of a class-conditional Gaussian density of it (fitted on 20,000 training images; DDU's
  feature density), the best-known unsupervised feature-space OOD score;
- `linear_auroc`: a logistic regression trained on half of each test set, scored on the other halves
  (the features *can* tell the sets apart: a supervised reference, not an attainable score);
- `mi_auroc`: the model's MI AUROC (S = 30, seed 0), and `mi_norm_spearman`: the rank correlation of MI with the
  squared norm over both sets.
Writes feature_analysis.json next to this script and prints one line per model.
"""
import json
import sys
from pathlib import Path

import keras
import numpy as np
from scipy.stats import spearmanr
from sklearn.linear_model import LogisticRegression

from tfqbnn import training, uncertainty

sweep = Path(sys.argv[1])
seeds = [int(s) for s in sys.argv[2:]] or [0, 1, 2]
data = training.load_data("lenet")


def features(model, x):
    k = next(i for i, l in enumerate(model.layers) if hasattr(l, "rho"))
    if k == 0:
        return np.asarray(x, np.float64).reshape(len(x), -1)
    f = keras.Model(model.inputs, model.layers[k - 1].output)
    return f.predict(x, batch_size=2048, verbose=0).reshape(len(x), -1).astype(np.float64)


def gda_scores(train, labels, xs):
    """Negative max class log-density (higher = more OOD)."""
    out = [np.full(len(x), -np.inf) for x in xs]
    for c in range(10):
        z = train[labels == c]
        mu, cov = z.mean(0), np.cov(z.T) + 1e-3 * np.eye(z.shape[1])
        chol = np.linalg.cholesky(cov)
        logdet = np.log(np.diag(chol)).sum()
        for i, x in enumerate(xs):
            d = np.linalg.solve(chol, (x - mu).T)
            out[i] = np.maximum(out[i], -0.5 * (d ** 2).sum(0) - logdet)
    return [-o for o in out]


rows = []
for seed in seeds:
    for cell in ("lenet5-jq4-head", "lenet5-jq4-all"):
        m = keras.models.load_model(sweep / cell / f"s{seed}" / "model.keras")
        fm, fo = features(m, data.x_test), features(m, data.x_ood)
        ftr = features(m, data.x_train[:20000])
        nm, no = np.linalg.norm(fm, axis=1), np.linalg.norm(fo, axis=1)
        gm, go = gda_scores(ftr, data.y_train[:20000], [fm, fo]) if fm.shape[1] <= 1024 else (None, None)
        h = len(fm) // 2
        clf = LogisticRegression(max_iter=3000).fit(np.r_[fm[:h], fo[:h]], np.r_[np.zeros(h), np.ones(h)])
        dm = uncertainty.decompose(uncertainty.predict_mc(m, data.x_test, num_samples=30, seed=0))
        do = uncertainty.decompose(uncertainty.predict_mc(m, data.x_ood, num_samples=30, seed=0))
        mi = np.r_[dm["epistemic"], do["epistemic"]]
        row = dict(cell=cell, seed=seed, dim=int(fm.shape[1]),
                   norm_auroc=round(uncertainty.auroc(nm, no), 4),
                   gda_auroc=None if gm is None else round(uncertainty.auroc(gm, go), 4),
                   linear_auroc=round(uncertainty.auroc(clf.decision_function(fm[h:]), clf.decision_function(fo[h:])), 4),
                   mi_auroc=round(uncertainty.auroc(dm["epistemic"], do["epistemic"]), 4),
                   mi_norm_spearman=round(float(spearmanr(mi, np.r_[nm, no] ** 2)[0]), 3),
                   median_norm_mnist=round(float(np.median(nm)), 3), median_norm_fashion=round(float(np.median(no)), 3))
        print(json.dumps(row), flush=True)
        rows.append(row)
(Path(__file__).parent / "feature_analysis.json").write_text(json.dumps(rows, indent=1) + "\n")
