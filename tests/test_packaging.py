"""A non-editable install ships everything tflite_export needs (issue 10): the wheel holds the C
runtime, the firmware sources and the spec, and firmware_runner builds and runs from the installed
package. Built from a copy of the checkout so the worktree gets no build/ or egg-info."""

import os
import shutil
import subprocess
import sys
import textwrap
import zipfile
from pathlib import Path

import pytest

import tflite_export

ROOT = Path(__file__).resolve().parents[1]


def packages():
    """The top-level packages setup.cfg ships ([options.packages.find] include, sub-package patterns aside)."""
    import configparser

    cfg = configparser.ConfigParser()
    cfg.read(ROOT / "setup.cfg")
    return tuple(p for p in cfg["options.packages.find"]["include"].split() if "." not in p)


PACKAGES = packages()
_JUNK = shutil.ignore_patterns("__pycache__", "build", "*.egg-info", "*.o", "*.elf", "*.pyc", ".*")


def _source_copy(dst):
    for name in ("setup.cfg", "pyproject.toml", "README.md", "MANIFEST.in", "LICENSE"):
        if (ROOT / name).exists():
            shutil.copy2(ROOT / name, dst / name)
    for pkg in PACKAGES:
        shutil.copytree(ROOT / pkg, dst / pkg, ignore=_JUNK)
    return dst


@pytest.fixture(scope="module")
def wheel(tmp_path_factory):
    src = _source_copy(tmp_path_factory.mktemp("src"))
    dist = tmp_path_factory.mktemp("dist")
    run = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index",
                          "-q", "-w", str(dist), str(src)], capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-2000:]
    (path,) = dist.glob("tfqbnn-*.whl")
    return path


def _needed_files():
    """Every non-Python file tflite_export's modules and Makefiles use, from the source tree."""
    pkg = ROOT / "tflite_export"
    out = {"tflite_export/SPEC.md", "tflite_export/README.md", "tflite_export/Makefile"}
    for sub in ("micro", "firmware"):
        for p in (pkg / sub).rglob("*"):
            rel = p.relative_to(pkg)
            if p.is_file() and "build" not in rel.parts and not p.name.startswith("."):
                out.add(f"tflite_export/{rel.as_posix()}")
    return out


def test_wheel_ships_firmware_micro_and_spec(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    needed = _needed_files()
    assert {"tflite_export/firmware/Makefile", "tflite_export/firmware/link.ld", "tflite_export/firmware/main.c",
            "tflite_export/micro/qbnn_runtime.c", "tflite_export/micro/qbnn_sample_op.cc"} <= needed
    assert not needed - names, sorted(needed - names)
    py = {f"{p.relative_to(ROOT).as_posix()}" for pkg in PACKAGES
          for p in (ROOT / pkg).rglob("*.py") if "__pycache__" not in p.parts}
    assert not py - names, sorted(py - names)
    assert not [n for n in names if "/build/" in n or n.endswith((".o", ".elf"))]


def test_one_version_everywhere(wheel):
    import tfqbnn

    assert tflite_export.__version__ == tfqbnn.__version__
    assert wheel.name.startswith(f"tfqbnn-{tfqbnn.__version__}-")
    meta = next(n for n in zipfile.ZipFile(wheel).namelist() if n.endswith(".dist-info/METADATA"))
    assert f"\nVersion: {tfqbnn.__version__}\n" in zipfile.ZipFile(wheel).read(meta).decode()


_RUN_INSTALLED = textwrap.dedent("""
    import sys, tempfile
    import numpy as np
    import tflite_export
    from tflite_export import convert, firmware_runner
    from tfqbnn import models
    assert tflite_export.__file__.startswith(sys.prefix), tflite_export.__file__
    out = tempfile.mkdtemp()
    model = models.mlp(hidden=(16,), quantization="jq4", seed=0)
    convert.export_all(model, out, calibration_x=np.random.default_rng(0).random((32, 784)).astype("float32"))
    images = np.random.default_rng(1).integers(0, 256, (2, 784)).astype(np.uint8)
    res = firmware_runner.run_on_qemu(out, board="an386", images=images, num_samples=2, verbose=False)
    print("ok", tflite_export.__version__, len(res), all(r["ok"] for r in res))
""")


@pytest.mark.slow
def test_firmware_runner_works_from_a_non_editable_install(wheel, tmp_path):
    from tflite_export import firmware_runner

    if firmware_runner.missing_tools():
        pytest.skip(f"missing {firmware_runner.missing_tools()}")
    venv = tmp_path / "venv"
    base = getattr(sys, "_base_executable", sys.executable)
    subprocess.run([base, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=300)
    site = next((venv / "lib").glob("python3*/site-packages"))
    # the dependencies (TensorFlow, Keras, numpy) come from the running interpreter's site-packages, appended
    # after the venv's own: its editable tfqbnn finder (a .pth there) is not processed, the wheel wins
    deps = [p for p in sys.path if p.endswith("site-packages")]
    (site / "zz_deps.pth").write_text("\n".join(deps) + "\n")
    py = venv / "bin" / "python"
    # --ignore-installed: pip sees the running environment through the .pth and would otherwise uninstall
    # its (editable) tfqbnn to "upgrade" it, breaking the developer's checkout
    run = subprocess.run([sys.executable, "-m", "pip", "--python", str(py), "install", "--no-deps", "--no-index", "--ignore-installed",
                          "-q", str(wheel)], capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr[-2000:]
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    run = subprocess.run([str(py), "-c", _RUN_INSTALLED], capture_output=True, text=True, timeout=900,
                         cwd=tmp_path, env=env)
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-3000:]
    assert run.stdout.strip().splitlines()[-1] == f"ok {tflite_export.__version__} 2 True"
