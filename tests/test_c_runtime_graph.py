"""The op-table C runtime on a LeNet-like network of conv, pool, reshape and dense ops against the numpy reference
on the host (ASan/UBSan, every kernel) and on QEMU's M3 / M4F / M7 (each registered op alone: test_registry_ops);
the registry is one list on each side; the runtime holds no static RAM
(the caller's arena); the generator's arena plan is the runtime's; the deterministic prefix is not sampled."""

import os
import re
import shutil
import subprocess

import numpy as np
import pytest

from tflite_export import bundle, c_source, firmware_runner, modes
from tflite_export.ir import registry
from tflite_export.ir.base import Op

from mcu_models import synthetic_conv_model

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MICRO = os.path.join(ROOT, "tflite_export", "micro")
FIRMWARE = firmware_runner.FIRMWARE_DIR
HAVE_CC = shutil.which("cc") is not None
MISSING = firmware_runner.missing_tools()


def _make(*args):
    return subprocess.run(["make", "-s", "-C", FIRMWARE, *args], capture_output=True, text=True, timeout=600)


@pytest.fixture(scope="module", params=["all", "head"])
def conv_gen(request, tmp_path_factory):
    """C sources of a synthetic network with every C op kind: "all" (Bayesian first conv: nothing deterministic
    before it) or "head" (deterministic prefix of 7 ops, Bayesian dense tail), 4 random images, 5 MC samples."""
    model = synthetic_conv_model(seed=3, bayesian_conv=request.param == "all")
    gen = tmp_path_factory.mktemp(f"conv_{request.param}")
    c_source.write_model_sources(model, gen)
    images = np.random.default_rng(1).integers(0, 256, size=(4, 784)).astype(np.uint8)
    exp = c_source.write_test_vectors(model, images, ["r0", "r1", "r2", "r3"], gen, num_samples=5)
    return request.param, model, gen, exp


def test_the_synthetic_network_holds_its_op_kinds(conv_gen):
    _, model, _, exp = conv_gen
    kinds = {getattr(op, "c_kind", op.kind) for op in model.layers}
    assert kinds == {"CONV_2D", "MAX_POOL_2D", "DEPTHWISE_CONV_2D", "AVERAGE_POOL_2D", "RESHAPE", "FULLY_CONNECTED"}
    # the samples differ (the Bayesian ops are live) and the images are told apart
    assert len({tuple(e["sums"]) for e in exp}) > 1


@pytest.mark.skipif(not HAVE_CC, reason="no host C compiler")
@pytest.mark.parametrize("opt", ["-O1", "-O3"])
def test_every_op_kind_is_bit_exact_on_the_host_under_asan_ubsan(conv_gen, opt, tmp_path):
    """REF / LUT / SIMD (SMLAD emulated) kernels: MC counts, entropies, stream positions, the mean-code pass and
    (head) the HYBRID and PFP modes (the prefix once, then the dense Bayesian tail) equal the numpy reference;
    ("all") both are refused: the first Bayesian op is a convolution."""
    bayesian, _, gen, _ = conv_gen
    r = _make(f"GEN_DIR={gen}", f"HOST_BUILD={tmp_path}", f"HOST_OPT={opt}", "host-test")
    assert r.returncode == 0 and "PASSED: 0 mismatches" in r.stdout, r.stdout[-3000:] + r.stderr[-3000:]
    assert "runtime error" not in r.stderr and "AddressSanitizer" not in r.stderr
    for kernel in ("ref", "lut", "simd"):
        assert f"ok image 1 (r1) kernel={kernel}" in r.stdout
    assert "ok two runtimes interleaved" in r.stdout
    modes_ok = re.findall(r"^ok modes image \d \(r\d\) kernel=\w+ hybrid=ok .* pfp=ok .* max\|diff\|=(\d+) ",
                          r.stdout, re.M)
    assert len(modes_ok) == (4 + 3 if bayesian == "head" else 0), r.stdout[-2000:]
    assert all(int(d) == 0 for d in modes_ok)  # PFP's floats bit-identical to numpy's here


@pytest.mark.skipif(bool(MISSING), reason=f"missing {', '.join(MISSING)}")
@pytest.mark.parametrize("board", ["an385", "an386", "an500"])
def test_every_op_kind_is_bit_exact_on_cortex_m(conv_gen, board, tmp_path):
    _, _, gen, _ = conv_gen
    r = _make(f"BOARD={board}", f"GEN_DIR={gen}", f"BUILD={tmp_path}", "run")
    assert r.returncode == 0 and "PASSED: 0 mismatches" in r.stdout, r.stdout[-3000:] + r.stderr[-3000:]


def test_the_registry_is_one_list_per_side():
    """micro/qbnn_op_list.h (C kinds, each with its kernel file micro/ops/qbnn_op_<name>.c defining prepare and
    eval; the generator reads its kinds from it) and the IR registry (every op kind with a C kernel emits C)."""
    lines = re.findall(r"^QBNN_OP\((\w+), (\w+)\)$", open(os.path.join(MICRO, "qbnn_op_list.h")).read(), re.M)
    assert tuple(k for k, _ in lines) == c_source.C_KINDS and lines
    assert len({n for _, n in lines}) == len(lines)  # one kernel name per kind
    kernels = sorted(f for f in os.listdir(os.path.join(MICRO, "ops")) if f.endswith(".c"))
    defined = set()
    for f in kernels:
        text = open(os.path.join(MICRO, "ops", f)).read()
        defined |= set(re.findall(r"^(?:int|void) qbnn_op_(\w+)_(?:prepare|eval)\(", text, re.M))
    assert {n for _, n in lines} == defined
    for kind, cls in registry.OPS.items():
        c_kind = getattr(cls, "c_kind", kind)
        if c_kind in c_source.C_KINDS:
            assert cls.emit_c is not Op.emit_c, kind


@pytest.mark.skipif(not HAVE_CC, reason="no host C compiler")
def test_the_runtime_holds_no_static_ram(tmp_path):
    """The runtime's files, the HYBRID / PFP modes, the weighted-op helpers and every op kernel define no .bss / .data
    symbols: all scratch is the caller's arena, so two models or two threads can run side by side."""
    srcs = [os.path.join(MICRO, f) for f in bundle.RUNTIME_SOURCES]
    srcs += [os.path.join(MICRO, "ops", f) for f in os.listdir(os.path.join(MICRO, "ops")) if f.endswith(".c")]
    for src in srcs:
        obj = tmp_path / (os.path.basename(src) + ".o")
        subprocess.run(["cc", "-std=c99", "-O2", "-I", MICRO, "-c", src, "-o", str(obj)], check=True)
        table = subprocess.run(["objdump", "-t", str(obj)], capture_output=True, text=True, check=True).stdout
        # symbols in writable data sections (.data.rel.ro is read-only after relocation: the const op table)
        ram = [line for line in table.splitlines()
               if re.search(r"\s(\.bss|\.data|COMMON)(\.\S*)?\s", line) and ".data.rel.ro" not in line
               and not re.search(r"\s(\.bss|\.data)\s+0+\s+(\.bss|\.data)$", line)]
        assert not ram, (src, ram)


@pytest.mark.skipif(not HAVE_CC, reason="no host C compiler")
def test_the_runtime_files_form_no_cycle(tmp_path):
    """Which runtime file calls which (by the symbols each object file defines and needs) is a graph without a
    cycle: predict over modes over the passes over the plan over the kernels."""
    srcs = [os.path.join(MICRO, f) for f in bundle.RUNTIME_SOURCES]
    srcs += [os.path.join(MICRO, "ops", f) for f in sorted(os.listdir(os.path.join(MICRO, "ops"))) if f.endswith(".c")]
    defined, needed = {}, {}
    for src in srcs:
        obj = tmp_path / (os.path.basename(src) + ".o")
        subprocess.run(["cc", "-std=c99", "-O2", "-I", MICRO, "-c", src, "-o", str(obj)], check=True)
        table = subprocess.run(["nm", str(obj)], capture_output=True, text=True, check=True).stdout
        name = os.path.basename(src)
        for kind, sym in re.findall(r"^\S*\s+([A-Za-z])\s+(\S+)$", table, re.M):
            if kind == "U":
                needed.setdefault(name, set()).add(sym)
            elif kind.isupper():
                defined[sym] = name
    calls = {f: {defined[s] for s in syms if s in defined} - {f} for f, syms in needed.items()}
    assert calls["qbnn_plan.c"] >= {"qbnn_op_fully_connected.c"} and "qbnn_modes.c" in calls["qbnn_predict.c"]
    done, active = set(), []

    def visit(f):
        assert f not in active, " -> ".join(active + [f])
        if f not in done:
            active.append(f)
            for g in sorted(calls.get(f, ())):
                visit(g)
            active.pop()
            done.add(f)

    for f in sorted(calls):
        visit(f)


def test_every_kernel_header_sizes_its_scratch():
    """Each kind whose IR op declares scratch (c_scratch) has a header (included through qbnn_op_list.h) defining
    the two scratch macros the generated arena plan and the kernel's prepare both use, and its prepare uses them;
    a kind without scratch asks for none in its prepare."""
    headers = "".join(open(os.path.join(MICRO, "ops", f)).read()
                      for f in os.listdir(os.path.join(MICRO, "ops")) if f.endswith(".h"))
    kernels = "".join(open(os.path.join(MICRO, "ops", f)).read()
                      for f in os.listdir(os.path.join(MICRO, "ops")) if f.endswith(".c"))
    listed = re.findall(r'^#include "ops/(qbnn_op_\w+\.h)"$', open(os.path.join(MICRO, "qbnn_op_list.h")).read(), re.M)
    assert sorted(listed) == sorted(f for f in os.listdir(os.path.join(MICRO, "ops")) if f.endswith(".h"))
    scratch = {getattr(cls, "c_kind", cls.kind): cls.c_scratch for cls in registry.OPS.values()}
    for kind in c_source.C_KINDS:
        if not scratch[kind]:
            assert f"QBNN_{kind}_X_ELEMS" not in headers + kernels, kind
            continue
        for what in ("X_ELEMS", "FILTER_ELEMS"):
            assert re.search(rf"^#define QBNN_{kind}_{what}\(ih, iw, ic, oh, ow, oc, fh, fw, sh, sw\)", headers,
                             re.M), (kind, what)
        assert f"QBNN_SCRATCH(QBNN_{kind}_X_ELEMS" in kernels and f"QBNN_SCRATCH(QBNN_{kind}_FILTER_ELEMS" in kernels


def test_the_runtime_names_no_op_kind():
    """Outside the kernels, no runtime file names an op kind: checks, scratch and the modes' eligibility come
    from each kernel (its prepare and its header)."""
    for f in bundle.RUNTIME_SOURCES:
        code = re.sub(r"/\*.*?\*/", " ", open(os.path.join(MICRO, f)).read(), flags=re.S)
        named = [k for k in c_source.C_KINDS if re.search(rf"\bQBNN_OP_{k}\b|\bQBNN_{k}_", code)]
        assert not named, (f, named)


@pytest.mark.skipif(not HAVE_CC, reason="no host C compiler")
def test_the_generator_arena_plan_matches_the_model(conv_gen):
    """The generated QBNN_ARENA_BYTES (a constant expression of the kernels' scratch macros) is what
    qbnn_arena_bytes computes (the firmware compares the two on every run): here, its pieces by hand for the
    synthetic network."""
    bayesian, model, gen, _ = conv_gen
    arena = c_source.arena_bytes(gen)
    jackknife = 4 * 32 * 10  # SPEC 7.1's group sums, uint32[QBNN_JK_GROUPS][QBNN_MAX_CLASSES], after the prefix
    r8 = lambda n: (n + 7) // 8 * 8  # noqa: E731
    # int16 operands are zero-padded to the windows' extent (qbnn__pad16); a conv's filter scratch holds its codes
    # and its table of SMLAD pairs (4 int16 each, rows rounded up to even).
    # "all": largest activation conv1's 28x28x6; operands: conv1's 32x32 (+1 slack, to 4: 1028; the first Bayesian
    # op), the depthwise conv's 13x13x6 = 1014 (to 4: 1016; VALID, stride 2), conv2's 5x5x12 + 1; filter: conv2's
    # 3*3*12 codes + 4 * 3 * 18 = 324 (more than dense1's 144 inputs, conv1's 25 + 4 * 5 * 3, the depthwise 108).
    # "head" (conv1 with 3 channels): activation 28x28x3; prefix output: dense1's 40 units; first Bayesian op:
    # dense2 (40 inputs); operands: conv1's 1028; filter: conv2's 3*3*6 + 4 * 3 * 9 = 162 (more than dense1's 144).
    # "head" can run HYBRID from dense2 (24 x 40): its scratch (nonzero-input list uint16[40], A1 / A2 int64[24],
    # sdq int32[24], the layer's int8 output) overlaps dense2's operands. PFP from dense2 (dense3: 10 x 24): its
    # scratch (the list, A1 / A2, means and variances of two layers of <= 24 rows, E[h^2] of dense3's 24 inputs)
    # overlaps everything after the prefix output; here it is smaller than the MC pieces.
    if bayesian == "all":
        expected = jackknife + 2 * r8(28 * 28 * 6) + 0 + r8(2 * 1028) + r8(2 * 1016) + r8(2 * 324)
    else:
        hybrid = r8(2 * 40) + 2 * r8(8 * 24) + r8(4 * 24) + r8(24)
        pfp = r8(2 * 40) + 2 * r8(8 * 24) + 4 * r8(4 * 24) + r8(4 * 24)
        mc = 2 * r8(28 * 28 * 3) + r8(2 * 1028) + r8(2 * 162) + max(r8(2 * 40), hybrid)
        assert pfp < mc
        expected = r8(40) + jackknife + max(mc, pfp)
    assert arena == expected


def test_the_modes_with_a_prefix_equal_the_modes_of_the_tail(conv_gen):
    """The numpy hybrid and PFP of a partial-Bayesian model = the prefix once, then the mode on the Bayesian tail
    alone (a model that starts at the first Bayesian op, fed the prefix's output)."""
    bayesian, model, _, _ = conv_gen
    if bayesian != "head":
        with pytest.raises(ValueError, match="not a bias-free dense"):
            modes.hybrid_entry(model)
        with pytest.raises(ValueError, match="not a bias-free dense"):
            modes.pfp_entry(model)
        return
    from tflite_export import reference

    k = modes.hybrid_entry(model)
    x = np.random.default_rng(5).integers(0, 256, size=(3, 28, 28, 1)).astype(np.uint8)
    q = model.quantize_input(x)
    prefix = model._run(q, [op.sample(None) if op.has_weights else None for op in model.layers[:k]], 0, k)
    tail = reference.IntegerModel(model.ops[k:], default_seed=model.default_seed, input_shape=prefix.shape[1:])
    a = modes.hybrid_predict_codes(model, x, num_samples=4, seed=8)
    b = modes.hybrid_predict_codes(tail, prefix, num_samples=4, seed=8)
    np.testing.assert_array_equal(a, b)
    assert len(np.unique(a.reshape(4, -1), axis=0)) > 1
    # PFP: the same logit moments and samples (the tail's first op's input scale is the prefix's output scale)
    pa = modes.pfp_uncertainty(model, x, num_samples=4, seed=8)
    pb = modes.pfp_uncertainty(tail, prefix, num_samples=4, seed=8)
    for key in ("logit_mean", "logit_var", "mean_prob", "mutual_information"):
        np.testing.assert_array_equal(pa[key], pb[key])
    assert np.all(pa["logit_var"] > 0)


def test_offset_table_is_the_derived_table():
    """clamp(mu + offsets[k << 8 | u]) equals the derived table's w_code for every valid I4_FUSED byte and stream
    byte (both are SPEC 3.3's formula), in 4 KB instead of 64 KB."""
    from tfqbnn.quantizers import LogQuantizer
    from tflite_export.intmath import sampler

    for sb, wb in ((4, 4), (3, 4), (4, 3)):
        sigma_q = sampler.sigma_q_table(LogQuantizer(sb, 2.0**-10, 1.0), wb)
        off = c_source.offset_table(sigma_q).reshape(len(sigma_q), 256).astype(np.int64)
        derived = c_source.derived_table(sigma_q, wb).reshape(256, 256)
        m = 2 ** (wb - 1) - 1
        for b in range(256):
            mu, k = (b & 15) - 16 * ((b & 15) >= 8), b >> 4
            if k >= len(sigma_q) or abs(mu) > m:
                continue  # bytes no model holds
            np.testing.assert_array_equal(np.clip(mu + off[k], -m, m), derived[b])
        assert off.size == len(sigma_q) * 256 and np.abs(off).max() <= 127


@pytest.mark.skipif(not HAVE_CC, reason="no host C compiler")
def test_offset_table_build_is_bit_exact(conv_gen, tmp_path):
    """The same model generated with the 4 KB offset table: every kernel still equals the reference."""
    bayesian, model, _, _ = conv_gen
    gen = tmp_path / "gen"
    c_source.write_model_sources(model, gen, sample_table="offset")
    images = np.random.default_rng(1).integers(0, 256, size=(2, 784)).astype(np.uint8)
    c_source.write_test_vectors(model, images, ["r0", "r1"], gen, num_samples=3)
    assert "qbnn_sample_table0[" + str(16 * 256) + "]" in (gen / "model_data.c").read_text()
    r = _make(f"GEN_DIR={gen}", f"HOST_BUILD={tmp_path / 'build'}", "host-test")
    assert r.returncode == 0 and "PASSED: 0 mismatches" in r.stdout, r.stdout[-3000:] + r.stderr[-3000:]
    assert "runtime error" not in r.stderr and "AddressSanitizer" not in r.stderr


def test_c_sources_cli_writes_the_firmware_sources_and_names_bad_arguments(tmp_path, tmp_path_factory, capsys):
    """`tfqbnn-c-sources EXPORT_DIR --out GEN`: model_data and test vectors of real test images of the three sets;
    a missing export directory or a bad count is a one-line usage error naming it."""
    from mcu_models import exported_jq4
    from tfqbnn.cli import c_sources

    with pytest.raises(SystemExit) as e:
        c_sources.main([str(tmp_path / "nope"), "--out", str(tmp_path / "gen")])
    assert e.value.code == 2 and "nope" in capsys.readouterr().err
    export = exported_jq4(tmp_path_factory.mktemp("cli"))
    with pytest.raises(SystemExit) as e:
        c_sources.main([export, "--out", str(tmp_path / "gen"), "--samples", "0"])
    assert e.value.code == 2 and "--samples" in capsys.readouterr().err
    assert not (tmp_path / "gen").exists()
    c_sources.main([export, "--out", str(tmp_path / "gen"), "--samples", "2", "--per-set", "1",
                    "--sample-table", "offset"])
    tv = (tmp_path / "gen" / "test_vectors.c").read_text()
    assert '"mnist"' in tv and '"fashion"' in tv and "ambiguous" in tv
    assert '#define QBNN_SAMPLE_TABLE_KIND "offset"' in (tmp_path / "gen" / "model_data.h").read_text()
