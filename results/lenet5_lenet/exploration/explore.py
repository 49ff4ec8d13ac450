"""Seed-0 exploration for issue 11 (outside the repo): one pretraining, several BNN configs."""
import dataclasses, json, sys, time
from pathlib import Path
import numpy as np
from tfqbnn import training, evaluation, sweep
from tfqbnn.training import Profile
import os
from tfqbnn import models
models._LENET_HEAD = int(os.environ.get('LENET_HEAD', 2))

root = Path(sys.argv[1]); P = int(sys.argv[2]); configs = json.loads(sys.argv[3])
seed = int(sys.argv[4]) if len(sys.argv) > 4 else 0
base = dict(pretrain_epochs=P, bnn_epochs=5, eval_images=10000, **json.loads(sys.argv[6] if len(sys.argv) > 6 else "{}"))
tag = sys.argv[7] if len(sys.argv) > 7 else ""
data = training.load_data("fast")
sub = sweep._eval_subset(data, 10000)
t = time.perf_counter()
import keras
det = (keras.models.load_model(sys.argv[5]) if len(sys.argv) > 5 and sys.argv[5] != "-" else
       training.pretrain(data, root / f"pre_P{P}{tag}_s{seed}", profile=Profile(**base), seed=seed, arch="lenet5", verbose=2))
print("pretrain s", round(time.perf_counter() - t), flush=True)
p = det.predict(data.x_test, batch_size=2048, verbose=0)
print(f"det MNIST acc P={P}: {np.mean(p.argmax(1) == data.y_test):.4f}", flush=True)
for c in configs:
    name = c.pop("name"); q = c.pop("q", "jq4"); b = c.pop("bayesian", "all")
    prof = Profile(**{**base, **c})
    t = time.perf_counter()
    m = training.train_bnn(data, det, root / f"{name}_P{P}{tag}_s{seed}", quantization=q, profile=prof, seed=seed,
                           arch="lenet5", bayesian=b, verbose=2)
    ts = time.perf_counter() - t
    met, _ = evaluation.evaluate_model(m, sub, num_samples=30, seed=seed)
    sig = [round(float(np.mean(l.sigma)), 3) for l in m.layers if hasattr(l, "rho")]
    row = dict(name=name, P=P, seed=seed, q=q, bayesian=b, **c, acc=met["accuracy"], ent=met["auroc_aleatoric"],
               mi=met["auroc_epistemic"], mi_mnist=met["mean_epistemic_mnist"], mi_ood=met["mean_epistemic_ood"],
               nll=met["nll"], train_s=round(ts), eval_s=met["eval_seconds"], sigma=sig)
    print("RESULT", json.dumps(row), flush=True)
    with open(root / "results.jsonl", "a") as f:
        f.write(json.dumps(row) + "\n")
