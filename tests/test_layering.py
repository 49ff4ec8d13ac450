"""The packages' import direction: `qbnn_safeio` (file and argument guards) at the bottom, imported by both;
the `tfqbnn` library never imports the exporter (only its CLI does, inside its functions); `tflite_export`
(which converts tfqbnn models) imports without TensorFlow."""

import re
import subprocess
import sys
from pathlib import Path

import qbnn_safeio

ROOT = Path(__file__).resolve().parents[1]


def _loaded_after(code):
    """Top-level package names in sys.modules after running `code` in a fresh interpreter."""
    code += "\nimport sys\nprint(sorted({n.split('.')[0] for n in sys.modules}))\n"
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    return set(eval(out.stdout.strip().splitlines()[-1]))  # noqa: S307 - our own print of a list of names


def _walk(pkg, skip=()):
    return (f"import importlib, pkgutil, {pkg}\n"
            f"for m in pkgutil.walk_packages({pkg}.__path__, '{pkg}.'):\n"
            f"    if not m.name.startswith({tuple(skip)!r}):\n"
            "        importlib.import_module(m.name)\n")


def test_the_bottom_package_imports_neither_package_nor_tensorflow():
    loaded = _loaded_after("import qbnn_safeio")
    assert not loaded & {"tfqbnn", "tflite_export", "tensorflow", "keras", "numpy"}, loaded


def test_the_library_never_imports_the_exporter():
    skip = ("tfqbnn.cli.", "tfqbnn.sweep_ray")  # the CLI and the Ray jobs reach the exporter inside functions
    loaded = _loaded_after(_walk("tfqbnn", skip))
    assert "tfqbnn" in loaded and "tflite_export" not in loaded


def test_the_exporter_imports_without_tensorflow():
    loaded = _loaded_after(_walk("tflite_export"))
    assert "tflite_export" in loaded and not loaded & {"tensorflow", "keras", "tfqbnn"}, loaded


def test_the_sample_bound_is_the_c_runtime_bound():
    header = (ROOT / "tflite_export" / "micro" / "qbnn_runtime.h").read_text()
    assert int(re.search(r"#define\s+QBNN_MAX_SAMPLES\s+(\d+)", header).group(1)) == qbnn_safeio.MAX_SAMPLES
