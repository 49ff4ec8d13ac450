"""The QBNN_SAMPLE op's option parser and output-shape check (micro/qbnn_options.c, the code TFLite Micro's op runs in
Init and Prepare) against the Python reader, on the host under ASan/UBSan, for every filter format of the op
registry and storage layout (PACKED included), real exported options and malformed ones; the generated TFLM op
resolver against the registry; and, when QBNN_TFLM_TEST_BIN is set, the every-kind model and a mixed-bits PACKED
network in real TFLM with their sampling ops, and PACKED tensors the op must refuse in Prepare."""

import shutil
import struct
import subprocess
from pathlib import Path

import flatbuffers
import numpy as np
import pytest

from every_kind import export_every_kind
from mcu_models import synthetic_conv_model
from tflite_export import storage, tflite_io, tflm_ops
from tflite_export.intmath import sampler
from tflite_export.ir.registry import OPS
from tflite_export.ir.weights import BayesianWeights
from tfqbnn.quantizers import LogQuantizer
from tflm_bin import binary, run_in_graph, split_model_matches

ROOT = Path(__file__).resolve().parents[1]
MICRO = ROOT / "tflite_export" / "micro"
ERR_OUTPUT = 10  # QBNN_ERR_OUTPUT of qbnn_options.h

# filter format id of every op kind that can hold a Bayesian (sampled) filter
FORMATS = {tflite_io.FILTER_FORMAT_IDS[cls.filter_format] for cls in OPS.values() if hasattr(cls, "filter_format")}


@pytest.fixture(scope="module")
def checker(tmp_path_factory):
    if shutil.which("gcc") is None:
        pytest.skip("gcc not available")
    exe = tmp_path_factory.mktemp("options") / "options_check"
    subprocess.run(["gcc", "-std=c99", "-O1", "-g", "-Wall", "-Wextra", "-Werror", "-pedantic",
                    "-fsanitize=address,undefined", "-fno-sanitize-recover=all", "-I", str(MICRO),
                    str(ROOT / "tests" / "c" / "options_check.c"), str(MICRO / "qbnn_options.c"),
                    str(MICRO / "qbnn_sampler.c"), "-o", str(exe)], check=True)

    def run(cases, tmp):
        blob = [struct.pack("<I", len(cases))]
        for buf, dims in cases:
            blob += [struct.pack("<I", len(buf)), bytes(buf), struct.pack("<i", len(dims)),
                     struct.pack(f"<{len(dims)}i", *dims)]
        path = tmp / "cases.bin"
        path.write_bytes(b"".join(blob))
        out = subprocess.run([str(exe), str(path)], capture_output=True, text=True)
        assert out.returncode == 0, out.stderr[-3000:]
        lines = out.stdout.splitlines()
        assert len(lines) == len(cases)
        return lines

    return run


def _python(buf, dims):
    """The Python reader's verdict in the C driver's line format ('ok ...' fields, or None when refused)."""
    try:
        o = tflite_io.unpack_options(buf)
    except ValueError:
        return None
    shape = tuple(o["filter_shape"])
    if tuple(dims) != shape:
        return None
    weights = np.arange(1, 2 ** o["sigma_bits"] + 1, dtype=np.int64)
    fields = [o["version"], o["filter_format"], len(shape), *shape, o["rows"], o["cols"], o["weight_bits"],
              o["sigma_bits"], o["layout"], o["index"], o["default_seed"], int(np.dot(o["sigma_q"], weights))]
    return "ok " + " ".join(str(int(v)) for v in fields)


def _options(shape, fmt, bits=4, sigma_bits=4, layout=storage.LAYOUT_I4_FUSED, index=3, seed=0xDEADBEEF):
    rng = np.random.default_rng(sum(shape) + fmt)
    sq = sampler.sigma_q_table(LogQuantizer(sigma_bits, 2.0**-10, 1.0), bits)
    m = 2 ** (bits - 1) - 1
    w = BayesianWeights(rng.integers(-m, m + 1, shape), rng.integers(0, 2**sigma_bits, shape), bits, sigma_bits,
                        layout, sq, index)
    return tflite_io.pack_options(w, seed, fmt)


SHAPES = {tflite_io.FILTER_FC: [(10, 784), (1, 1)], tflite_io.FILTER_OHWI: [(6, 5, 5, 1), (16, 3, 3, 6), (1, 1, 1, 1)],
          tflite_io.FILTER_1HWO: [(1, 3, 3, 8), (1, 1, 1, 1)]}
# PACKED: p = b + sb of 4, 6, 8, 8, 8, 3, 8 (sigma from 1 bit, mu up to 7)
PACKED_BITS = [(3, 1), (4, 2), (5, 3), (2, 6), (7, 1), (2, 1), (4, 4)]
LAYOUTS = [(4, 4, storage.LAYOUT_I4_FUSED), (4, 8, storage.LAYOUT_I4_SPLIT), (8, 4, storage.LAYOUT_I8),
           (8, 8, storage.LAYOUT_I8), (2, 2, storage.LAYOUT_I4_FUSED),
           *[(b, sb, storage.LAYOUT_PACKED) for b, sb in PACKED_BITS]]


def _valid_cases():
    return [(_options(shape, fmt, b, sb, layout), shape) for fmt in sorted(FORMATS) for shape in SHAPES[fmt]
            for b, sb, layout in LAYOUTS]


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    return export_every_kind(tmp_path_factory.mktemp("every_kind"))


def _sample_ops(model_path):
    """(custom options, output tensor dims) of every QBNN_SAMPLE op of a model.tflite."""
    model = tflite_io.read_tflite(model_path)
    sub = model.subgraphs[0]
    out = []
    for op in sub.operators:
        if model.operatorCodes[op.opcodeIndex].customCode in (b"QBNN_SAMPLE", "QBNN_SAMPLE"):
            out.append((bytes(op.customOptions), tuple(int(v) for v in sub.tensors[op.outputs[0]].shape)))
    return out


def test_the_registry_has_the_three_filter_formats():
    assert FORMATS == {tflite_io.FILTER_FC, tflite_io.FILTER_OHWI, tflite_io.FILTER_1HWO}


def test_exported_options_parse_in_c_as_in_python(checker, exported, tmp_path):
    _, _, result = exported
    cases = _sample_ops(result["model"])
    assert {tflite_io.unpack_options(buf)["filter_format"] for buf, _ in cases} == FORMATS
    cases += _valid_cases()
    got = checker(cases, tmp_path)
    want = [_python(buf, dims) for buf, dims in cases]
    assert None not in want
    assert got == want


def _malformed(buf, dims):
    """Edits of one valid options buffer (and its output dims) that every reader must refuse."""
    b = bytes(buf)
    v2 = b[4] == 2
    head = tflite_io.OPTIONS_HEADER.size
    out = [(b[:n], dims) for n in sorted({0, 1, 4, 5, 12, head - 1, head, head + 3, head + 4, len(b) - 4, len(b) - 1})
           if n < len(b)]
    out.append((b + b"\0\0\0\0", dims))  # a table entry too many

    def edit(offset, value, fmt="<B", d=dims):
        e = bytearray(b)
        struct.pack_into(fmt, e, offset, value)
        if bytes(e) != b:  # e.g. sigma bits 1 of a PACKED 3 + 1 buffer is no edit
            out.append((bytes(e), d))

    edit(0, ord("X"))  # magic
    for version in (0, 3, 255, 1 if v2 else 2):
        edit(4, version)
    edit(5, 1), edit(5, 9), edit(6, 1), edit(6, 9), edit(7, 4)  # bits, layout
    edit(10, 11), edit(11, 21)  # eps bits, shift
    edit(12, 0, "<I"), edit(12, struct.unpack_from("<I", b, 12)[0] + 1, "<I")  # R
    edit(16, 0, "<I"), edit(16, struct.unpack_from("<I", b, 16)[0] + 1, "<I")  # C
    if v2:
        rank = b[head + 1]
        edit(head, 0), edit(head, 3)  # [O, I] is version 1 only; no format 3
        if b[head] == tflite_io.FILTER_OHWI and dims[0] != 1:
            edit(head, tflite_io.FILTER_1HWO)  # 1HWO dims start with 1
        edit(head + 1, 2), edit(head + 1, 5), edit(head + 2, 1)  # rank, reserved
        for i in range(rank):
            dim = struct.unpack_from("<I", b, head + 4 + 4 * i)[0]
            edit(head + 4 + 4 * i, 0, "<I"), edit(head + 4 + 4 * i, dim + 1, "<I")
        # dims whose product wraps to C in 32 bits: [R, 65536, 65536 + C, 1] = R x (2^32 + 65536 C)
        e = bytearray(b)
        c = struct.unpack_from("<I", b, 16)[0]
        struct.pack_into("<4I", e, head + 4, dims[0], 65536, 65536 + c // 65536 if c >= 65536 else 65536, 1)
        struct.pack_into("<I", e, 16, (65536 * struct.unpack_from("<I", e, head + 12)[0]) % 2**32)
        out.append((bytes(e), dims))
    # the output tensor: another rank, one dim off, a negative dim
    out += [(b, dims[:-1]), (b, (*dims, 1)), (b, (*dims[:-1], dims[-1] + 1)), (b, (-dims[0], *dims[1:]))]
    return out


def test_malformed_options_are_refused_by_both_readers(checker, tmp_path):
    cases = [m for buf, dims in _valid_cases()[::3] for m in _malformed(buf, dims)]
    got = checker(cases, tmp_path)
    for (buf, dims), line in zip(cases, got):
        assert _python(buf, dims) is None, (buf[:40].hex(), dims)
        assert line.startswith("err "), (buf[:40].hex(), dims, line)


def test_packed_options_parse_in_c_as_in_python(checker, tmp_path):
    cases = [c for c in _valid_cases() if c[0][7] == storage.LAYOUT_PACKED]
    assert {(c[0][5], c[0][6]) for c in cases} == set(PACKED_BITS) and len(cases) == len(PACKED_BITS) * 7
    got = checker(cases, tmp_path)
    assert got == [_python(buf, dims) for buf, dims in cases]
    assert all(line.startswith("ok ") for line in got)


def _bits_options(b, sb, layout, rows=5, cols=7):
    """Version 1 options of weight / sigma bits (b, sb) with the 2^sb table entries they call for, so that only the
    bit widths can make a reader refuse them."""
    return (tflite_io.OPTIONS_HEADER.pack(b"QBS1", 1, b, sb, layout, 0, 12, 22, rows, cols, 0)
            + np.arange(2**sb, dtype="<i4").tobytes(), (rows, cols))


def test_bits_outside_each_layouts_range_are_refused_by_both_readers(checker, tmp_path):
    """PACKED: mu 2..7, sigma 1..6, b + sb <= 8; the other layouts: sigma 2..8 (I4 kinds narrower, refused when the
    tensors are checked). Each refused width sits beside an accepted one of the same layout."""
    P, I8 = storage.LAYOUT_PACKED, storage.LAYOUT_I8
    refused = [(2, 0, P), (1, 1, P), (8, 1, P), (2, 7, P), (5, 4, P), (4, 5, P), (3, 6, P), (7, 2, P), (9, 1, P),
               (4, 1, I8), (4, 0, I8), (8, 1, storage.LAYOUT_I4_FUSED), (4, 1, storage.LAYOUT_I4_SPLIT)]
    accepted = [(2, 1, P), (7, 1, P), (2, 6, P), (4, 4, P), (5, 3, P), (6, 2, P), (4, 2, I8), (8, 8, I8)]
    cases = [_bits_options(*c) for c in refused + accepted]
    got = checker(cases, tmp_path)
    for (buf, dims), line in zip(cases[:len(refused)], got):
        assert _python(buf, dims) is None and line.split()[:2] == ["err", "2"], (buf[5:8].hex(), line)
    assert got[len(refused):] == [_python(buf, dims) for buf, dims in cases[len(refused):]]
    assert all(line.startswith("ok ") for line in got[len(refused):])


def test_huge_filters_are_refused_before_any_size_wraps(checker, tmp_path):
    """R x C of 2^31 and more (the sampler's bound), also when 32-bit products of the dims wrap to a small C."""
    rng = np.random.default_rng(0)
    sq = rng.integers(0, 1000, 16).astype("<i4").tobytes()
    cases = []
    for r, c in ((2**16, 2**15), (2**31, 1), (1, 2**31), (3, 2**30)):
        cases.append((tflite_io.OPTIONS_HEADER.pack(b"QBS1", 1, 4, 4, 1, 0, 12, 22, r, c, 0) + sq, (r, c)))
    for dims in ((1, 65536, 65536, 1), (2, 4096, 4096, 128), (1, 2**16 + 1, 2**16 - 1, 1)):
        c32 = int(np.prod(dims[1:], dtype=np.uint64)) % 2**32
        cases.append((tflite_io.OPTIONS_HEADER.pack(b"QBS1", 2, 4, 4, 1, 0, 12, 22, dims[0], c32, 0)
                      + tflite_io.OPTIONS_ND.pack(1, 4, 0) + struct.pack("<4I", *dims) + sq, dims))
    got = checker([(b, tuple(min(d, 2**31 - 1) for d in dims)) for b, dims in cases], tmp_path)
    assert all(line.startswith("err ") for line in got), got
    for b, dims in cases:
        assert _python(b, dims) is None


def test_output_dims_that_disagree_name_the_output_error(checker, tmp_path):
    buf = _options((6, 5, 5, 1), tflite_io.FILTER_OHWI)
    got = checker([(buf, (6, 25)), (buf, (6, 5, 1, 5)), (buf, (6, 5, 5, 1))], tmp_path)
    assert [line.split()[:2] for line in got[:2]] == [["err", str(ERR_OUTPUT)]] * 2
    assert got[2].startswith("ok ")


def test_resolver_header_is_generated_from_the_registry():
    assert tflm_ops.main(["--check"]) == 0, "run python -m tflite_export.tflm_ops"
    assert set(tflm_ops.builtins()) == {b for cls in OPS.values() for b in cls.tflite_builtins}
    assert tflm_ops.resolver_method("DEPTHWISE_CONV_2D") == "AddDepthwiseConv2D"
    assert tflm_ops.resolver_method("AVERAGE_POOL_2D") == "AddAveragePool2D"
    assert tflm_ops.resolver_method("FULLY_CONNECTED") == "AddFullyConnected"


def test_every_builtin_an_export_uses_is_in_the_resolver(exported):
    names = tflite_io.builtin_names(tflite_io._schema())
    _, _, result = exported
    for path in (result["model"], result["model_split"]):
        model = tflite_io.read_tflite(path)
        used = {names[c.builtinCode] for c in model.operatorCodes} - {"CUSTOM"}
        assert used <= set(tflm_ops.builtins()), used - set(tflm_ops.builtins())


def test_the_writer_refuses_a_builtin_its_op_did_not_declare(exported, monkeypatch):
    from tflite_export.ir.pool import MaxPool2D

    _, _, result = exported
    monkeypatch.setattr(MaxPool2D, "tflite_builtins", ())
    with pytest.raises(ValueError, match="MAX_POOL_2D, which none of its ops declares"):
        tflite_io.build_tflite(result["integer_model"])


def test_every_kind_model_runs_in_tflm_with_its_sampling_ops(exported, tmp_path):
    _, _, result = exported
    x = np.random.default_rng(4).random((40, 64)).astype(np.float32)
    got, ref, arena = run_in_graph(result["model"], result["integer_model"], x, 30, 5, tmp_path)
    np.testing.assert_array_equal(got, ref)
    assert not np.array_equal(ref[0], ref[1])
    assert 0 < arena < 1 << 21


MIXED_BITS = [(3, 1), (4, 2), (5, 3)]  # conv1 (OHWI), dense2, dense3: p = 4, 6, 8


@pytest.fixture(scope="module")
def mixed(tmp_path_factory):
    """A conv network whose Bayesian ops store PACKED pairs of three widths: the integer model, its model.tflite
    (QBNN_SAMPLE ops) and model_split.tflite."""
    out = tmp_path_factory.mktemp("mixed")
    imodel = synthetic_conv_model(seed=5, packed=MIXED_BITS)
    for name, split in (("model", False), ("model_split", True)):
        (out / f"{name}.tflite").write_bytes(tflite_io.build_tflite(imodel, split=split))
    return {"integer_model": imodel, "model": out / "model.tflite", "model_split": out / "model_split.tflite"}


def _images(n=6):
    return np.random.default_rng(8).random((n, 28, 28, 1)).astype(np.float32)


def test_mixed_packed_model_holds_packed_sampling_ops(mixed):
    layers = tflite_io.read_qbnn_layers(mixed["model"])
    ops = [op for op in mixed["integer_model"].layers if op.bayesian]
    assert [(L["weight_bits"], L["sigma_bits"], L["layout"]) for L in layers] == \
        [(b, sb, storage.LAYOUT_PACKED) for b, sb in MIXED_BITS]
    assert [L["filter_format"] for L in layers] == [tflite_io.FILTER_OHWI, tflite_io.FILTER_FC, tflite_io.FILTER_FC]
    for L, op in zip(layers, ops):
        assert [a.size for _, a in L["tensors"]] == [-(-op.weights.mu_codes.size * (L["weight_bits"] + L["sigma_bits"])
                                                       // 8)]
        np.testing.assert_array_equal(L["mu_codes"], op.weights.mu_codes)
        np.testing.assert_array_equal(L["sigma_codes"], op.weights.sigma_codes)


def test_mixed_packed_model_runs_in_tflm_with_its_sampling_ops(mixed, tmp_path):
    got, ref, arena = run_in_graph(mixed["model"], mixed["integer_model"], _images(), 12, 3, tmp_path)
    np.testing.assert_array_equal(got, ref)
    assert not np.array_equal(ref[0], ref[1])  # the samples differ
    assert 0 < arena < 1 << 21


def test_mixed_packed_split_model_runs_in_pip_tflm(mixed):
    ref = split_model_matches(mixed, _images(4), samples=3, seed=4)
    assert not np.array_equal(ref[0], ref[1])


def _rewrite(src, dst, edit):
    """model.tflite `src` with `edit(model, stored tensor of the first QBNN_SAMPLE op)` applied, written to `dst`."""
    model = tflite_io.read_tflite(src)
    sub = model.subgraphs[0]
    op = next(o for o in sub.operators if model.operatorCodes[o.opcodeIndex].customCode in (b"QBNN_SAMPLE",
                                                                                           "QBNN_SAMPLE"))
    edit(model, sub.tensors[op.inputs[0]])
    builder = flatbuffers.Builder(1 << 20)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    dst.write_bytes(bytes(builder.Output()))
    return dst


def _tflm_run(model_path, tmp_path):
    images = tmp_path / "image.bin"
    images.write_bytes(np.zeros(28 * 28, np.int8).tobytes())
    return subprocess.run([binary(), str(model_path), str(images), "1", "1"], capture_output=True, text=True,
                          timeout=120)


def test_the_op_refuses_packed_tensors_of_the_wrong_size_or_codes(mixed, tmp_path):
    """Prepare checks the PACKED tensor's byte count (ceil(R*C*p/8)) and every stored mu field (the pattern
    -2^(b-1) is no code); the untouched model runs."""
    def resize(delta):
        def edit(model, t):
            data = model.buffers[t.buffer].data
            data = np.concatenate([data, np.zeros(delta, np.uint8)]) if delta > 0 else data[:delta]
            model.buffers[t.buffer].data = data
            t.shape = np.asarray([data.size], np.int32)
        return edit

    def bad_mu(model, t):  # conv1 is 3 + 1 bits: pair 0 is the low nibble, mu field 0b100 = -4
        data = model.buffers[t.buffer].data.copy()
        data[0] = (data[0] & 0xF0) | 0x4
        model.buffers[t.buffer].data = data

    assert _tflm_run(mixed["model"], tmp_path).returncode == 0
    n = 6 * 5 * 5 * 1 * 4 // 8  # conv1's [6, 5, 5, 1] filter at p = 4: 75 bytes
    for name, edit, message in (("short", resize(-1), f"({n - 1} != {n})"), ("long", resize(1), f"({n + 1} != {n})"),
                                ("bad_mu", bad_mu, "code out of range")):
        r = _tflm_run(_rewrite(mixed["model"], tmp_path / f"{name}.tflite", edit), tmp_path)
        assert r.returncode == 3 and message in r.stderr, (name, r.returncode, r.stderr[-500:])  # Prepare failed
        with pytest.raises(ValueError):
            tflite_io.read_qbnn_layers(tmp_path / f"{name}.tflite")
