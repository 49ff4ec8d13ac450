"""Seed-0 exploration 2 for issue 11: learning-rate schedules and shift augmentation (outside the sweep).

    PYTHONPATH=. TFQBNN_DATA_DIR=... python explore2.py ROOT PRE_TAG '{pretrain Profile overrides}' \\
        '[{"name": ..., "bayesian": "all"|"head", <Bayesian-stage Profile overrides>}, ...]' [SEED] [DET.keras]

Base: the `lenet` profile (10 + 5 epochs, pretrain lr 3e-3, Bayesian lr 3e-4, whole test sets, each
Ambiguous-MNIST test image once), JQ-4, S = 30, metrics as in tfqbnn/sweep.py (evaluation.evaluate_model).
"""
import dataclasses, json, sys, time
from pathlib import Path
import keras
import numpy as np
from tfqbnn import training, evaluation, sweep

root = Path(sys.argv[1]); tag = sys.argv[2]; pre_over = json.loads(sys.argv[3]); configs = json.loads(sys.argv[4])
seed = int(sys.argv[5]) if len(sys.argv) > 5 else 0
base = training.PROFILES["lenet"]
data = training.load_data("lenet")
sub = sweep._eval_subset(data, base.eval_images)
t = time.perf_counter()
if len(sys.argv) > 6:
    det = keras.models.load_model(sys.argv[6])
else:
    det = training.pretrain(data, root / f"pre_{tag}_s{seed}", profile=dataclasses.replace(base, **pre_over),
                            seed=seed, arch="lenet5", verbose=2)
pre_s = round(time.perf_counter() - t)
det_acc = float(np.mean(det.predict(data.x_test, batch_size=2048, verbose=0).argmax(1) == data.y_test))
print(f"pretrain {tag}: {pre_s} s, det MNIST acc {det_acc:.4f}", flush=True)
for c in configs:
    c = dict(c); name = c.pop("name"); b = c.pop("bayesian", "all")
    prof = dataclasses.replace(base, **{**pre_over, **c})
    t = time.perf_counter()
    m = training.train_bnn(data, det, root / f"{name}_{tag}_s{seed}", quantization="jq4", profile=prof, seed=seed,
                           arch="lenet5", bayesian=b, verbose=2)
    ts = time.perf_counter() - t
    met, _ = evaluation.evaluate_model(m, sub, num_samples=30, seed=seed)
    sig = [round(float(np.mean(l.sigma)), 3) for l in m.layers if hasattr(l, "rho")]
    row = dict(name=name, pre=tag, pre_overrides=pre_over, det_acc=det_acc, seed=seed, q="jq4", bayesian=b, **c,
               acc=met["accuracy"], ent=met["auroc_aleatoric"], mi=met["auroc_epistemic"],
               mi_mnist=met["mean_epistemic_mnist"], mi_ood=met["mean_epistemic_ood"], nll=met["nll"],
               train_s=round(ts), eval_s=met["eval_seconds"], sigma=sig)
    print("RESULT", json.dumps(row), flush=True)
    with open(root / "results.jsonl", "a") as f:
        f.write(json.dumps(row) + "\n")
