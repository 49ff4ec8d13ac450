"""The paper pipeline's scripts on the smoke profile: train, kill-and-resume, evaluate, sweep."""

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.slow


def _env(cache):
    env = dict(os.environ, TFQBNN_CACHE_DIR=str(cache), TF_CPP_MIN_LOG_LEVEL="2")
    return env


def _train(cache, out, pre, *extra):
    return subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "train.py"), "--profile", "smoke", "--strategy", "jq", "--bits", "4",
         "--out", str(out), "--pretrain-dir", str(pre), "--quiet", *extra],
        env=_env(cache), capture_output=True, text=True, timeout=600,
    )


def _pretrained(pre):
    (model,) = pre.glob("smoke-s0-softplus-mlp-*/model.keras")  # one cache entry per stage-1 fingerprint
    return model


def _epochs(log):
    with open(log) as f:
        return [int(r["epoch"]) for r in csv.DictReader(f)]


@pytest.fixture(scope="module")
def trained(small_ambiguous_cache, tmp_path_factory):
    """A smoke run that is killed after BNN epoch 1 and then resumed."""
    d = tmp_path_factory.mktemp("pipeline")
    out, pre = d / "jq4", d / "pretrain"
    killed = _train(small_ambiguous_cache, out, pre, "--fail-after-epoch", "1")
    state = {
        "killed_rc": killed.returncode,
        "epochs_at_kill": _epochs(out / "log.csv"),
        "model_at_kill": (out / "model.keras").exists(),
        "backup_at_kill": any((out / "tfqbnn-scratch" / "backup").iterdir()),
        "pretrain_mtime": _pretrained(pre).stat().st_mtime,
    }
    resumed = _train(small_ambiguous_cache, out, pre)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    return d, out, pre, state


def test_kill_and_resume_loses_no_epoch(trained):
    _, out, pre, state = trained
    assert state["killed_rc"] == 3  # the injected hard kill
    assert state["epochs_at_kill"] == [0, 1] and not state["model_at_kill"] and state["backup_at_kill"]
    assert _epochs(out / "log.csv") == [0, 1, 2]  # resumed at epoch 2: nothing lost, nothing repeated
    assert (out / "model.keras").exists() and not (out / "tfqbnn-scratch").exists()
    info = json.loads((out / "train.json").read_text())
    assert info["quantization"]["strategy"] == "jq" and info["profile"]["bnn_epochs"] == 3
    # the shared stage-1 model was reused, not retrained
    assert _pretrained(pre).stat().st_mtime == state["pretrain_mtime"]
    assert any((out / "tensorboard").rglob("events.out.tfevents.*"))


def test_evaluate_script(trained, small_ambiguous_cache, monkeypatch):
    d, out, _, _ = trained
    monkeypatch.setenv("TFQBNN_CACHE_DIR", str(small_ambiguous_cache))
    sys.path.insert(0, str(ROOT / "scripts"))
    import evaluate

    evaluate.main([str(out / "model.keras"), "--out", str(d / "eval"), "--samples", "4",
                   "--ambiguous-profile", "small"])
    m = json.loads((d / "eval" / "metrics.json").read_text())
    assert m["num_samples"] == 4 and m["eval_images"] == 80000
    assert 0.5 < m["accuracy"] <= 1.0
    for k in ("auroc_aleatoric", "auroc_epistemic", "auroc_entropy_ood", "auroc_mi_ambiguous", "nll", "ece"):
        assert np.isfinite(m[k])
    per = np.load(d / "eval" / "per_image.npz")
    assert per["mnist_epistemic"].shape == (10000,) and per["ambiguous_aleatoric"].shape == (60000,)
    assert np.all(per["ood_epistemic"] >= 0)
    assert (d / "eval" / "scatter.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with pytest.raises(SystemExit, match="no such model file"):
        evaluate.main([str(d / "missing.keras"), "--out", str(d / "x")])


def test_sweep_smoke_resumes_and_shows_2bit_collapse(small_ambiguous_cache, tmp_path, monkeypatch):
    monkeypatch.setenv("TFQBNN_CACHE_DIR", str(small_ambiguous_cache))
    sys.path.insert(0, str(ROOT / "scripts"))
    import sweep

    args = ["--profile", "smoke", "--seeds", "0", "--only", "fp32", "jq2", "--samples", "3", "--out", str(tmp_path)]
    sweep.main(args)
    rows = list(csv.DictReader(open(tmp_path / "table.csv")))
    assert [r["cell"] for r in rows] == ["fp32", "jq2"]
    acc = {r["cell"]: float(r["accuracy"]) for r in rows}
    assert acc["fp32"] > 0.6 and acc["jq2"] < 0.2  # 2 bits on the fixed [-1, 1] grid: ternary, all zero
    assert {r["cell"]: int(r["param_bytes"]) for r in rows} == {"fp32": 715200, "jq2": 44700}
    md = (tmp_path / "table.md").read_text()
    assert "| jq2 | 1 |" in md and (tmp_path / "bits.png").exists()
    stamp = (tmp_path / "jq2" / "s0" / "metrics.json").stat().st_mtime
    sweep.main(args)  # finished cells are skipped
    assert (tmp_path / "jq2" / "s0" / "metrics.json").stat().st_mtime == stamp
    with pytest.raises(SystemExit, match="unknown cells"):
        sweep.main(["--only", "jq9", "--out", str(tmp_path)])
