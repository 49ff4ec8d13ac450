"""Files the tools write: a user's files inside the tool's folders, planted links, two processes on one run
folder, finished runs whose files no longer match, an export killed half way, C sources over a user's files.
Untrained tiny models and `RunDir` directly: seconds, no data files."""

import json
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import keras
import numpy as np
import pytest

from tflite_export import artifacts, c_source, convert
from tfqbnn.layers import DenseVariational
from tfqbnn.rundir import RunDir, RunDirError

ROOT = Path(__file__).resolve().parents[1]
# rundir.py loaded on its own: a helper process starts in well under a second (no TensorFlow)
_LOAD_RUNDIR = textwrap.dedent(f"""
    import importlib.util, sys
    sys.path.insert(0, {str(ROOT)!r})
    spec = importlib.util.spec_from_file_location("rundir", {str(ROOT / 'tfqbnn' / 'rundir.py')!r})
    rundir = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(rundir)
""")


def _tiny():
    return keras.Sequential([keras.Input((32,)), DenseVariational(12, activation="softplus", quantization="jq4", seed=3),
                             DenseVariational(10, quantization="jq4", seed=4), keras.layers.Softmax()])


def _x(n=16):
    return np.random.default_rng(0).random((n, 32)).astype(np.float32)


# --- --overwrite and the tool's own folders ----------------------------------------------------------------


def test_overwrite_keeps_user_files_inside_the_tools_folders(tmp_path):
    d = tmp_path / "run"
    (d / "tensorboard" / "train").mkdir(parents=True)
    (d / "tfqbnn-scratch" / "backup").mkdir(parents=True)
    (d / "tensorboard" / "train" / "events.out.tfevents.1.host.2.v2").write_bytes(b"ours")
    (d / "tfqbnn-scratch" / "backup" / "latest.weights.h5").write_bytes(b"ours")
    (d / "tensorboard" / "my-notes.txt").write_text("mine")
    (d / "tfqbnn-scratch" / "thesis.tex").write_text("mine too")
    (d / "run.json").write_text(json.dumps({"tool": "tfqbnn", "kind": "train", "fingerprint": {"seed": 1},
                                            "files": ["run.json", "tensorboard", "tfqbnn-scratch"]}))
    rd = RunDir(d, "train", {"seed": 2}, ["tensorboard"], overwrite=True)
    assert rd.open() == "new"
    assert (d / "tensorboard" / "my-notes.txt").read_text() == "mine"
    assert (d / "tfqbnn-scratch" / "thesis.tex").read_text() == "mine too"
    assert not (d / "tensorboard" / "train").exists() and not (d / "tfqbnn-scratch" / "backup").exists()
    rd.finish()
    rd.remove_scratch()  # the end of a run: our scratch goes, the user's file stays
    assert (d / "tfqbnn-scratch" / "thesis.tex").read_text() == "mine too"


# --- two processes on one run folder ------------------------------------------------------------------------


def _holder(out, fingerprint):
    code = _LOAD_RUNDIR + textwrap.dedent(f"""
        rd = rundir.RunDir({str(out)!r}, "train", {fingerprint!r}, ["log.csv"])
        print(rd.open(), flush=True)
        sys.stdin.read()  # hold the folder until the test closes stdin
    """)
    p = subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert p.stdout.readline().strip() == "new"
    return p


def test_a_second_process_is_refused_naming_the_holders_pid(tmp_path):
    out = tmp_path / "run"
    holder = _holder(out, {"seed": 1})
    try:
        for overwrite in (False, True):
            with pytest.raises(RunDirError) as e:
                RunDir(out, "train", {"seed": 1}, ["log.csv"], overwrite=overwrite).open()
            msg = str(e.value)
            assert msg.startswith(f"{out}: ") and f"PID {holder.pid}" in msg and "\n" not in msg
            assert "tmp" not in msg[len(str(out)):]
    finally:
        holder.stdin.close()
        holder.wait(timeout=30)
    assert RunDir(out, "train", {"seed": 1}, ["log.csv"]).open() == "resume"  # the holder has gone


def test_two_processes_starting_at_once_are_never_both_new(tmp_path):
    code = _LOAD_RUNDIR + textwrap.dedent("""
        import os, time
        out, go = sys.argv[1], sys.argv[2]
        while not os.path.exists(go):
            pass
        try:
            print(rundir.RunDir(out, "train", {"seed": 1}, ["log.csv"]).open(), flush=True)
            time.sleep(1.0)
        except rundir.RunDirError as e:
            print("refused", e)
    """)
    for trial in range(6):
        out, go = tmp_path / f"run{trial}", tmp_path / f"go{trial}"
        procs = [subprocess.Popen([sys.executable, "-c", code, str(out), str(go)], stdout=subprocess.PIPE, text=True)
                 for _ in range(2)]
        time.sleep(0.5)
        go.touch()
        results = sorted(p.communicate(timeout=60)[0].strip() for p in procs)
        # one starts the run; the other is refused while it runs, or (if it came later) resumes it
        assert results[0] == "new" and (results[1] == "resume" or results[1].startswith("refused")
                                        and "in use by another tfqbnn process (PID" in results[1]), results


def test_our_own_leftover_temp_file_is_never_named_or_counted(tmp_path):
    out = tmp_path / "run"
    out.mkdir()
    code = _LOAD_RUNDIR + textwrap.dedent(f"""
        import os
        os.replace = lambda *a, **k: os._exit(9)  # killed between writing the temp file and renaming it
        rundir.RunDir({str(out)!r}, "train", {{"seed": 1}}, ["log.csv"]).open()
    """)
    assert subprocess.run([sys.executable, "-c", code], timeout=60).returncode == 9
    assert [p.name for p in out.iterdir() if "run.json" in p.name]  # the leftover
    assert RunDir(out, "train", {"seed": 1}, ["log.csv"]).open() == "new"
    (out / "notes.txt").write_text("mine")
    (out / "run.json").unlink()
    with pytest.raises(RunDirError, match=r"holds 'notes.txt'\)") as e:
        RunDir(out, "train", {"seed": 1}, ["log.csv"]).open()
    assert "tmp" not in str(e.value)[len(str(out)):]


# --- a finished run is finished only while its files match ---------------------------------------------------


def _finished(d):
    rd = RunDir(d, "train", {"quantization": "jq4"}, ["model.keras"])
    assert rd.open() == "new"
    (d / "model.keras").write_bytes(b"a jq4 model")
    rd.finish()


def test_a_finished_run_with_an_edited_fingerprint_is_not_reported_done(tmp_path):
    d = tmp_path / "run"
    _finished(d)
    assert RunDir(d, "train", {"quantization": "jq4"}, ["model.keras"]).open() == "done"
    man = json.loads((d / "run.json").read_text())
    man["fingerprint"]["quantization"] = "jq8"  # as `jq '.fingerprint.quantization = "jq8"'` would
    (d / "run.json").write_text(json.dumps(man))
    with pytest.raises(RunDirError, match=r"does not match .*--overwrite to rebuild") as e:
        RunDir(d, "train", {"quantization": "jq8"}, ["model.keras"]).open()
    assert "\n" not in str(e.value)
    assert RunDir(d, "train", {"quantization": "jq8"}, ["model.keras"], overwrite=True).open() == "new"
    assert not (d / "model.keras").exists()  # rebuilt from scratch


def test_a_finished_run_whose_file_changed_is_not_reported_done(tmp_path):
    d = tmp_path / "run"
    _finished(d)
    (d / "model.keras").write_bytes(b"another model")
    with pytest.raises(RunDirError, match=r"model.keras.* does not match"):
        RunDir(d, "train", {"quantization": "jq4"}, ["model.keras"]).open()


# --- tfqbnn-export ------------------------------------------------------------------------------------------


def test_export_never_writes_through_planted_links(tmp_path):
    out, outside = tmp_path / "out", tmp_path / "outside"
    out.mkdir()
    outside.mkdir()
    for name in ("model.tflite", "model_split.tflite", "manifest.json"):
        (outside / name).write_text("the user's file")
        for tmp in (f"{name}.tmp", f".{name}.tmp{os.getpid()}"):
            (out / tmp).symlink_to(outside / name)
    convert.export_all(_tiny(), out, calibration_x=_x())
    artifacts.load_exported(out)
    for name in ("model.tflite", "model_split.tflite", "manifest.json"):
        assert (outside / name).read_text() == "the user's file"


class _Killed(BaseException):
    pass


def _export_killed_before_the_manifest(out, monkeypatch):
    """An export killed after model.tflite is in place and before manifest.json is."""
    real, done = os.replace, []

    def replace(src, dst, *a, **k):
        if Path(dst).name == "manifest.json" and "model.tflite" in done:
            raise _Killed
        real(src, dst, *a, **k)
        done.append(Path(dst).name)

    monkeypatch.setattr(os, "replace", replace)
    with pytest.raises(_Killed):
        convert.export_all(_tiny(), out, seed=9, calibration_x=_x())
    monkeypatch.setattr(os, "replace", real)


@pytest.mark.parametrize("earlier_export", [False, True])
def test_an_export_killed_before_its_manifest_is_refused_then_repaired(tmp_path, monkeypatch, earlier_export):
    out = tmp_path / "out"
    if earlier_export:
        convert.export_all(_tiny(), out, seed=1, calibration_x=_x())
    _export_killed_before_the_manifest(out, monkeypatch)
    with pytest.raises(ValueError, match=r"manifest.json: .*interrupted.*rerun tfqbnn-export") as e:
        artifacts.load_exported(out)
    assert "\n" not in str(e.value)
    convert.export_all(_tiny(), out, seed=9, calibration_x=_x())  # the rerun repairs the folder
    assert artifacts.load_exported(out).default_seed == 9


@pytest.mark.parametrize("problem", ["no calibration", "bad model"])
def test_a_refused_export_leaves_no_empty_folder(tmp_path, problem):
    out = tmp_path / "new" / "out"
    model = _tiny() if problem == "no calibration" else keras.Sequential(
        [keras.Input((32,)), DenseVariational(10, seed=1), keras.layers.Softmax(axis=0)])
    with pytest.raises(ValueError):
        convert.export_all(model, out, calibration_x=None if problem == "no calibration" else _x())
    assert not out.exists() and not out.parent.exists()


@pytest.mark.parametrize("blocked", ["read-only", "under a file"])
def test_an_out_that_cannot_be_written_is_one_line_naming_it(tmp_path, exported, blocked):
    out = tmp_path / "blocked"
    if blocked == "read-only":
        if os.geteuid() == 0:
            pytest.skip("root writes into read-only folders")
        out.mkdir()
        out.chmod(0o555)
    else:
        out.write_text("a file, not a folder")
    try:
        for write in (lambda d: convert.export_all(_tiny(), d, calibration_x=_x()),
                      lambda d: c_source.generate(exported, d, *_images(), num_samples=2),
                      lambda d: RunDir(d, "train", {}, ["log.csv"]).open()):
            for d in (out, out / "sub"):
                with pytest.raises(ValueError, match=r"(ermission|ot a directory)") as e:
                    write(d)
                assert str(e.value).startswith(str(out)) and "\n" not in str(e.value)
    finally:
        if out.is_dir():
            out.chmod(0o755)


def test_c_sources_cli_refuses_bad_counts_before_any_work(exported, tmp_path):
    env = dict(os.environ, PYTHONPATH=str(ROOT), TF_CPP_MIN_LOG_LEVEL="3")
    for args, match in ((["--samples", "100000"], "65536"), (["--seed", "-1"], "--seed"),
                        (["--samples", "0"], "--samples")):
        try:
            r = subprocess.run([sys.executable, "-m", "tfqbnn.cli.c_sources", str(exported), "--out",
                                str(tmp_path / "g"), *args], capture_output=True, text=True, timeout=90, env=env)
        except subprocess.TimeoutExpired:
            pytest.fail(f"{args}: still running after 90 s")
        assert r.returncode != 0 and "Traceback" not in r.stderr, (args, r.stderr[-800:])
        assert match in r.stderr.strip().splitlines()[-1] and not (tmp_path / "g").exists()


# --- tfqbnn-c-sources ---------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    out = tmp_path_factory.mktemp("export")
    convert.export_all(_tiny(), out, seed=7, calibration_x=_x())
    return out


def _images(n=2):
    return np.random.default_rng(1).integers(0, 256, (n, 32)).astype(np.uint8), ["mnist"] * n


def test_c_sources_refuse_a_users_file_and_never_write_through_links(exported, tmp_path):
    g, outside = tmp_path / "gen", tmp_path / "outside.c"
    g.mkdir()
    (g / "model_data.c").write_text("/* my own model */\n")
    with pytest.raises(ValueError, match=rf"{g}: holds 'model_data.c', which .* did not write") as e:
        c_source.generate(exported, g, *_images(), num_samples=2)
    assert "\n" not in str(e.value)
    assert sorted(p.name for p in g.iterdir()) == ["model_data.c"]  # checked before writing anything
    assert (g / "model_data.c").read_text() == "/* my own model */\n"
    (g / "model_data.c").unlink()
    outside.write_text("/* outside */\n")
    (g / "test_vectors.c").symlink_to(outside)
    with pytest.raises(ValueError, match=r"test_vectors.c"):
        c_source.generate(exported, g, *_images(), num_samples=2)
    assert outside.read_text() == "/* outside */\n" and not (g / "model_data.c").exists()
    (g / "test_vectors.c").unlink()
    c_source.generate(exported, g, *_images(), num_samples=2)
    c_source.generate(exported, g, *_images(), num_samples=3)  # its own earlier files are replaced
    assert "QBNN_TV_NUM_SAMPLES 3" in (g / "test_vectors.h").read_text()
