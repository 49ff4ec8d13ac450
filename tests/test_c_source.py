"""Generated C trusts no artifact: whatever a manifest or a caller puts in names and strings, the
C written by tflite_export.c_source holds only identifiers and numbers the generator made."""

import re
import shutil
import subprocess

import numpy as np
import pytest

from tflite_export import c_source

from mcu_models import synthetic_model

EVIL = "x */ int evil; /*\n#include <stdlib.h>\nint evil2 = 1; //"
C_WORDS = {"const", "static", "int8_t", "uint8_t", "int32_t", "uint32_t", "int", "char", "unsigned", "extern",
           "qbnn_rt_layer", "qbnn_model_t", "QBNN_ALIGNED", "include", "define", "ifndef", "endif", "if", "else",
           "defined", "__GNUC__", "__attribute__", "aligned", "f", "float", "stdint", "h", "uint16_t", "enum",
           # designated-initialiser fields of qbnn_runtime.h's structs
           "format_version", "num_ops", "num_classes", "ops", "softmax_multiplier", "softmax_left_shift",
           "softmax_diff_min", "default_seed", "kind", "in", "out", "params", "core", "rows", "cols", "weight_bits",
           "sigma_bits", "layout", "layer_index", "mu", "sigma", "sigma_q", "wlut", "filter", "filter_bits",
           "in_zero_point", "out_zero_point", "multiplier", "shift", "multipliers", "shifts", "bias", "act_min",
           "act_max", "act_lut", "moments", "w", "filter_h", "filter_w", "stride_h", "stride_w", "pad_top",
           "table", "activation", "in_scale", "w_scale",
           "pad_left"}
STRINGS = {'"model_data.h"', '"qbnn_runtime.h"', '"qbnn_modes.h"', '"test_vectors.h"', '"derived"', '"offset"'}
HEX_FLOAT = r"\b0x[0-9a-f]\.[0-9a-f]+p[+-]\d+f\b"  # float32 values written exactly (PFP test vectors)


def _tokens_outside_comments(text):
    comments = re.findall(r"/\*(.*?)\*/", text, re.S)
    code = re.sub(r"/\*.*?\*/", " ", text, flags=re.S)
    return comments, code


def assert_generator_made_only(text, allowed_strings=STRINGS):
    """Comments use a small alphabet; code is numbers, punctuation, the generator's identifiers
    (qbnn_* / QBNN_*, C words) and known string literals."""
    comments, code = _tokens_outside_comments(text)
    for c in comments:
        assert re.fullmatch(r"[A-Za-z0-9 _=,.:()<>|/\-+\[\]^]*", c), f"unexpected comment {c!r}"
    assert "//" not in code
    strings = re.findall(r'"[^"\n]*"', code)
    assert set(strings) <= allowed_strings, set(strings) - allowed_strings
    code = re.sub(r'"[^"\n]*"', " ", code)
    code = re.sub(HEX_FLOAT, " ", code)
    for tok in re.findall(r"[A-Za-z_][A-Za-z0-9_]*", re.sub(r"\b\d[0-9.e+-]*[uf]?\b", " ", code)):
        assert tok in C_WORDS or tok.startswith(("qbnn_", "QBNN_")), f"identifier {tok!r} not made by the generator"
    assert re.fullmatch(r"[A-Za-z0-9_\s{}()\[\];,=*&#<>.+\-/\"]*", code.replace("'", "")), "unexpected characters"


def test_layer_name_from_the_manifest_never_reaches_the_c(tmp_path):
    model = synthetic_model(sizes=(16, 8, 4), seed=1)
    model.layers[0].name = EVIL
    model.layers[1].name = "ok */ #error injected"
    c_path, h_path = c_source.write_model_sources(model, tmp_path)
    for path in (c_path, h_path):
        text = open(path).read()
        assert "evil" not in text and "stdlib" not in text and "injected" not in text
        assert_generator_made_only(text)
    if shutil.which("cc"):  # and it still compiles to a model with only qbnn_ symbols
        micro = c_source.__file__.replace("c_source.py", "micro")
        obj = tmp_path / "model_data.o"
        subprocess.run(["cc", "-std=c99", "-Wall", "-Werror", "-c", "-I", micro, "-I", str(tmp_path), c_path,
                        "-o", str(obj)], check=True)
        syms = subprocess.run(["nm", str(obj)], capture_output=True, text=True, check=True).stdout
        assert "evil" not in syms and "qbnn_model" in syms


def test_unknown_activation_string_is_refused(tmp_path):
    model = synthetic_model(sizes=(16, 8, 4), seed=1)
    model.layers[1].activation = "linear */ int evil; /*"
    with pytest.raises(ValueError, match="activation"):
        c_source.write_model_sources(model, tmp_path)


@pytest.mark.parametrize("source", ['a"; int evil; char *x = "', "two\nlines", "", "x" * 41, "back\\slash"])
def test_test_vector_source_names_must_be_plain_words(tmp_path, source):
    model = synthetic_model(sizes=(16, 8, 4), seed=1)
    images = np.zeros((1, 16), np.uint8)
    with pytest.raises(ValueError, match="source name"):
        c_source.write_test_vectors(model, images, [source], tmp_path, num_samples=2)


def test_test_vectors_hold_only_generated_tokens(tmp_path):
    model = synthetic_model(sizes=(16, 8, 4), seed=1)
    images = np.random.default_rng(0).integers(0, 256, size=(2, 16)).astype(np.uint8)
    c_source.write_test_vectors(model, images, ["mnist", "ambiguous-blend"], tmp_path, num_samples=2)
    text = (tmp_path / "test_vectors.c").read_text() + (tmp_path / "test_vectors.h").read_text()
    assert_generator_made_only(text, STRINGS | {'"mnist"', '"ambiguous-blend"'})


def test_tflite_array_name_must_be_an_identifier(tmp_path):
    f = tmp_path / "m.tflite"
    f.write_bytes(b"\x00" * 8)
    with pytest.raises(ValueError, match="C identifier"):
        c_source.write_tflite_array(f, tmp_path, name="g_model[]; int evil")


def test_c_dims_of_every_per_example_rank():
    """[C] -> 1x1xC, a 1-D signal's [W, C] -> 1xWxC, [H, W, C] as is; other ranks are refused by name."""
    assert c_source._dims((5,)) == "{1, 1, 5}"
    assert c_source._dims((12, 4)) == "{1, 12, 4}"
    assert c_source._dims((2, 3, 4)) == "{2, 3, 4}"
    with pytest.raises(ValueError, match="rank 4"):
        c_source._dims((1, 2, 3, 4))
