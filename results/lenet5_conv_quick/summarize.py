"""Mean ± sd (ddof=1) table of the LeNet-5 and MLP conv-quick runs from their metrics.json files:
    python results/lenet5_conv_quick/summarize.py results/lenet5_conv_quick results/mlp_quick_conv_quick
"""
import json, glob, sys, numpy as np
rows = {}
for root in sys.argv[1:]:
    for f in sorted(glob.glob(f"{root}/*/s*/metrics.json")):
        m = json.load(open(f))
        rows.setdefault(("LeNet-5 " if m.get("arch") == "lenet5" else "MLP ") + m["cell"].replace("lenet5-", ""), []).append(m)
keys = [("accuracy", 100, 2), ("auroc_aleatoric", 1, 4), ("auroc_epistemic", 1, 4), ("mean_epistemic_mnist", 1, 4),
        ("mean_epistemic_ambiguous", 1, 4), ("mean_epistemic_ood", 1, 4), ("nll", 1, 3), ("ece", 1, 3)]
print("| model | seeds | MNIST accuracy % | AUROC entropy MNIST/Amb | AUROC MI MNIST/Fashion | mean MI MNIST | mean MI Amb "
      "| mean MI Fashion | NLL | ECE | stored bytes |")
print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
for name, ms in rows.items():
    cells = []
    for k, sc, nd in keys:
        v = np.array([m[k] for m in ms]) * sc
        cells.append(f"{v.mean():.{nd}f} ± {v.std(ddof=1) if len(v) > 1 else 0:.{nd}f}")
    print(f"| {name} | {len(ms)} | " + " | ".join(cells) + f" | {ms[0]['param_bytes']:,} |")
