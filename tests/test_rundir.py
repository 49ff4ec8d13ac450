"""Output folders (issue 10): --out never loses a user's file and never mixes two configurations.

Training runs use a tiny random data set and one- or two-epoch profiles (seconds each).
"""

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
from tiny_runs import TINY, tiny_data, tiny_profile  # noqa: F401


def _killed_run(out, pre, quantization):
    """A run killed hard (os._exit) after BNN epoch 0, in its own process."""
    code = textwrap.dedent(f"""
        import sys
        sys.path.insert(0, {str(ROOT / 'tests')!r})
        from test_rundir import tiny_data, tiny_profile
        from tfqbnn import training
        training.run({str(out)!r}, {quantization!r}, tiny_profile(), 0, data=tiny_data(), pretrain_root={str(pre)!r},
                     verbose=0, fail_after_epoch=0)
    """)
    env = dict(os.environ, PYTHONPATH=str(ROOT), TF_CPP_MIN_LOG_LEVEL="2")
    return subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=600)


def _epochs(out):
    lines = (Path(out) / "log.csv").read_text().splitlines()
    return [int(line.split(",")[0]) for line in lines[1:]]


def test_killed_fp32_then_jq4_on_the_same_out_is_refused(tmp_path):
    from tfqbnn import training

    out, pre = tmp_path / "run", tmp_path / "pre"
    killed = _killed_run(out, pre, "fp32")
    assert killed.returncode == 3, killed.stderr[-2000:]
    with pytest.raises(ValueError) as e:
        training.run(out, "jq4", tiny_profile(), 0, data=tiny_data(), pretrain_root=pre, verbose=0)
    msg = str(e.value)
    assert msg.startswith(f"{out}: ") and "quantization.strategy" in msg and "\n" not in msg
    assert _epochs(out) == [0]  # the refused run changed nothing
    # --overwrite: the jq4 run starts at epoch 0 from its own initial state, and is labelled by what it is
    model = training.run(out, "jq4", tiny_profile(), 0, data=tiny_data(), pretrain_root=pre, verbose=0,
                         overwrite=True)
    assert _epochs(out) == [0, 1]
    run = json.loads((out / "run.json").read_text())
    assert run["status"] == "done" and run["fingerprint"]["quantization"]["strategy"] == "jq"
    assert model.layers[0].quantization.name == "jq4"


def test_foreign_out_is_refused_and_user_files_survive(tmp_path):
    from tfqbnn import training

    out, pre = tmp_path / "mine", tmp_path / "pre"
    (out / "backup").mkdir(parents=True)
    (out / "backup" / "thesis.tex").write_text("years of work")
    (out / "notes.txt").write_text("mine")
    with pytest.raises(ValueError, match=r"not empty and not a tfqbnn train run") as e:
        training.run(out, "jq4", tiny_profile(), 0, data=tiny_data(), pretrain_root=pre, verbose=0)
    assert str(e.value).startswith(f"{out}: ") and not pre.exists()  # refused before pretraining
    training.run(out, "jq4", tiny_profile(), 0, data=tiny_data(), pretrain_root=pre, verbose=0, overwrite=True)
    assert (out / "backup" / "thesis.tex").read_text() == "years of work"
    assert (out / "notes.txt").read_text() == "mine" and (out / "model.keras").is_file()
    # a user's file under a name the tool writes is never replaced, --overwrite or not
    other = tmp_path / "other"
    other.mkdir()
    (other / "model.keras").write_bytes(b"my model")
    with pytest.raises(ValueError, match=r"holds 'model.keras', which tfqbnn did not write"):
        training.run(other, "jq4", tiny_profile(), 0, data=tiny_data(), pretrain_root=pre, verbose=0,
                     overwrite=True)
    assert (other / "model.keras").read_bytes() == b"my model"


def test_same_configuration_resumes_then_is_reused(tmp_path):
    from tfqbnn import training

    out, pre = tmp_path / "run", tmp_path / "pre"
    killed = _killed_run(out, pre, "jq4")
    assert killed.returncode == 3, killed.stderr[-2000:]
    assert _epochs(out) == [0] and any((out / "tfqbnn-scratch" / "backup").iterdir())
    assert json.loads((out / "run.json").read_text())["status"] == "running"
    training.run(out, "jq4", tiny_profile(), 0, data=tiny_data(), pretrain_root=pre, verbose=0)
    assert _epochs(out) == [0, 1]  # resumed at epoch 1: nothing lost, nothing repeated
    assert not (out / "tfqbnn-scratch").exists()
    stamp = (out / "model.keras").stat().st_mtime_ns
    training.run(out, "jq4", tiny_profile(), 0, data=tiny_data(), pretrain_root=pre, verbose=0)
    assert (out / "model.keras").stat().st_mtime_ns == stamp and _epochs(out) == [0, 1]  # finished: reused
    # other data under the same names is another run
    with pytest.raises(ValueError, match=r"data\.sha256"):
        training.run(out, "jq4", tiny_profile(), 0, data=tiny_data(seed=1), pretrain_root=pre, verbose=0)


def test_overwrite_deletes_only_listed_own_files(tmp_path):
    from tfqbnn.rundir import RunDir

    d = tmp_path / "run"
    d.mkdir()
    (d / "notes.txt").write_text("mine")
    (d / "log.csv").write_text("old run")
    (tmp_path / "outside.txt").write_text("mine too")
    # a manifest claiming the user's files as its own (crafted or from a bug)
    (d / "run.json").write_text(json.dumps({"tool": "tfqbnn", "kind": "train", "fingerprint": {"seed": 1},
                                            "files": ["log.csv", "notes.txt", "../outside.txt", "/etc/passwd"]}))
    rd = RunDir(d, "train", {"seed": 2}, ["log.csv", "model.keras"])
    with pytest.raises(ValueError, match=r"holds a train run with seed=1, not 2; .*--overwrite"):
        rd.open()
    assert RunDir(d, "train", {"seed": 2}, ["log.csv", "model.keras"], overwrite=True).open() == "new"
    assert not (d / "log.csv").exists()  # listed and ours: replaced
    assert (d / "notes.txt").read_text() == "mine" and (tmp_path / "outside.txt").read_text() == "mine too"
    assert json.loads((d / "run.json").read_text())["fingerprint"] == {"seed": 2}
    with pytest.raises(ValueError, match=r"plain file names"):
        RunDir(d, "train", {}, ["../x"])


def test_atomic_write_keeps_the_old_file_on_a_crash(tmp_path):
    from tfqbnn import rundir

    p = tmp_path / "metrics.json"
    rundir.write_json(p, {"a": 1})
    with pytest.raises(RuntimeError):
        with rundir.atomic_path(p) as tmp:
            tmp.write_text('{"a": ')  # half written, then the crash
            raise RuntimeError("killed")
    assert json.loads(p.read_text()) == {"a": 1} and sorted(os.listdir(tmp_path)) == ["metrics.json"]
    rundir.savez_compressed(tmp_path / "x.npz", a=np.arange(3))
    assert np.load(tmp_path / "x.npz")["a"].tolist() == [0, 1, 2]


def _tiny_model(path):
    from tfqbnn import models

    m = models.mlp(quantization="jq4", num_examples=256, seed=0)
    m.save(path)
    return path


def test_evaluate_refuses_a_foreign_out(tmp_path, monkeypatch):
    import tfqbnn.datasets

    monkeypatch.setattr(tfqbnn.datasets, "load_dirty_mnist", lambda **kw: tiny_data())
    sys.path.insert(0, str(ROOT / "scripts"))
    import evaluate

    model = _tiny_model(tmp_path / "model.keras")
    out = tmp_path / "results"
    out.mkdir()
    (out / "metrics.json").write_text("my own metrics")
    with pytest.raises(SystemExit, match=rf"{out}: not empty and not a tfqbnn evaluate run"):
        evaluate.main([str(model), "--out", str(out), "--samples", "2"])
    with pytest.raises(SystemExit, match=r"holds 'metrics.json', which tfqbnn did not write"):
        evaluate.main([str(model), "--out", str(out), "--samples", "2", "--overwrite"])
    assert (out / "metrics.json").read_text() == "my own metrics"
    fresh = tmp_path / "eval"
    evaluate.main([str(model), "--out", str(fresh), "--samples", "2"])
    evaluate.main([str(model), "--out", str(fresh), "--samples", "2"])  # same evaluation: rewritten
    assert json.loads((fresh / "metrics.json").read_text())["num_samples"] == 2
    with pytest.raises(SystemExit, match=r"samples=2, not 3"):
        evaluate.main([str(model), "--out", str(fresh), "--samples", "3"])
    evaluate.main([str(model), "--out", str(fresh), "--samples", "3", "--overwrite"])
    assert json.loads((fresh / "metrics.json").read_text())["num_samples"] == 3
    assert sorted(p.name for p in fresh.iterdir()) == ["metrics.json", "per_image.npz", "run.json", "scatter.png"]


def test_sweep_refuses_cells_of_another_profile(tmp_path, monkeypatch):
    from tfqbnn import sweep, training

    monkeypatch.setitem(training.PROFILES, "tinyA", tiny_profile())
    monkeypatch.setitem(training.PROFILES, "tinyB", tiny_profile(bnn_epochs=3))
    cells = [sweep.Cell("fp32", "fp32")]
    foreign = tmp_path / "mine"
    foreign.mkdir()
    (foreign / "table.md").write_text("my table")
    with pytest.raises(ValueError, match=r"not empty and not a tfqbnn sweep run"):
        sweep.run_sweep(foreign, (0,), "tinyA", cells, data=tiny_data(), num_samples=2)
    assert (foreign / "table.md").read_text() == "my table"
    out = tmp_path / "sweep"
    rows, _ = sweep.run_sweep(out, (0,), "tinyA", cells, data=tiny_data(), num_samples=2)
    assert [r["cell"] for r in rows] == ["fp32"]
    # another profile into the same folder must not pick up the tinyA cell as finished
    with pytest.raises(ValueError, match=r'profile\.name="tinyA", not "tinyB"'):
        sweep.run_sweep(out, (0,), "tinyB", cells, data=tiny_data(), num_samples=2)


def test_sweep_ray_installs_a_folder_by_one_rename_replacing_an_unfinished_one(tmp_path):
    from tfqbnn.sweep_ray import install_tree

    dest = tmp_path / "jq4" / "s0"
    dest.mkdir(parents=True)
    (dest / "log.csv").write_text("epoch\n0\n")  # an unfinished cell (no metrics.json)
    (dest / "run.json").write_text("{}")
    stale = tmp_path / "jq4" / ".s0.incoming-999"  # left by a driver killed while installing
    stale.mkdir()
    (stale / "metrics.json").write_text("half")
    install_tree(dest, {"metrics.json": b'{"cell": "jq4"}', "tensorboard/train/events": b"e"})
    assert sorted(p.relative_to(dest).as_posix() for p in dest.rglob("*")) == [
        "metrics.json", "tensorboard", "tensorboard/train", "tensorboard/train/events"]
    assert [p.name for p in (tmp_path / "jq4").iterdir()] == ["s0"]
    install_tree(tmp_path / "fp32" / "s1", {"metrics.json": b"{}"})  # a new folder and its parent
    assert (tmp_path / "fp32" / "s1" / "metrics.json").read_bytes() == b"{}"
    with pytest.raises(ValueError, match="not a path inside its folder"):
        install_tree(tmp_path / "fp32" / "s2", {"../../escaped": b"x"})
    assert sorted(p.name for p in (tmp_path / "fp32").iterdir()) == ["s1"] and not (tmp_path.parent / "escaped").exists()
