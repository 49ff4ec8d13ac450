"""Runs an exported model.tflite, QBNN_SAMPLE ops included, in real TFLite Micro through the host binary named by
QBNN_TFLM_TEST_BIN (`make -C tflite_export tflm-host-test TFLM_DIR=...`) and compares it with the numpy reference.
Tests that use it are skipped when the variable is not set (TFLM is not part of the Python stack). Also the
split model (sampled filters as graph inputs) in pip TFLM's interpreter."""

import os
import re
import subprocess

import numpy as np
import pytest


def binary():
    path = os.environ.get("QBNN_TFLM_TEST_BIN")
    if not path:
        pytest.skip("QBNN_TFLM_TEST_BIN not set (build with make -C tflite_export tflm-host-test TFLM_DIR=...)")
    return path


def run_in_graph(model_path, imodel, x, samples, seed, tmp_path):
    """Runs `x` (float images) through model.tflite in TFLM (streams reseeded with `seed` before each image) and
    through `imodel.predict_codes`; returns (TFLM codes [S, N, K], reference codes [S, N, K], arena bytes)."""
    q = imodel.quantize_input(np.asarray(x).reshape(-1, *imodel.input_shape))
    images = tmp_path / "images.bin"
    images.write_bytes(np.ascontiguousarray(q, np.int8).tobytes())
    run = subprocess.run([binary(), str(model_path), str(images), str(seed), str(samples)],
                         capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, f"TFLM exit {run.returncode}: {run.stderr.strip()[-2000:]}"
    rows = np.array([[int(v) for v in line.split()] for line in run.stdout.strip().splitlines()])
    got = rows.reshape(len(q), samples, -1).transpose(1, 0, 2)
    ref = imodel.predict_codes(x, num_samples=samples, seed=seed)
    arena = int(re.search(r"arena used: (\d+) bytes", run.stderr).group(1))
    return got, np.asarray(ref).reshape(got.shape), arena


def split_model_matches(result, x, samples=3, seed=2):
    """pip TFLM runs model_split.tflite (sampled filters fed as inputs) bit-exactly with the numpy reference."""
    tflm = pytest.importorskip("tflite_micro.python.tflite_micro.runtime")
    imodel = result["integer_model"]
    interp = tflm.Interpreter.from_bytes(result["model_split"].read_bytes(), arena_size=1 << 20)
    ref = imodel.predict_codes(x, num_samples=samples, streams=imodel.streams(seed))
    streams = imodel.streams(seed)
    q = imodel.quantize_input(x)
    for s in range(samples):
        w = [wi for wi, op in zip(imodel.sample_weights(streams), imodel.layers) if op.bayesian]
        got = []
        for n in range(len(x)):
            interp.set_input(q[n:n + 1], 0)
            for i, wi in enumerate(w):
                interp.set_input(wi, i + 1)
            interp.invoke()
            got.append(interp.get_output(0)[0])
        np.testing.assert_array_equal(np.stack(got), ref[s])
    return ref
