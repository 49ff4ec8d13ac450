"""Every op of the IR registry (`tflite_export.ir.registry.OPS`), from its own `example()` instances, bit for bit
across the three implementations: the numpy integer kernels, the op's TFLite lowering run by pip TFLite Micro
(its reference kernels), and the C runtime's kernel (micro/ops, host build under ASan / UBSan). An op added to the
registry is tested here with no test edited."""

import shutil
import subprocess

import numpy as np
import pytest

from tflite_export import c_source, convert, firmware_runner, reference, tflite_io
from tflite_export.intmath import sampler
from tflite_export.ir import OPS
from tflite_export.ir.base import Op
from tflite_export.ir.fully_connected import FullyConnected
from tflite_export.ir.reshape import Reshape
from tflite_export.ir.weights import BayesianWeights

EXAMPLES = [(kind, i) for kind, cls in OPS.items() for i in range(len(cls.example()))]
C_EXAMPLES = [(kind, i) for kind, i in EXAMPLES if getattr(OPS[kind], "c_kind", kind) in c_source.C_KINDS]
HAVE_CC = shutil.which("cc") is not None


def _example(kind, i):
    return OPS[kind].example()[i]


def _calibrated(ex, n=24, seed=0):
    """The example's op with its output quantization fixed from `n` random int8 inputs (SPEC 4), the inputs, one
    weight sample per input (Bayesian: stream `op.index`, seed `seed`) and the op's outputs."""
    op = ex.op
    rng = np.random.default_rng(seed)
    q = rng.integers(-128, 128, size=(n, *ex.in_shape)).astype(np.int8)
    if op.bayesian:
        stream = sampler.ByteStream(seed, op.index)
        ws = [op.sample(stream) for _ in range(n)]
    else:
        ws = [op.sample(None)] * n
    op.calibrate([q], ex.in_quant, [ws[0]])
    out = np.concatenate([op.run(q[k:k + 1], ex.in_quant, ws[k]) for k in range(n)])
    return op, q, ws, out


def test_every_registered_op_has_examples():
    for kind, cls in OPS.items():
        assert cls.kind == kind and cls.example is not Op.example, kind
        examples = cls.example()
        assert examples and all(type(ex.op) is cls for ex in examples), kind
        # the examples' instances are fresh: a test that calibrates one cannot change another test's
        assert all(a.op is not b.op for a, b in zip(examples, cls.example()))


@pytest.mark.parametrize("kind,i", EXAMPLES, ids=[f"{k}-{i}" for k, i in EXAMPLES])
def test_example_is_bit_exact_with_tflm(kind, i):
    """The op's own TFLite lowering (split: a Bayesian filter is a graph input) in TFLM's reference kernels gives
    the numpy kernel's int8 outputs, over inputs that span a real range of output codes."""
    tflm = pytest.importorskip("tflite_micro.python.tflite_micro.runtime")
    ex = _example(kind, i)
    op, q, ws, want = _calibrated(ex)
    in_quant = np.float32(ex.in_quant[0]), int(ex.in_quant[1])
    data = tflite_io.build_graph([op], ex.in_shape, in_quant, split=True)
    interp = tflm.Interpreter.from_bytes(data, arena_size=1 << 20)
    got = []
    for k in range(len(q)):
        interp.set_input(q[k:k + 1], 0)
        if op.bayesian:
            interp.set_input(np.asarray(ws[k], np.int8), 1)
        interp.invoke()
        got.append(interp.get_output(0)[0])
    np.testing.assert_array_equal(np.stack(got), want)
    assert np.unique(want).size > 8, np.unique(want)  # not a saturated or constant output


def _head_model(ex, seed=0):
    """[example op, flatten, Bayesian dense head of 10 classes]: the op inside a whole model the C runtime runs."""
    op = ex.op
    shape = op.output_shape(ex.in_shape)
    ops = [op] + ([Reshape("flat")] if len(shape) > 1 else [])
    n = int(np.prod(shape))
    ops.append(FullyConnected("head", BayesianWeights.example((10, n), index=op.index + 1 if op.bayesian else 0,
                                                              seed=seed)))
    model = reference.IntegerModel(ops, default_seed=seed + 5, input_shape=ex.in_shape)
    x = np.random.default_rng(seed).random((24, *ex.in_shape)).astype(np.float32)
    return convert.calibrate(model, x, num_samples=3)


@pytest.fixture(scope="module")
def c_build(tmp_path_factory):
    """One GEN_DIR and one host build folder for the module: the runtime's objects are compiled once, each test
    rewrites the generated model and make rebuilds what depends on it."""
    return tmp_path_factory.mktemp("gen"), tmp_path_factory.mktemp("host")


@pytest.mark.skipif(not HAVE_CC, reason="no host C compiler")
@pytest.mark.parametrize("kind,i", C_EXAMPLES, ids=[f"{k}-{i}" for k, i in C_EXAMPLES])
def test_example_is_bit_exact_in_the_c_runtime(kind, i, c_build):
    """The example op followed by a Bayesian head, generated to C: MC counts, entropies, stream positions and the
    mean-code pass of every C kernel (REF / LUT / SIMD) equal the numpy reference (the op's output reaches the
    head's 10 logits, so one wrong output code changes them)."""
    model = _head_model(_example(kind, i))
    gen, build = c_build
    c_source.write_model_sources(model, gen)
    images = np.random.default_rng(1).integers(0, 256, size=(3, model.input_dim)).astype(np.uint8)
    exp = c_source.write_test_vectors(model, images, ["r0", "r1", "r2"], gen, num_samples=4)
    assert len({tuple(e["mean_codes"]) for e in exp}) > 1  # the images are told apart through the op
    r = subprocess.run(["make", "-s", "-C", firmware_runner.FIRMWARE_DIR, f"GEN_DIR={gen}",
                        f"HOST_BUILD={build}", "host-test"], capture_output=True, text=True, timeout=600)
    assert r.returncode == 0 and "PASSED: 0 mismatches" in r.stdout, r.stdout[-3000:] + r.stderr[-3000:]
    assert "runtime error" not in r.stderr and "AddressSanitizer" not in r.stderr
    for kernel in ("ref", "lut", "simd"):
        assert f"ok image 1 (r1) kernel={kernel}" in r.stdout


@pytest.mark.parametrize("kind,i", EXAMPLES, ids=[f"{k}-{i}" for k, i in EXAMPLES])
def test_example_manifest_entry_round_trips(kind, i):
    """manifest_entry + stored_tensors -> from_manifest gives an op with the same outputs (the load side of every
    op; the Softmax is the model's, not an entry)."""
    ex = _example(kind, i)
    cls = OPS[kind]
    if not hasattr(cls, "from_manifest"):
        pytest.skip(f"{kind} has no manifest entry of its own")
    op, q, ws, want = _calibrated(ex)
    arrays = dict(op.stored_tensors())
    back = cls.from_manifest(op.manifest_entry(), arrays)
    got = np.concatenate([back.run(q[k:k + 1], ex.in_quant, ws[k]) for k in range(len(q))])
    np.testing.assert_array_equal(got, want)
    assert back.output_shape(ex.in_shape) == op.output_shape(ex.in_shape)
