"""tfqbnn-bundle: the CMake bundle of a trained export built and run with the CMake convention on the host and, in
QEMU with their UART consoles, on netduinoplus2 (Cortex-M4F) and microbit (Cortex-M0), each checked against the
numpy reference; the Arduino layout's sources compiled for Cortex-M4 and M0; only the model's op kernels linked;
the bundle's refusal to write over files it did not write."""

import os
import re
import shutil
import subprocess

import numpy as np
import pytest

from tflite_export import artifacts, bundle, c_source, firmware_runner
from tfqbnn.cli import bundle as bundle_cli

from mcu_models import exported_jq4, synthetic_conv_model

TOOLS = ("cmake", "ctest", "cc", "arm-none-eabi-gcc", "arm-none-eabi-g++", "qemu-system-arm")
MISSING = [t for t in TOOLS if shutil.which(t) is None]
pytestmark = pytest.mark.skipif(bool(MISSING), reason=f"missing {', '.join(MISSING)} (scripts/install_mcu_tools.sh)")
LINE = re.compile(r"^(?:\d+: )?(ok|MISMATCH) image (\d+) \((\S+)\) prediction=(-?\d+) predictive_entropy=(-?\d+) "
                  r"expected_entropy=(-?\d+) mutual_information=(-?\d+) counter=(\d+)$", re.M)
WEIGHTS = 784 * 100 + 100 * 100 + 100 * 10


@pytest.fixture(scope="module")
def export_dir(tmp_path_factory):
    return exported_jq4(tmp_path_factory.mktemp("mcu"))


@pytest.fixture(scope="module")
def cmake_bundle(export_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("bundle") / "qbnn"
    res = bundle.write_bundle(export_dir, out, num_samples=6)
    return out, res


def _run(cmd, timeout=600):
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    assert r.returncode == 0, f"{' '.join(map(str, cmd))}\n{r.stdout[-3000:]}{r.stderr[-3000:]}"
    return r


@pytest.mark.parametrize("board", [None, "netduinoplus2", "microbit"])
def test_cmake_bundle_runs_bit_exact_with_the_cmake_convention(board, cmake_bundle, tmp_path):
    src, res = cmake_bundle
    build = tmp_path / "build"
    _run(["cmake", "-S", str(src), "-B", str(build), *([f"-DQBNN_BOARD={board}"] if board else [])])
    r = _run(["cmake", "--build", str(build)])
    if board:  # fits the part's memories (the link map of the board's table entry)
        assert re.search(r"FLASH:\s+\d+ B", r.stdout) and "region" not in r.stderr
    r = _run(["ctest", "--test-dir", str(build), "-V"])
    lines = LINE.findall(r.stdout)
    exp = res["expected"]
    assert len(lines) == len(exp) == 3 and "PASSED: 0 of 3 images" in r.stdout, r.stdout[-3000:]
    for (status, i, source, pred, pe, ee, mi, counter), e in zip(lines, exp):
        assert status == "ok" and int(pred) == e["prediction"]
        # the printed micro-nats against the reference's float64 entropies
        assert np.allclose([int(pe), int(ee), int(mi)], np.asarray(e["entropy"]) * 1e6, atol=2)
        if board is None:
            assert int(counter) == 0  # the host has no counter hook
        else:  # QEMU instruction counts through SysTick per weight and sample (the entropies' one-off cost spread
            # over S = 6): M4F's SMLAD kernel, M0's two weights per MULS
            per = int(counter) / (6 * WEIGHTS)
            assert (5.0 < per <= 6.0) if board == "netduinoplus2" else (8.0 < per <= 10.0), per
    if board:
        elf = next(build.rglob("qbnn_example"))
        nm = _run(["arm-none-eabi-nm", str(elf)]).stdout
        assert re.search(r" T _write$", nm, re.M)  # stdout through the board's UART driver, not semihosting
        assert "initialise_monitor_handles" not in nm
        assert "qbnn_op_fully_connected_eval" in nm and "conv2d" not in nm and "pool" not in nm


def test_bundle_holds_only_the_ops_its_model_uses(cmake_bundle, tmp_path):
    src, res = cmake_bundle
    assert res["ops"] == ["FULLY_CONNECTED"]
    assert sorted(p.name for p in (src / "src" / "ops").glob("qbnn_op_*.c")) == ["qbnn_op_fully_connected.c"]
    used = (src / "src" / "qbnn_ops_used.h").read_text()
    registry = bundle.op_registry()
    assert len(re.findall(r"^QBNN_OP(_ABSENT)?\(", used, re.M)) == len(registry)
    assert "QBNN_OP(FULLY_CONNECTED, fully_connected)" in used and "QBNN_OP_ABSENT(CONV_2D)" in used
    # a model with convolutions and pools on this FC-only runtime: qbnn_init refuses it (no kernel to run it)
    conv = synthetic_conv_model()
    c_source.write_model_sources(conv, tmp_path)
    (tmp_path / "check.c").write_text(
        '#include <stdio.h>\n#include "model_data.h"\nstatic uint64_t arena[(QBNN_ARENA_BYTES + 7) / 8];\n'
        "int main(void) { qbnn_runtime_t rt;\n"
        "  int err = qbnn_init(&rt, &qbnn_model, arena, sizeof arena, 1, QBNN_KERNEL_AUTO);\n"
        '  printf("%d\\n", err); return err == QBNN_RT_ERR_OP ? 0 : 1; }\n')
    rt_src = [str(p) for p in (src / "src").rglob("*.c") if p.name not in ("model_data.c", "qbnn.c")]
    exe = tmp_path / "check"
    _run(["cc", "-std=c99", "-O1", "-DQBNN_OP_SUBSET=1", f"-I{tmp_path}", f"-I{src / 'src'}", str(tmp_path / "check.c"),
          str(tmp_path / "model_data.c"), *rt_src, "-lm", "-o", str(exe)])
    _run([str(exe)])
    # the conv model's own bundle carries its kernels
    conv_bundle = bundle.write_bundle(conv, tmp_path / "conv", images=np.zeros((1, 784), np.uint8),
                                      sources=["zeros"], num_samples=2)
    assert set(conv_bundle["ops"]) == {"CONV_2D", "MAX_POOL_2D", "DEPTHWISE_CONV_2D", "AVERAGE_POOL_2D", "RESHAPE",
                                       "FULLY_CONNECTED"}
    assert len(list((tmp_path / "conv" / "src" / "ops").glob("qbnn_op_*.c"))) == 5


def test_arduino_layout_compiles_for_cortex_m4_and_m0(export_dir, tmp_path):
    """The library's sources and the example's C files compile with arm-none-eabi-gcc for M4F and M0, and the
    sketch as C++ against a stand-in Arduino.h (Serial, micros). Not tested: an Arduino core, the Arduino build,
    a real board."""
    out = tmp_path / "QbnnModel"
    bundle_cli.main([export_dir, "--out", str(out), "--layout", "arduino", "--samples", "2"])
    props = dict(line.split("=", 1) for line in (out / "library.properties").read_text().splitlines() if line)
    for field in ("name", "version", "author", "maintainer", "sentence", "paragraph", "category", "url",
                  "architectures"):
        assert props.get(field), field
    assert re.fullmatch(r"\d+\.\d+\.\d+", props["version"])
    ex = out / "examples" / "qbnn_predict"
    assert (ex / "qbnn_predict.ino").is_file()
    stub = tmp_path / "stub"
    stub.mkdir()
    (stub / "Arduino.h").write_text(
        "#include <stdint.h>\nstruct SerialStub { void begin(long) {} operator bool() { return true; }\n"
        "  template <class T> void print(T) {} template <class T> void println(T) {} };\n"
        "extern SerialStub Serial; unsigned long micros();\n")
    for cpu in (["-mcpu=cortex-m4", "-mfpu=fpv4-sp-d16", "-mfloat-abi=hard"], ["-mcpu=cortex-m0", "-mfloat-abi=soft"]):
        objs = tmp_path / cpu[0].split("=")[1]
        objs.mkdir()
        for c in [*(out / "src").rglob("*.c"), ex / "test_vectors.c"]:  # Arduino compiles src/ recursively
            _run(["arm-none-eabi-gcc", *cpu, "-mthumb", "-std=c99", "-Os", "-Wall", "-Werror", f"-I{out / 'src'}",
                  "-c", str(c), "-o", str(objs / (c.stem + ".o"))])
        _run(["arm-none-eabi-g++", *cpu, "-mthumb", "-Os", "-Wall", "-Werror", "-x", "c++", "-include", "Arduino.h",
              f"-I{stub}", f"-I{out / 'src'}", f"-I{ex}", "-c", str(ex / "qbnn_predict.ino"),
              "-o", str(objs / "sketch.o")])
        nm = _run(["arm-none-eabi-nm", *map(str, objs.glob("*.o"))]).stdout
        assert "T qbnn_bundle_predict" in nm and "T qbnn_op_fully_connected_eval" in nm
        assert "U qbnn_bundle_predict" in nm  # the sketch calls the C API (extern "C" linkage)


def test_bundle_refuses_folders_with_files_it_did_not_write(export_dir, tmp_path):
    model = artifacts.load_exported(export_dir)
    img, src = np.zeros((1, 784), np.uint8), ["zeros"]
    user = tmp_path / "project"
    user.mkdir()
    (user / "main.c").write_text("int main(void) { return 0; }\n")
    with pytest.raises(ValueError, match="main.c', which tfqbnn-bundle did not write"):
        bundle.write_bundle(model, user, images=img, sources=src, num_samples=1)
    assert sorted(os.listdir(user)) == ["main.c"]
    out = tmp_path / "b"
    first = bundle.write_bundle(model, out, images=img, sources=src, num_samples=1)
    again = bundle.write_bundle(model, out, layout="arduino", images=img, sources=src, num_samples=1)  # its own: ok
    written = sorted(str(p.relative_to(out)) for p in out.rglob("*") if p.is_file())
    assert written == sorted([*again["files"], bundle.BUNDLE_LIST]) and "CMakeLists.txt" in first["files"]
    (out / "src" / "notes.txt").write_text("mine")
    with pytest.raises(ValueError, match="notes.txt"):
        bundle.write_bundle(model, out, images=img, sources=src, num_samples=1)
    (out / "src" / "notes.txt").unlink()
    os.symlink(tmp_path / "elsewhere", out / "src" / "link.c")
    with pytest.raises(ValueError, match="link"):
        bundle.write_bundle(model, out, images=img, sources=src, num_samples=1)
    assert not (tmp_path / "elsewhere").exists()
    with pytest.raises(SystemExit) as e:
        bundle_cli.main([export_dir, "--out", str(user)])
    assert e.value.code == 2
    assert set(firmware_runner.BOARD_TABLE) >= {"netduinoplus2", "microbit"}
