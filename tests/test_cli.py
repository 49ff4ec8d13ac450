"""Console entry points (issue 10): setup.cfg's console_scripts resolve to `main(argv=None)` functions,
`--help` works, scripts/*.py are thin wrappers over them, and a built wheel installs working commands."""

import configparser
import importlib
import importlib.util
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
COMMANDS = {"tfqbnn-train", "tfqbnn-evaluate", "tfqbnn-export", "tfqbnn-sweep", "tfqbnn-c-sources", "tfqbnn-bundle",
            "tfqbnn-allocate"}


def _entry_points():
    cfg = configparser.ConfigParser()
    cfg.read(ROOT / "setup.cfg")
    lines = [ln.strip() for ln in cfg["options.entry_points"]["console_scripts"].splitlines() if ln.strip()]
    return dict(tuple(part.strip() for part in ln.split("=")) for ln in lines)


def _resolve(target):
    module, func = target.split(":")
    return getattr(importlib.import_module(module), func)


def test_setup_cfg_declares_the_commands():
    assert set(_entry_points()) == COMMANDS


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_each_target_imports_and_prints_help(command, capsys):
    main = _resolve(_entry_points()[command])
    with pytest.raises(SystemExit) as e:
        main(["--help"])
    assert e.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith("usage: ") and "--out" in out


@pytest.mark.parametrize("script, module", [("train", "tfqbnn.cli.train"), ("evaluate", "tfqbnn.cli.evaluate"),
                                            ("sweep", "tfqbnn.cli.sweep"),
                                            ("export", "tfqbnn.cli.export"), ("allocate", "tfqbnn.cli.allocate")])
def test_scripts_are_thin_wrappers(script, module):
    spec = importlib.util.spec_from_file_location(f"_script_{script}", ROOT / "scripts" / f"{script}.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    assert mod.main is importlib.import_module(module).main
    assert len((ROOT / "scripts" / f"{script}.py").read_text().splitlines()) < 10


def test_train_refuses_a_foreign_out_in_one_line(tmp_path, capsys):
    from tfqbnn.cli import train

    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(SystemExit) as e:
        train.main(["--profile", "smoke", "--out", str(tmp_path)])
    msg = str(e.value.code)
    assert msg.endswith(f": {tmp_path}: not empty and not a tfqbnn train run (holds 'notes.txt'); choose another "
                        "--out, or pass --overwrite to write beside those files")
    assert "\n" not in msg and (tmp_path / "notes.txt").read_text() == "mine"


@pytest.mark.slow
def test_wheel_installs_working_console_scripts(tmp_path):
    """A wheel built from this tree, installed into a throwaway venv (dependencies from the running
    interpreter's site-packages), gives four commands whose --help runs."""
    src = tmp_path / "src"
    src.mkdir()
    for name in ("setup.cfg", "pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, src)
    from test_packaging import packages

    for pkg in packages():
        shutil.copytree(ROOT / pkg, src / pkg, ignore=shutil.ignore_patterns("__pycache__", "build"))
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "--no-index",
                    "-w", str(tmp_path / "dist"), str(src)], check=True, capture_output=True, timeout=300)
    (whl,) = (tmp_path / "dist").glob("tfqbnn-*.whl")
    with zipfile.ZipFile(whl) as zf:
        names = zf.namelist()
        eps = zf.read(next(n for n in names if n.endswith("entry_points.txt"))).decode()
    assert "tfqbnn/cli/train.py" in names and "tfqbnn/rundir.py" in names
    for cmd, target in _entry_points().items():
        assert f"{cmd} = {target}" in eps
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
    (site,) = venv.glob("lib/python3*/site-packages")
    deps = [p for p in sys.path if p.endswith("site-packages")]
    (site / "_deps.pth").write_text("\n".join(deps) + "\n")  # TF & co. from the running environment
    # --ignore-installed: otherwise pip uninstalls the running environment's (editable) tfqbnn first
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-index", "--ignore-installed", "--prefix", str(venv),
                    str(whl)], check=True, capture_output=True, timeout=300)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["TF_CPP_MIN_LOG_LEVEL"] = "2"
    for cmd in sorted(COMMANDS):
        # run by the venv's interpreter (pip wrote the shebang of the interpreter that ran it)
        r = subprocess.run([str(venv / "bin" / "python"), str(venv / "bin" / cmd), "--help"], env=env, cwd=tmp_path, capture_output=True,
                           text=True, timeout=300)
        assert r.returncode == 0 and r.stdout.startswith(f"usage: {cmd}"), (cmd, r.stderr[-2000:])
    # the installed package, not this checkout, answered
    r = subprocess.run([str(venv / "bin" / "python"), "-c", "import tfqbnn.cli; print(tfqbnn.cli.__file__)"],
                       env=env, cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert str(venv) in r.stdout, r.stderr[-2000:]


def test_sweep_ray_options_reach_the_sweep_and_failed_cells_exit_nonzero(tmp_path, monkeypatch, capsys):
    from tfqbnn import sweep
    from tfqbnn.cli import sweep as cli

    seen = {}

    def fake_run_sweep(out, seeds, profile, cells, **kw):
        seen.update(kw, cells=[c.name for c in cells])
        (tmp_path / "table.md").write_text("| model |\n")
        raise sweep.CellsFailed([{"cell": "jq4", "seed": 1, "error": "RuntimeError: boom"}], [{"cell": "fp32"}])

    monkeypatch.setattr(sweep, "run_sweep", fake_run_sweep)
    with pytest.raises(SystemExit) as e:
        cli.main(["--out", str(tmp_path), "--only", "fp32", "jq4", "--backend", "ray", "--address", "auto",
                  "--cpus-per-cell", "2", "--gpus-per-cell", "0.5", "--max-concurrent", "3", "--resource", "side=1",
                  "--max-retries", "1"])
    assert "1 cell(s) failed, 1 finished" in str(e.value) and "jq4 s1: RuntimeError: boom" in str(e.value)
    opts = seen["ray_options"]
    assert seen["backend"] == "ray" and seen["cells"] == ["fp32", "jq4"]
    assert (opts.address, opts.cpus_per_cell, opts.gpus_per_cell, opts.max_concurrent, opts.resources,
            opts.max_retries) == ("auto", 2.0, 0.5, 3, {"side": 1.0}, 1)
    with pytest.raises(SystemExit) as e:
        cli.main(["--out", str(tmp_path), "--address", "auto"])
    assert e.value.code == 2 and "--address need --backend ray" in capsys.readouterr().err


def test_the_local_sweep_never_imports_ray():
    code = ("import sys, tfqbnn.cli.sweep, tfqbnn.sweep, tfqbnn.sweep_ray; tfqbnn.cli.sweep.parse_args(['--out', 'x']); "
            "assert 'ray' not in sys.modules, 'ray imported'")
    r = subprocess.run([sys.executable, "-c", code], env=dict(os.environ, PYTHONPATH=str(ROOT)), capture_output=True,
                       text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
