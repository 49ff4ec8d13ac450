"""MI AUROC of the JQ-4 "all" LeNet-5 per Fashion-MNIST class (issue 11: which OOD images stay unnoticed).

    PYTHONPATH=. TFQBNN_DATA_DIR=... python fashion_classes.py SWEEP_DIR [SEEDS...]

S = 30, seed 0, the whole MNIST test set against each class of the Fashion-MNIST test set (1,000 images each).
Writes fashion_classes.json next to this script.
"""
import json
import sys
from pathlib import Path

import keras

from tfqbnn import training, uncertainty

NAMES = ["T-shirt", "trouser", "pullover", "dress", "coat", "sandal", "shirt", "sneaker", "bag", "boot"]
sweep = Path(sys.argv[1])
seeds = [int(s) for s in sys.argv[2:]] or [0, 1, 2]
data = training.load_data("lenet")
rows = []
for seed in seeds:
    m = keras.models.load_model(sweep / "lenet5-jq4-all" / f"s{seed}" / "model.keras")
    mi_m = uncertainty.decompose(uncertainty.predict_mc(m, data.x_test, num_samples=30, seed=0))["epistemic"]
    mi_o = uncertainty.decompose(uncertainty.predict_mc(m, data.x_ood, num_samples=30, seed=0))["epistemic"]
    row = {"seed": seed, "mi_auroc": round(uncertainty.auroc(mi_m, mi_o), 4),
           "per_class": {NAMES[c]: round(uncertainty.auroc(mi_m, mi_o[data.y_ood == c]), 3) for c in range(10)}}
    print(json.dumps(row), flush=True)
    rows.append(row)
(Path(__file__).parent / "fashion_classes.json").write_text(json.dumps(rows, indent=1) + "\n")
