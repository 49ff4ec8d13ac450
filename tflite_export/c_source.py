"""C sources of an exported model for the portable runtime (`micro/qbnn_runtime.c`) and the firmware.

`write_model_sources(model, out_dir)` writes `model_data.c/.h`: every stored tensor, SIGMA_Q, the
SoftPlus LUTs, requantization constants, and the *derived sampling table* of each distinct
(weight bits, SIGMA_Q): `table[byte << 8 | u] = w_code` for an I4_FUSED byte (mu nibble | sigma
code << 4) and a stream byte u, computed with `sampler.sample_codes`, i.e. SPEC.md 3.3's formula
(equal by construction; tests compare all 65,536 entries with the C core's qbnn_sample_weight).
Arrays are `const`, 16-byte aligned, named `qbnn_<what>` like TFLM's `g_model` conventions.
The generated C holds only identifiers and numbers the generator makes itself: nothing read from an
artifact (layer names, activation strings) is pasted into it; numbers go through `int()`, names of
test-vector sources must be plain words (`_SOURCE_NAME`), or a ValueError names the offending value.

`write_test_vectors(model, images, sources, out_dir)` writes `test_vectors.c/.h`: uint8 images
and the values the numpy reference (`tflite_export.reference`) gives for them — SPEC.md 7's
count sums A[c], predictions, entropies and the layer stream positions.

CLI (with real test images): `python -m tfqbnn.cli.c_sources EXPORT_DIR --out GEN_DIR [--samples S --seed N]`.
"""

from __future__ import annotations

import os
import re

import numpy as np

from tflite_export import modes, reference, sampler, softmax, storage
from tflite_export.ir.activation import ACTIVATIONS  # the one list of activations

TOLERANCE_NATS = 1e-5  # SPEC.md section 7: float32 C vs float64 reference
PFP_TOLERANCE = 1e-6  # SPEC.md section 11.3: C float32 vs the numpy float32 mirror (measured: bit-identical)
DERIVED_TABLE_BYTES = 256 * 256
SAMPLE_TABLES = ("derived", "offset")  # the C kernels' sampling table: 64 KB w_code table, or 4 KB offsets
_SOURCE_NAME = re.compile(r"[A-Za-z0-9_.+-]{1,40}\Z")  # test-vector source names go into C strings
_C_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,62}\Z")
_MODE_ACTIVATIONS = {"linear": "QBNN_ACT_LINEAR", "relu": "QBNN_ACT_RELU", "softplus": "QBNN_ACT_SOFTPLUS"}


def offset_table(sigma_q):
    """int8[len(sigma_q) * 256]: (SIGMA_Q[k] * EPS_Q[u] + 2^(s-1)) >> s at index k << 8 | u, so that
    w_code = clamp(mu + table[k << 8 | u], -M, M) is SPEC 3.3's formula exactly (4 KB for sb = 4)."""
    prod = np.asarray(sigma_q, np.int64)[:, None] * sampler.EPS_Q.astype(np.int64)[None, :]
    off = (prod + (1 << (sampler.SHIFT - 1))) >> sampler.SHIFT
    if np.abs(off).max() > 127:
        raise ValueError(f"offset table: offsets up to {int(np.abs(off).max())} do not fit int8; use the derived table")
    return off.reshape(-1)


def derived_table(sigma_q, weight_bits):
    """int8[65536]: w_code for I4_FUSED byte b and stream byte u at index b << 8 | u.

    Bytes whose sigma code is >= len(sigma_q) or whose mu nibble is -8 never occur in a model; their
    entries are filled with a valid code (clamped mu, sigma code 0) so that a table read is defined.
    """
    sigma_q = np.asarray(sigma_q, np.int64)
    b = np.arange(256)
    mu = (b & 0xF).astype(np.int64)
    mu = np.where(mu >= 8, mu - 16, mu)
    k = b >> 4
    k = np.where(k < len(sigma_q), k, 0)
    u = np.arange(256)
    return sampler.sample_codes(mu[:, None], k[:, None], sigma_q, u[None, :], weight_bits).reshape(-1)


def _c_array(ctype, name, values, per_line=24, align=True):
    values = np.asarray(values).reshape(-1)
    attr = "QBNN_ALIGNED " if align else ""
    lines = [f"{attr}const {ctype} {name}[{len(values)}] = {{"]
    for i in range(0, len(values), per_line):
        lines.append("  " + ", ".join(str(int(v)) for v in values[i:i + per_line]) + ",")
    lines.append("};")
    return "\n".join(lines)


MICRO_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "micro")


def _c_kinds():
    """The op kinds of the C runtime, in enum order: read from its registry, micro/qbnn_op_list.h (one list)."""
    with open(os.path.join(MICRO_DIR, "qbnn_op_list.h")) as f:
        return tuple(re.findall(r"^QBNN_OP\((\w+), \w+\)$", f.read(), re.M))


C_KINDS = _c_kinds()
FORMAT_VERSION = 3  # QBNN_FORMAT_VERSION in micro/qbnn_runtime.h (3: moment tables carry PFP's scales)


class CEmitter:
    """What an IR op's `emit_c(em, i, in_shape)` writes into: C arrays (named by the generator, numbers through
    `int()`), shared derived sampling tables and moment tables (one per distinct (weight bits, SIGMA_Q)), and
    `rt_layer`, the designated initialiser of a weighted op's `qbnn_rt_layer`."""

    def __init__(self, sample_table="derived"):
        if sample_table not in SAMPLE_TABLES:
            raise ValueError(f"sample_table must be one of {list(SAMPLE_TABLES)}; received {sample_table!r}")
        self.sample_table_kind = sample_table
        self.body = []
        self.tables = []  # [(key, name)]
        self.table_bytes = 0
        self.param_bytes = 0
        self.bayesian_weights = 0

    def array(self, ctype, name, values, per_line=24, align=True, count=True):
        if not _C_IDENTIFIER.match(name):
            raise ValueError(f"C array name {name!r} is not an identifier")
        values = np.asarray(values)
        if count:
            self.param_bytes += values.size * np.dtype({"int8_t": np.int8, "uint8_t": np.uint8, "int32_t": np.int32}
                                                       .get(ctype, np.uint8)).itemsize
        self.body.append(_c_array(ctype, name, values, per_line, align))
        return name

    def sample_table(self, sigma_q, weight_bits):
        """Name of the derived table (and moment table) for a grid; layers with equal grids share one."""
        key = (int(weight_bits), tuple(int(v) for v in sigma_q))
        for k, name in self.tables:
            if k == key:
                return name
        t = len(self.tables)
        name = f"qbnn_sample_table{t}"
        if self.sample_table_kind == "derived":
            self.body.append(f"/* derived sampling table {t}: [I4_FUSED byte << 8 | stream byte] -> w_code */")
            table = derived_table(np.asarray(key[1]), key[0])
        else:
            self.body.append(f"/* offset table {t}: [sigma code << 8 | stream byte] -> offset (w = clamp(mu + offset)) */")
            table = offset_table(np.asarray(key[1]))
        self.array("int8_t", name, table, per_line=32, count=False)
        self.table_bytes += table.size
        self.body.append(f"/* exact code moments {t}: [2 I4_FUSED byte] = S1, [2 I4_FUSED byte + 1] = V (SPEC 11.1) */")
        self.array("int32_t", f"qbnn_moments{t}", modes.moment_table(np.asarray(key[1]), key[0]), per_line=16,
                   align=False, count=False)
        self.tables.append((key, name))
        return name

    def rt_layer(self, i, rows, cols, *, in_zero_point, out_zero_point, multipliers, shifts, act_range, activation,
                 lut=None, bias=None, bayesian=None, constant=None, moments=None):
        """Initialiser of op i's qbnn_rt_layer. bayesian: dict(weight_bits, sigma_bits, layout, index, packed,
        sigma_q) (I4_FUSED only: the table kernels); constant: (int8 codes, bits); moments: None, or the Bayesian
        dense op whose moment table to write (SPEC 11; PFP's scales from `modes`)."""
        if activation not in ACTIVATIONS:
            raise ValueError(f"op {i}: activation {activation!r} is not one of {ACTIVATIONS}")
        f = {}
        if bayesian is not None:
            self.require_fused(f"op {i}", bayesian["layout"])
            packed = self.array("uint8_t", f"qbnn_op{i}_packed", bayesian["packed"])
            sq = self.array("int32_t", f"qbnn_op{i}_sigma_q", bayesian["sigma_q"], align=False)
            table = self.sample_table(bayesian["sigma_q"], bayesian["weight_bits"])
            f["core"] = (f"{{.rows = {int(rows)}u, .cols = {int(cols)}u, "
                         f".weight_bits = {int(bayesian['weight_bits'])}, .sigma_bits = {int(bayesian['sigma_bits'])}, .layout = {int(bayesian['layout'])}, "
                         f".layer_index = {int(bayesian['index'])}, .mu = {packed}, .sigma = 0, .sigma_q = {sq}}}")
            f["wlut" if self.sample_table_kind == "derived" else "offsets"] = table
            self.bayesian_weights += int(rows) * int(cols)
            if moments is not None:  # PFP's real units: float32 bits as hex literals
                in_scale, w_scale = (float(v).hex() + "f"
                                     for v in (modes.input_scale_f32(moments), modes.weight_scale_f32(moments)))
                self.body.append(f"static const qbnn_layer_moments qbnn_op{i}_moments = {{"
                                 f".table = {table.replace('sample_table', 'moments')}, "
                                 f".activation = {_MODE_ACTIVATIONS[activation]}, "
                                 f".in_scale = {in_scale}, .w_scale = {w_scale}}};")
                f["moments"] = f"&qbnn_op{i}_moments"
        else:
            codes, bits = constant
            stored = storage._pack_nibbles(codes) if int(bits) == 4 else np.asarray(codes, np.int8).reshape(-1)
            f["core"] = f"{{.rows = {int(rows)}u, .cols = {int(cols)}u}}"
            f["filter"] = self.array("int8_t", f"qbnn_op{i}_filter", stored.astype(np.int8))
            f["filter_bits"] = str(int(bits))
        mult, shift = np.asarray(multipliers, np.int64).reshape(-1), np.asarray(shifts, np.int64).reshape(-1)
        if np.all(mult == mult[0]) and np.all(shift == shift[0]):
            f["multiplier"], f["shift"] = str(int(mult[0])), str(int(shift[0]))
        else:
            f["multipliers"] = self.array("int32_t", f"qbnn_op{i}_multipliers", mult, align=False)
            f["shifts"] = self.array("int32_t", f"qbnn_op{i}_shifts", shift, align=False)
        if bias is not None:
            f["bias"] = self.array("int32_t", f"qbnn_op{i}_bias", np.asarray(bias, np.int64), align=False)
        if lut is not None:
            f["act_lut"] = self.array("int8_t", f"qbnn_op{i}_softplus", lut, per_line=32, align=False)
        f["in_zero_point"], f["out_zero_point"] = str(int(in_zero_point)), str(int(out_zero_point))
        f["act_min"], f["act_max"] = str(int(act_range[0])), str(int(act_range[1]))
        return "{" + ", ".join(f".{k} = {v}" for k, v in f.items()) + "}"

    @staticmethod
    def require_fused(what, layout):
        """The table kernels read one I4_FUSED byte per Bayesian weight."""
        if layout != storage.LAYOUT_I4_FUSED:
            raise ValueError(
                f"{what}: layout {storage.LAYOUT_NAMES.get(layout, layout)} is not supported by the C runtime's table "
                "kernels (export with --weights int4 and sigma_bits <= 4 for I4_FUSED)")

    def params(self, ctype, i, initialiser):
        """A `static const <ctype> qbnn_op<i>_params = <initialiser>;`; returns its address expression."""
        self.body.append(f"static const {ctype} qbnn_op{i}_params = {initialiser};")
        return f"&qbnn_op{i}_params"


def _dims(shape):
    shape = tuple(int(v) for v in shape)
    h, w, c = (1, 1, shape[0]) if len(shape) == 1 else shape
    for v in (h, w, c):
        if not 0 < v < 65536:
            raise ValueError(f"tensor shape {shape} does not fit the C runtime's uint16 dims")
    return f"{{{h}, {w}, {c}}}"


def arena_bytes(model):
    """qbnn_arena_bytes(model) of the C runtime (qbnn_runtime.c's plan), computed here for the firmware's static
    arena; the firmware checks the two agree."""
    r8 = lambda n: (int(n) + 7) // 8 * 8  # noqa: E731
    shapes, shape = [], tuple(model.input_shape)
    for op in model.layers:
        out = op.output_shape(shape)
        shapes.append((shape, out))
        shape = out
    first = model.prefix_length
    act = max(int(np.prod(o)) for _, o in shapes)
    x_first = x_op = filt = 0
    for i, (op, (ins, outs)) in enumerate(zip(model.layers, shapes)):
        x, f = op.c_needs(ins)
        if i == first:
            x_first, x = x, 0
        x_op, filt = max(x_op, x), max(filt, f)
    prefix = int(np.prod(shapes[first - 1][1])) if first > 0 else 0
    # HYBRID's scratch overlaps x_first, PFP's everything after the prefix output (qbnn_modes.c: hybrid_cut,
    # pfp_cut)
    hybrid = pfp = 0
    tail = [op.c_modes(ins) for op, (ins, _) in zip(model.layers[first:], shapes[first:])]
    if tail and tail[0] is not None:
        rows, cols = tail[0]
        hybrid = r8(2 * cols) + 2 * r8(8 * rows) + r8(4 * rows) + r8(rows)
        if all(m is not None for m in tail):  # PFP: every op from the first Bayesian one a Bayesian dense layer
            max_rows = max(m[0] for m in tail)
            max_cols = max((m[1] for m in tail[1:]), default=0)
            pfp = r8(2 * cols) + 2 * r8(8 * rows) + 4 * r8(4 * max_rows) + r8(4 * max_cols)
    mc = r8(prefix) + 2 * r8(act) + r8(2 * x_op) + r8(2 * filt) + max(r8(2 * x_first), hybrid)
    return max(mc, r8(prefix) + pfp)


def param_bytes(model):
    """Bytes of the model's stored parameters (stored tensors + SIGMA_Q + LUTs + constants), as written into
    model_data.c (sampling and moment tables not included: QBNN_SAMPLE_TABLE_BYTES)."""
    em = CEmitter()
    _emit_ops(model, em)
    return em.param_bytes


def _emit_ops(model, em):
    entries, shape = [], tuple(model.input_shape)
    em.quants = model.quants()  # (scale, zero point) of every op's input
    for i, op in enumerate(model.layers):
        kind = getattr(op, "c_kind", op.kind)
        if kind not in C_KINDS:
            raise ValueError(f"op {i} ({op.kind}) has no C kernel; C kernels: {list(C_KINDS)}")
        out = op.output_shape(shape)
        params = op.emit_c(em, i, shape)
        entries.append(f"    {{.kind = QBNN_OP_{kind}, .in = {_dims(shape)}, .out = {_dims(out)}, "
                       f".params = {params}}},")
        shape = out
    return entries


def write_model_sources(model, out_dir, sample_table="derived"):
    """model_data.c/.h for `model` (a `reference.IntegerModel`): each op's parameters through its IR module's
    `emit_c`, then the op list and the model (designated initialisers, QBNN_FORMAT_VERSION); returns the paths.
    sample_table: "derived" (64 KB per distinct grid, fastest) or "offset" (4 KB per grid, SPEC 3.3's add and
    clamp per weight); layers with equal grids share one table."""
    em = CEmitter(sample_table)
    entries = _emit_ops(model, em)
    sm_mult, sm_shift, sm_diff_min = softmax.softmax_params(model.quants()[-1][0])
    os.makedirs(out_dir, exist_ok=True)
    body = ["/* Generated by tflite_export/c_source.py from an exported tfqbnn model. Do not edit. */",
            '#include "model_data.h"', "", *em.body, "",
            f"static const qbnn_op qbnn_ops[QBNN_NUM_OPS] = {{", *entries, "};", "",
            f"const qbnn_model_t qbnn_model = {{.format_version = {FORMAT_VERSION}, .num_ops = QBNN_NUM_OPS, "
            f".num_classes = {int(model.num_classes)}, .ops = qbnn_ops, .softmax_multiplier = {int(sm_mult)}, "
            f".softmax_left_shift = {int(sm_shift)}, .softmax_diff_min = {int(sm_diff_min)}, "
            f".default_seed = {int(model.default_seed) & 0xFFFFFFFF}u}};", ""]
    c_path = os.path.join(out_dir, "model_data.c")
    with open(c_path, "w") as f:
        f.write("\n".join(body))
    h = ["/* Generated by tflite_export/c_source.py. Do not edit. */",
         "#ifndef QBNN_MODEL_DATA_H_", "#define QBNN_MODEL_DATA_H_", "", '#include "qbnn_modes.h"',
         '#include "qbnn_runtime.h"', "",
         "#if defined(__GNUC__)", "#define QBNN_ALIGNED __attribute__((aligned(16)))", "#else",
         "#define QBNN_ALIGNED", "#endif", "",
         f"#define QBNN_NUM_OPS {len(model.layers)}",
         f"#define QBNN_INPUT_DIM {int(model.input_dim)}",
         f"#define QBNN_NUM_CLASSES {int(model.num_classes)}",
         f"#define QBNN_NUM_WEIGHTS {em.bayesian_weights}u /* Bayesian (sampled) weights */",
         f"#define QBNN_PARAM_BYTES {em.param_bytes}u",
         f"#define QBNN_SAMPLE_TABLE_KIND \"{em.sample_table_kind}\"",
         f"#define QBNN_SAMPLE_TABLE_BYTES {em.table_bytes}u",
         f"#define QBNN_ARENA_BYTES {arena_bytes(model)}u",
         "", "extern const qbnn_model_t qbnn_model;", "", "#endif", ""]
    h_path = os.path.join(out_dir, "model_data.h")
    with open(h_path, "w") as f:
        f.write("\n".join(h))
    return c_path, h_path


def write_tflite_array(tflite_path, out_dir, name="g_model"):
    """model_tflite.cc/.h: a .tflite as a 16-byte aligned C array, TFLM's `g_model` / `g_model_len`
    convention (for tflite_export/firmware/tflm_example)."""
    if not _C_IDENTIFIER.match(str(name)):
        raise ValueError(f"name={name!r} is not a C identifier")
    data = np.frombuffer(open(tflite_path, "rb").read(), np.uint8)
    os.makedirs(out_dir, exist_ok=True)
    with open(os.path.join(out_dir, "model_tflite.h"), "w") as f:
        f.write(f"#ifndef QBNN_MODEL_TFLITE_H_\n#define QBNN_MODEL_TFLITE_H_\n\nextern const unsigned char {name}[];\n"
                f"extern const int {name}_len;\n\n#endif\n")
    with open(os.path.join(out_dir, "model_tflite.cc"), "w") as f:
        f.write('#include "model_tflite.h"\n\n' + _c_array("unsigned char", name, data).replace("QBNN_ALIGNED ", "alignas(16) ")
                + f"\nconst int {name}_len = {len(data)};\n")


def expected_values(model, images, num_samples, seed):
    """Reference results per image (streams seeded with `seed` before every image)."""
    out = []
    images = np.asarray(images, np.uint8).reshape(-1, *model.input_shape)
    for img in images:
        streams = model.streams(seed)
        codes = model.predict_codes(img[None], num_samples=num_samples, streams=streams)
        u = reference.uncertainty(codes)
        out.append({
            "sums": u["sums"][0].astype(np.int64),
            "prediction": int(u["prediction"][0]),
            "entropy": (float(u["predictive_entropy"][0]), float(u["expected_entropy"][0]),
                        float(u["mutual_information"][0])),
            "jk": np.float32(u["entropy_correction"][0]),  # SPEC 7.1, float32 bits
            "positions": [int(s.position) for s in streams],
        })
    for img, e in zip(images, out):
        e["mean_codes"] = modes.forward_mean_codes(model, img[None])[0].astype(np.int64)
    # SPEC 11's hybrid: the first Bayesian op a dense layer
    for img, e in zip(images, out if _runs_mode(modes.hybrid_entry, model) else []):
        streams = model.streams(seed)
        u = reference.uncertainty(modes.hybrid_predict_codes(model, img[None], num_samples, streams=streams))
        e["hybrid"] = {"sums": u["sums"][0].astype(np.int64), "prediction": int(u["prediction"][0]),
                       "entropy": (float(u["predictive_entropy"][0]), float(u["expected_entropy"][0]),
                                   float(u["mutual_information"][0])),
                       "jk": np.float32(u["entropy_correction"][0]), "positions": [int(s.position) for s in streams]}
    # SPEC 11's PFP: every op from the first Bayesian one a dense layer
    for img, e in zip(images, out if _runs_mode(modes.pfp_entry, model) else []):
        streams = model.streams(seed)
        p = modes.pfp_uncertainty(model, img[None], num_samples, streams=streams)
        e["pfp"] = {"mean_prob": p["mean_prob"][0], "prediction": int(p["prediction"][0]),
                    "entropy": (p["predictive_entropy"][0], p["expected_entropy"][0], p["mutual_information"][0]),
                    "jk": np.float32(p["entropy_correction"][0]), "positions": [int(s.position) for s in streams]}
    return out


def _runs_mode(entry, model):
    """Whether `modes.hybrid_entry` / `modes.pfp_entry` accepts the model."""
    try:
        entry(model)
    except ValueError:
        return False
    return True


def _hex_floats(values):
    return ", ".join(float(np.float32(v)).hex() + "f" for v in np.asarray(values, np.float32).reshape(-1))


def write_test_vectors(model, images, sources, out_dir, num_samples=10, seed=None):
    """test_vectors.c/.h: images (uint8 [N, input_dim]) with their reference results."""
    images = np.asarray(images, np.uint8).reshape(len(images), -1)
    if images.shape[1] != model.input_dim:
        raise ValueError(f"images have {images.shape[1]} pixels; the model expects {model.input_dim}")
    if len(sources) != len(images):
        raise ValueError(f"sources has {len(sources)} names for {len(images)} images")
    for src in sources:  # they become C string literals: plain words only
        if not isinstance(src, str) or not _SOURCE_NAME.match(src):
            raise ValueError(f"source name {src!r} must be 1-40 characters of letters, digits and _.+-")
    seed = model.default_seed if seed is None else int(seed)
    exp = expected_values(model, images, num_samples, seed)
    positions = exp[0]["positions"]
    if any(e["positions"] != positions for e in exp):
        raise AssertionError("stream positions differ between images")
    n, k, num_samples = len(images), int(model.num_classes), int(num_samples)
    ids = [int(op.index) for op in model.bayesian_ops]  # stream ids, in the order of the positions
    if not ids:
        raise ValueError("the model has no Bayesian op: nothing to sample")
    c = ['/* Generated by tflite_export/c_source.py: expected values from tflite_export.reference. */',
         '#include "test_vectors.h"', "",
         _c_array("uint8_t", "qbnn_tv_images_flat", images, per_line=28),
         f"const uint8_t (*const qbnn_tv_images)[{model.input_dim}] = "
         f"(const uint8_t (*)[{model.input_dim}])qbnn_tv_images_flat;",
         "const char *const qbnn_tv_sources[QBNN_TV_NUM_IMAGES] = {" + ", ".join(f'"{s}"' for s in sources) + "};",
         f"const uint32_t qbnn_tv_counts[QBNN_TV_NUM_IMAGES][{k}] = {{"]
    c += ["  {" + ", ".join(f"{int(v)}u" for v in e["sums"]) + "}," for e in exp]
    c += ["};", "const int qbnn_tv_prediction[QBNN_TV_NUM_IMAGES] = {" + ", ".join(str(e["prediction"]) for e in exp) + "};",
          "/* predictive entropy, expected entropy, mutual information (nats, float64 rounded to float) */",
          "const float qbnn_tv_entropy[QBNN_TV_NUM_IMAGES][3] = {"]
    c += ["  {" + ", ".join(f"{v:.9e}f" for v in e["entropy"]) + "}," for e in exp]
    c += ["};", "const uint32_t qbnn_tv_positions[QBNN_TV_NUM_STREAMS] = {" + ", ".join(f"{p}u" for p in positions) + "};",
          "const uint16_t qbnn_tv_stream_ids[QBNN_TV_NUM_STREAMS] = {" + ", ".join(str(i) for i in ids) + "};", ""]
    has_hybrid, has_pfp = "hybrid" in exp[0], "pfp" in exp[0]
    if has_hybrid:  # SPEC 11: hybrid (exact integers)
        c += [f"const uint32_t qbnn_tv_hybrid_counts[QBNN_TV_NUM_IMAGES][{k}] = {{"]
        c += ["  {" + ", ".join(f"{int(v)}u" for v in e["hybrid"]["sums"]) + "}," for e in exp]
        c += ["};", "const int qbnn_tv_hybrid_prediction[QBNN_TV_NUM_IMAGES] = {"
              + ", ".join(str(e["hybrid"]["prediction"]) for e in exp) + "};",
              "const float qbnn_tv_hybrid_entropy[QBNN_TV_NUM_IMAGES][3] = {"]
        c += ["  {" + ", ".join(f"{v:.9e}f" for v in e["hybrid"]["entropy"]) + "}," for e in exp]
        c += ["};", "const uint32_t qbnn_tv_hybrid_positions[QBNN_TV_NUM_STREAMS] = {"
              + ", ".join(f"{p}u" for p in exp[0]["hybrid"]["positions"]) + "};", ""]
    if has_pfp:  # pfp: float32 bits as hex literals
        c += [f"const float qbnn_tv_pfp_prob[QBNN_TV_NUM_IMAGES][{k}] = {{"]
        c += ["  {" + _hex_floats(e["pfp"]["mean_prob"]) + "}," for e in exp]
        c += ["};", "const float qbnn_tv_pfp_entropy[QBNN_TV_NUM_IMAGES][3] = {"]
        c += ["  {" + _hex_floats(e["pfp"]["entropy"]) + "}," for e in exp]
        c += ["};", "const int qbnn_tv_pfp_prediction[QBNN_TV_NUM_IMAGES] = {"
              + ", ".join(str(e["pfp"]["prediction"]) for e in exp) + "};",
              "const uint32_t qbnn_tv_pfp_positions[QBNN_TV_NUM_STREAMS] = {"
              + ", ".join(f"{p}u" for p in exp[0]["pfp"]["positions"]) + "};", ""]
    # SPEC 7.1: the jackknife correction of MC, HYBRID, PFP (0 where the mode does not run), float32 bits
    c += ["const float qbnn_tv_jk[QBNN_TV_NUM_IMAGES][3] = {"]
    c += ["  {" + _hex_floats([e["jk"], e["hybrid"]["jk"] if has_hybrid else 0.0, e["pfp"]["jk"] if has_pfp else 0.0])
          + "}," for e in exp]
    c += ["};", ""]
    c += [f"const int8_t qbnn_tv_mean_codes[QBNN_TV_NUM_IMAGES][{k}] = {{"]  # the mean-code pass
    c += ["  {" + ", ".join(str(int(v)) for v in e["mean_codes"]) + "}," for e in exp]
    c += ["};", ""]
    h = ["/* Generated by tflite_export/c_source.py. Do not edit. */",
         "#ifndef QBNN_TEST_VECTORS_H_", "#define QBNN_TEST_VECTORS_H_", "", "#include <stdint.h>", "",
         "#if defined(__GNUC__)", "#define QBNN_ALIGNED __attribute__((aligned(16)))", "#else",
         "#define QBNN_ALIGNED", "#endif", "",
         f"#define QBNN_TV_NUM_IMAGES {n}", f"#define QBNN_TV_NUM_SAMPLES {num_samples}",
         f"#define QBNN_TV_NUM_CLASSES {k}", f"#define QBNN_TV_NUM_STREAMS {len(ids)}",
         f"#define QBNN_TV_INPUT_DIM {int(model.input_dim)}", f"#define QBNN_TV_SEED {seed & 0xFFFFFFFF}u",
         f"#define QBNN_TV_TOLERANCE {TOLERANCE_NATS}f", "",
         f"extern const uint8_t (*const qbnn_tv_images)[{model.input_dim}];",
         "extern const char *const qbnn_tv_sources[QBNN_TV_NUM_IMAGES];",
         f"extern const uint32_t qbnn_tv_counts[QBNN_TV_NUM_IMAGES][{k}];",
         "extern const int qbnn_tv_prediction[QBNN_TV_NUM_IMAGES];",
         "extern const float qbnn_tv_entropy[QBNN_TV_NUM_IMAGES][3];",
         "extern const uint32_t qbnn_tv_positions[QBNN_TV_NUM_STREAMS];",
         "extern const uint16_t qbnn_tv_stream_ids[QBNN_TV_NUM_STREAMS];", ""]
    if has_hybrid:
        h += ["#define QBNN_TV_HAS_HYBRID 1",
              f"extern const uint32_t qbnn_tv_hybrid_counts[QBNN_TV_NUM_IMAGES][{k}];",
              "extern const int qbnn_tv_hybrid_prediction[QBNN_TV_NUM_IMAGES];",
              "extern const float qbnn_tv_hybrid_entropy[QBNN_TV_NUM_IMAGES][3];",
              "extern const uint32_t qbnn_tv_hybrid_positions[QBNN_TV_NUM_STREAMS];", ""]
    if has_pfp:
        h += ["#define QBNN_TV_HAS_PFP 1", f"#define QBNN_TV_PFP_TOLERANCE {PFP_TOLERANCE}f",
              f"extern const float qbnn_tv_pfp_prob[QBNN_TV_NUM_IMAGES][{k}];",
              "extern const float qbnn_tv_pfp_entropy[QBNN_TV_NUM_IMAGES][3];",
              "extern const int qbnn_tv_pfp_prediction[QBNN_TV_NUM_IMAGES];",
              "extern const uint32_t qbnn_tv_pfp_positions[QBNN_TV_NUM_STREAMS];", ""]
    h += ["extern const float qbnn_tv_jk[QBNN_TV_NUM_IMAGES][3];",
          f"extern const int8_t qbnn_tv_mean_codes[QBNN_TV_NUM_IMAGES][{k}];", ""]
    h += ["#endif", ""]
    os.makedirs(out_dir, exist_ok=True)
    c_path, h_path = os.path.join(out_dir, "test_vectors.c"), os.path.join(out_dir, "test_vectors.h")
    with open(c_path, "w") as f:
        f.write("\n".join(c))
    with open(h_path, "w") as f:
        f.write("\n".join(h))
    return exp


# Moved to tflite_export.artifacts (verifies SHA-256 hashes and cross-checks manifest.json against model.tflite).
from tflite_export.artifacts import load_exported  # noqa: E402,F401


def export_writer(images, sources, num_samples=10, subdir="c"):
    """Hook for `tflite_export.export_all(..., extra_writers=[export_writer(images, sources)])`: writes the C
    sources and test vectors for `images` (uint8 [N, H*W*C]) into `<export dir>/<subdir>` (the firmware's GEN_DIR)."""

    def write(imodel, manifest, out_dir):
        out = os.path.join(os.fspath(out_dir), subdir)
        write_model_sources(imodel, out)
        write_test_vectors(imodel, images, sources, out, num_samples=num_samples)

    return write


def generate(export_dir, out_dir, images, sources, num_samples=10, seed=None, sample_table="derived"):
    """Model + test-vector C sources for an export directory (or an IntegerModel); returns the reference results.
    CLI with real test images: `python -m tfqbnn.cli.c_sources EXPORT_DIR --out GEN_DIR`."""
    model = export_dir if isinstance(export_dir, reference.IntegerModel) else load_exported(export_dir)
    write_model_sources(model, out_dir, sample_table=sample_table)
    return write_test_vectors(model, images, sources, out_dir, num_samples=num_samples, seed=seed)
