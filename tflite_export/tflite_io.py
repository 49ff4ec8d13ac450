"""TFLite flatbuffers of SPEC.md section 6 (built with TensorFlow's generated schema object API),
the QBNN_SAMPLE custom options, and a validating reader."""

from __future__ import annotations

import functools
import re
import struct
from pathlib import Path

import flatbuffers
import numpy as np

from tflite_export import storage
from tflite_export.intmath import sampler
from tflite_export.ir.softmax import SOFTMAX_SCALE, SOFTMAX_ZERO_POINT

CUSTOM_OP = "QBNN_SAMPLE"
OPTIONS_MAGIC = b"QBS1"
OPTIONS_VERSION = 1  # [O, I] filters (FULLY_CONNECTED); byte-identical to SPEC v1 files
OPTIONS_VERSION_ND = 2  # N-D filters: v1 header + filter format, rank, dims (SPEC.md section 6.1)
OPTIONS_VERSIONS = (OPTIONS_VERSION, OPTIONS_VERSION_ND)
OPTIONS_HEADER = struct.Struct("<4sBBBBHBBIII")  # 24 bytes, SPEC.md section 6
OPTIONS_ND = struct.Struct("<BBH")  # filter format, rank, reserved (0)
FILTER_FC, FILTER_OHWI, FILTER_1HWO = 0, 1, 2  # [O, I] FULLY_CONNECTED, CONV_2D, DEPTHWISE_CONV_2D
FILTER_FORMATS = {FILTER_FC: ("[O, I]", 2), FILTER_OHWI: ("OHWI", 4), FILTER_1HWO: ("1HWO", 4)}


def _schema():
    from tensorflow.lite.python import schema_py_generated as schema

    return schema


def pack_options(layer, default_seed, filter_format=FILTER_FC):
    """QBNN_SAMPLE custom options for `layer` (anything with weight_bits, sigma_bits, layout, index, shape,
    sigma_q): version 1 for an [O, I] filter, version 2 (with the filter format and dims) otherwise."""
    shape = tuple(int(v) for v in layer.shape)
    if filter_format not in FILTER_FORMATS or len(shape) != FILTER_FORMATS[filter_format][1]:
        raise ValueError(f"QBNN_SAMPLE filter format {filter_format!r} does not fit filter shape {shape}")
    if filter_format == FILTER_1HWO and shape[0] != 1:
        raise ValueError(f"QBNN_SAMPLE 1HWO filter shape {shape} must start with 1")
    nd = filter_format != FILTER_FC
    head = OPTIONS_HEADER.pack(OPTIONS_MAGIC, OPTIONS_VERSION_ND if nd else OPTIONS_VERSION, layer.weight_bits,
                               layer.sigma_bits, layer.layout, layer.index, sampler.EPS_FRAC_BITS, sampler.SHIFT,
                               shape[0], int(np.prod(shape[1:])), default_seed & 0xFFFFFFFF)
    if nd:
        head += OPTIONS_ND.pack(filter_format, len(shape), 0) + np.asarray(shape, "<u4").tobytes()
    return head + np.asarray(layer.sigma_q, "<i4").tobytes()


def unpack_options(buf, where="QBNN_SAMPLE options"):
    buf = bytes(buf)
    if len(buf) < OPTIONS_HEADER.size:
        raise ValueError(f"{where}: {len(buf)} bytes, expected at least {OPTIONS_HEADER.size}")
    magic, version, b, sb, layout, index, e, s, rows, cols, seed = OPTIONS_HEADER.unpack_from(buf)
    if magic != OPTIONS_MAGIC or version not in OPTIONS_VERSIONS:
        raise ValueError(f"{where}: bad magic/version {magic!r}/{version}, expected {OPTIONS_MAGIC!r}/"
                         f"{' or '.join(map(str, OPTIONS_VERSIONS))}")
    packed = layout == storage.LAYOUT_PACKED
    if not (2 <= b <= 8 and (1 if packed else 2) <= sb <= 8) or layout not in storage.LAYOUT_NAMES \
            or (packed and b + sb > storage.PAIR_MAX_BITS):
        raise ValueError(f"{where}: unsupported weight_bits={b} sigma_bits={sb} layout={layout}")
    if e != sampler.EPS_FRAC_BITS or s != sampler.SHIFT:
        raise ValueError(f"{where}: eps bits {e} / shift {s}, expected {sampler.EPS_FRAC_BITS} / {sampler.SHIFT}")
    if not (rows and cols and rows * cols < 2**31):  # the sampler's bound (qbnn_layer_check)
        raise ValueError(f"{where}: {rows} rows x {cols} cols = {rows * cols} weights, expected 1 to 2^31 - 1")
    offset, fmt, shape = OPTIONS_HEADER.size, FILTER_FC, (rows, cols)
    if version == OPTIONS_VERSION_ND:
        if len(buf) < offset + OPTIONS_ND.size:
            raise ValueError(f"{where}: {len(buf)} bytes, too short for a version 2 header")
        fmt, rank, reserved = OPTIONS_ND.unpack_from(buf, offset)
        if fmt not in FILTER_FORMATS or fmt == FILTER_FC or rank != FILTER_FORMATS[fmt][1] or reserved:
            raise ValueError(f"{where}: filter format {fmt} with rank {rank} (reserved {reserved}) is not one of "
                             "OHWI (1) / 1HWO (2) with rank 4")
        offset += OPTIONS_ND.size
        if len(buf) < offset + 4 * rank:
            raise ValueError(f"{where}: {len(buf)} bytes, too short for {rank} filter dims")
        shape = tuple(int(v) for v in np.frombuffer(buf, "<u4", count=rank, offset=offset))
        offset += 4 * rank
        if shape[0] != rows or int(np.prod(shape[1:], dtype=np.uint64)) != cols or 0 in shape \
                or (fmt == FILTER_1HWO and shape[0] != 1):
            raise ValueError(f"{where}: filter dims {shape} disagree with R={rows}, C={cols} or format "
                             f"{FILTER_FORMATS[fmt][0]}")
    if len(buf) != offset + 4 * 2**sb:
        raise ValueError(f"{where}: {len(buf)} bytes, expected {offset + 4 * 2**sb} for sigma_bits={sb}")
    sigma_q = np.frombuffer(buf, "<i4", offset=offset).astype(np.int32)
    return {"weight_bits": b, "sigma_bits": sb, "layout": layout, "index": index, "rows": rows, "cols": cols,
            "default_seed": seed, "sigma_q": sigma_q, "version": version, "filter_format": fmt,
            "filter_shape": shape}


FILTER_FORMAT_IDS = {"FC": FILTER_FC, "OHWI": FILTER_OHWI, "1HWO": FILTER_1HWO}


class _Graph:
    """The flatbuffer being written: tensors, operators, buffers; the ops' `lower_tflite(graph, x)` call the
    helpers below and return their output tensor. `split`: sampled filters become graph inputs instead of
    QBNN_SAMPLE outputs."""

    def __init__(self, schema, split=False, default_seed=0, builtins=None):
        self.s = schema
        # builtin operator names the graph may use (None: any); a model's graph takes its ops' tflite_builtins
        self.builtins = None if builtins is None else frozenset(builtins)
        self.split, self.default_seed = bool(split), int(default_seed)
        self.buffers = [schema.BufferT()]  # buffer 0: the empty sentinel (no data vector)
        self.tensors, self.ops, self.codes, self.inputs = [], [], [], []
        self.options_version = OPTIONS_VERSION  # highest QBNN_SAMPLE options version written
        self._one = None

    def buffer(self, data):
        b = self.s.BufferT()
        b.data = np.frombuffer(bytes(data), np.uint8)
        self.buffers.append(b)
        return len(self.buffers) - 1

    def tensor(self, name, shape, ttype, scale=None, zero_point=None, data=None, quantized_dimension=0):
        """`scale` / `zero_point`: a number (per tensor) or a sequence (per channel along `quantized_dimension`)."""
        t = self.s.TensorT()
        t.name = name
        t.shape = np.asarray(shape, np.int32)
        t.type = ttype
        t.buffer = 0 if data is None else self.buffer(data)
        if scale is not None:
            q = self.s.QuantizationParametersT()
            scales = np.asarray(scale, np.float32).reshape(-1)
            q.scale = [float(v) for v in scales]
            q.zeroPoint = [int(v) for v in np.broadcast_to(np.asarray(zero_point).reshape(-1), scales.shape)]
            q.quantizedDimension = int(quantized_dimension)
            t.quantization = q
        self.tensors.append(t)
        return len(self.tensors) - 1

    def int8(self, name, shape, quant):
        return self.tensor(name, shape, self.s.TensorType.INT8, quant[0], quant[1])

    def shape(self, t):
        return [int(v) for v in self.tensors[t].shape]

    def quant(self, t):
        return _quant(self.tensors[t])

    def one(self):
        """The shared float32 constant 1 (SoftPlus' ADD), made on first use."""
        if self._one is None:
            self._one = self.tensor("one", [1], self.s.TensorType.FLOAT32, data=np.float32([1.0]).tobytes())
        return self._one

    def sampled_filter(self, name, weights, scale, filter_format="FC"):
        """The int8 filter of one MC pass: a graph input (split) or the output of a QBNN_SAMPLE op reading the
        stored mu / sigma codes (`weights`: shape, bits, layout, index, sigma_q, stored_tensors())."""
        TT = self.s.TensorType
        w = self.tensor(f"{name}/sampled_weights", list(weights.shape), TT.INT8, scale, 0)
        if self.split:
            self.inputs.append(w)
            return w
        stored = []
        for short, arr in weights.stored_tensors():
            ttype = TT.INT8 if arr.dtype == np.int8 else TT.UINT8
            stored.append(self.tensor(f"{name}/{short}_codes", list(arr.shape), ttype,
                                      data=np.ascontiguousarray(arr).tobytes()))
        fmt = FILTER_FORMAT_IDS[filter_format]
        if fmt != FILTER_FC:
            self.options_version = max(self.options_version, OPTIONS_VERSION_ND)
        self.op(self.s.BuiltinOperator.CUSTOM, stored, [w], custom=CUSTOM_OP,
                custom_options=pack_options(weights, self.default_seed, fmt))
        return w

    def constant_filter(self, name, weights, bits=8):
        """A deterministic op's filter: constant INT8 or packed INT4 (`bits`) codes, per-tensor or per-channel."""
        TT = self.s.TensorType
        codes = np.asarray(weights.codes, np.int8)
        arr = storage._pack_nibbles(codes) if bits == 4 else codes
        ttype = TT.INT4 if bits == 4 else TT.INT8
        return self.tensor(f"{name}/filter_codes", list(weights.shape), ttype, weights.scales,
                           np.zeros(weights.scales.size, np.int64), data=np.ascontiguousarray(arr).tobytes(),
                           quantized_dimension=weights.channel_axis if weights.scales.size > 1 else 0)

    def opcode(self, builtin, custom=None):
        if self.builtins is not None and builtin != self.s.BuiltinOperator.CUSTOM:
            name = builtin_names(self.s).get(builtin, str(builtin))
            if name not in self.builtins:
                raise ValueError(f"the graph emits builtin {name}, which none of its ops declares in "
                                 "tflite_builtins (the TFLM resolver of tflite_export.tflm_ops would lack it)")
        key = (builtin, custom)
        for i, c in enumerate(self.codes):
            if (c.builtinCode, c.customCode) == key:
                return i
        c = self.s.OperatorCodeT()
        c.builtinCode = builtin
        c.deprecatedBuiltinCode = min(builtin, 127)
        c.customCode = custom
        c.version = 1
        self.codes.append(c)
        return len(self.codes) - 1

    def op(self, builtin, inputs, outputs, options_type=0, options=None, custom=None, custom_options=None):
        o = self.s.OperatorT()
        o.opcodeIndex = self.opcode(builtin, custom)
        o.inputs = np.asarray(inputs, np.int32)
        o.outputs = np.asarray(outputs, np.int32)
        o.builtinOptionsType = options_type
        o.builtinOptions = options
        if custom_options is not None:
            o.customOptions = np.frombuffer(custom_options, np.uint8)
            o.customOptionsFormat = self.s.CustomOptionsFormat.FLEXBUFFERS
        self.ops.append(o)


@functools.lru_cache(maxsize=None)
def builtin_names(schema):
    """{BuiltinOperator code: its schema name} (built once per schema module)."""
    return {v: k for k, v in vars(schema.BuiltinOperator).items() if not k.startswith("_")}


def build_tflite(imodel, split=False):
    """Serialized model.tflite (split=False, QBNN_SAMPLE ops) or model_split.tflite (filters as inputs): the
    input tensor, then each IR op's `lower_tflite` (SPEC.md section 6)."""
    return build_graph(imodel.ops, imodel.input_shape, imodel.quants()[0], split, imodel.default_seed)


def build_graph(ops, input_shape, input_quant, split=False, default_seed=0):
    """Serialized .tflite of IR ops run in order on one int8 input (per-example `input_shape`, (scale, zero
    point) `input_quant`); its output is the last op's. `build_tflite` is this for a whole model; the
    registry-driven tests build one op's graph with it."""
    s = _schema()
    g = _Graph(s, split, default_seed, {b for op in ops for b in type(op).tflite_builtins})
    x = g.int8("input", [1, *input_shape], input_quant)
    g.inputs.append(x)
    for op in ops:
        x = op.lower_tflite(g, x)
    sub = s.SubGraphT()
    sub.tensors, sub.operators, sub.name = g.tensors, g.ops, "main"
    sub.inputs = np.asarray(g.inputs, np.int32)
    sub.outputs = np.asarray([x], np.int32)
    model = s.ModelT()
    model.version = 3
    model.description = f"tfqbnn QBNN-INT v{g.options_version} ({'split' if split else 'sampling'})"
    model.operatorCodes, model.subgraphs, model.buffers = g.codes, [sub], g.buffers
    builder = flatbuffers.Builder(1 << 20)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output())


def read_tflite(data, where="model"):
    """Parse and sanity-check a .tflite (path or bytes) -> schema ModelT; ValueError on bad input."""
    s = _schema()
    if isinstance(data, (str, Path)):
        where = str(data)
        try:
            data = Path(data).read_bytes()
        except OSError as err:
            raise ValueError(f"{where}: cannot read ({err.strerror})") from None
    data = bytes(data)
    if len(data) < 8 or data[4:8] != b"TFL3":
        raise ValueError(f"{where}: not a TFLite flatbuffer (missing 'TFL3' identifier)")
    root = struct.unpack_from("<I", data, 0)[0]
    if root + 4 > len(data):
        raise ValueError(f"{where}: truncated TFLite flatbuffer (root offset {root} beyond {len(data)} bytes)")
    try:
        model = s.ModelT.InitFromObj(s.Model.GetRootAs(data, 0))
    except Exception as err:  # flatbuffers raises struct.error / IndexError / UnicodeDecodeError on garbage
        raise ValueError(f"{where}: corrupted or truncated TFLite flatbuffer ({type(err).__name__}: {err})") from None
    if not model.subgraphs or len(model.subgraphs) != 1:
        raise ValueError(f"{where}: expected exactly one subgraph")
    sub = model.subgraphs[0]
    n_t, n_b, n_c = len(sub.tensors or []), len(model.buffers or []), len(model.operatorCodes or [])
    for t in sub.tensors or []:
        if not 0 <= t.buffer < n_b:
            raise ValueError(f"{where}: tensor {t.name!r} points at buffer {t.buffer} of {n_b}")
    for i, op in enumerate(sub.operators or []):
        if not 0 <= op.opcodeIndex < n_c:
            raise ValueError(f"{where}: operator {i} has opcode index {op.opcodeIndex} of {n_c}")
        for ti in list(op.inputs if op.inputs is not None else []) + list(op.outputs if op.outputs is not None else []):
            if not -1 <= ti < n_t:
                raise ValueError(f"{where}: operator {i} uses tensor {ti} of {n_t}")
    return model


def read_qbnn_layers(data, where="model"):
    """The QBNN_SAMPLE layers of a model.tflite: options + unpacked mu / sigma codes, validated."""
    s = _schema()
    model = read_tflite(data, where)
    sub = model.subgraphs[0]
    layers = []
    for i, op in enumerate(sub.operators):
        code = model.operatorCodes[op.opcodeIndex]
        if code.builtinCode != s.BuiltinOperator.CUSTOM:
            continue
        name = code.customCode.decode() if isinstance(code.customCode, bytes) else code.customCode
        if name != CUSTOM_OP:
            raise ValueError(f"{where}: unknown custom op {name!r} (operator {i})")
        opts = unpack_options(bytes(op.customOptions if op.customOptions is not None else b""),
                              f"{where}: operator {i} {CUSTOM_OP} options")
        arrays = _stored_inputs(model, sub, op, opts, f"{where}: operator {i} {CUSTOM_OP}")
        mu, sig = storage.unpack(arrays, opts["layout"], opts["sigma_bits"], (opts["rows"], opts["cols"]),
                                 opts["weight_bits"])
        mu, sig = mu.reshape(opts["filter_shape"]), sig.reshape(opts["filter_shape"])  # N-D for version 2
        m = 2 ** (opts["weight_bits"] - 1) - 1
        if np.any(np.abs(mu) > m) or np.any(sig >= 2 ** opts["sigma_bits"]):
            raise ValueError(f"{where}: {CUSTOM_OP} operator {i} holds codes outside its bit widths")
        layers.append({**opts, "mu_codes": mu, "sigma_codes": sig, "tensors": arrays})
    return layers


def _quant(t):
    q = t.quantization
    if q is None or q.scale is None or len(q.scale) != 1:
        return None, None
    return np.float32(q.scale[0]), int(q.zeroPoint[0])


def read_graph(data, where="model"):
    """The layer structure of a model.tflite as build_tflite writes it: per QBNN_SAMPLE layer its name,
    weight / input / output / SoftPlus quantization and activation; the input and softmax quantization.
    ValueError when the graph is not that chain of operators."""
    s = _schema()
    OP = s.BuiltinOperator
    model = read_tflite(data, where)
    sub = model.subgraphs[0]
    kinds = {OP.CUSTOM: "CUSTOM", OP.FULLY_CONNECTED: "FULLY_CONNECTED", OP.DEQUANTIZE: "DEQUANTIZE", OP.EXP: "EXP",
             OP.ADD: "ADD", OP.LOG: "LOG", OP.QUANTIZE: "QUANTIZE", OP.SOFTMAX: "SOFTMAX"}
    ops = []
    for i, op in enumerate(sub.operators or []):
        kind = kinds.get(model.operatorCodes[op.opcodeIndex].builtinCode)
        if kind is None:
            raise ValueError(f"{where}: operator {i} is not part of a QBNN-INT graph")
        ops.append((kind, op))
    seq = "".join({"CUSTOM": "S", "FULLY_CONNECTED": "F", "DEQUANTIZE": "d", "EXP": "e", "ADD": "a", "LOG": "l",
                   "QUANTIZE": "q", "SOFTMAX": "X"}[k] for k, _ in ops)
    if not re.fullmatch(r"(SF(dealq)?)+X", seq):
        raise ValueError(f"{where}: operator sequence {seq!r} is not a QBNN-INT graph (QBNN_SAMPLE, FULLY_CONNECTED, "
                         "optional SoftPlus chain, ..., SOFTMAX)")
    try:
        return _walk_graph(s, sub, ops, where)
    except (IndexError, TypeError, AttributeError) as err:  # a chain of the right ops but wrong wiring / options
        raise ValueError(f"{where}: not a QBNN-INT graph ({type(err).__name__}: {err})") from None


def _walk_graph(s, sub, ops, where):
    """Per layer: CUSTOM -> FULLY_CONNECTED [-> DEQUANTIZE, EXP, ADD, LOG, QUANTIZE]; then SOFTMAX."""
    tensor = sub.tensors
    layers, i = [], 0
    x_in = None
    while ops[i][0] == "CUSTOM":
        w = tensor[ops[i][1].outputs[0]]
        fc = ops[i + 1][1]
        if list(fc.inputs)[1] != ops[i][1].outputs[0]:
            raise ValueError(f"{where}: FULLY_CONNECTED operator {i + 1} does not use the sampled weights of {i}")
        x = tensor[fc.inputs[0]]
        if x_in is not None and fc.inputs[0] != x_in:
            raise ValueError(f"{where}: FULLY_CONNECTED operator {i + 1} does not take the previous layer's output")
        fused = fc.builtinOptions.fusedActivationFunction if fc.builtinOptions is not None else None
        act = {s.ActivationFunctionType.NONE: "linear", s.ActivationFunctionType.RELU: "relu"}.get(fused)
        name = _name(w)
        entry = {"name": name[:-len("/sampled_weights")] if name.endswith("/sampled_weights") else name,
                 "weight": _quant(w), "input": _quant(x), "output": _quant(tensor[fc.outputs[0]]),
                 "softplus": (None, None), "activation": act}
        x_in, i = fc.outputs[0], i + 2
        if ops[i][0] == "DEQUANTIZE":
            if act != "linear":
                raise ValueError(f"{where}: layer {entry['name']!r} has a fused activation before SoftPlus")
            entry["activation"], entry["softplus"] = "softplus", _quant(tensor[ops[i + 4][1].outputs[0]])
            x_in, i = ops[i + 4][1].outputs[0], i + 5
        layers.append(entry)
    sm = ops[i][1]
    return {"input": _quant(tensor[ops[1][1].inputs[0]]), "layers": layers,
            "softmax_output": _quant(tensor[sm.outputs[0]])}


def _name(tensor):
    n = tensor.name
    return n.decode("utf-8", "replace") if isinstance(n, bytes) else str(n)


def _stored_inputs(model, sub, op, opts, where):
    """The op's constant code tensors as arrays, after checking their number, types, shapes and buffer sizes
    against the options (all arithmetic: nothing is allocated from a size the file claims)."""
    s = _schema()
    rows, cols = opts["rows"], opts["cols"]
    if rows < 1 or cols < 1:
        raise ValueError(f"{where}: options give rows={rows} cols={cols}; both must be >= 1")
    expect = storage.stored_shapes(opts["layout"], opts["sigma_bits"], (rows, cols), opts["weight_bits"])
    inputs = list(op.inputs if op.inputs is not None else [])
    outputs = list(op.outputs if op.outputs is not None else [])
    if len(inputs) != len(expect) or len(outputs) != 1 or outputs[0] < 0:
        raise ValueError(f"{where}: {len(inputs)} inputs / {len(outputs)} outputs, expected {len(expect)} / 1 "
                         f"for layout {storage.LAYOUT_NAMES[opts['layout']]}")
    out = sub.tensors[outputs[0]]
    out_shape = [] if out.shape is None else [int(v) for v in out.shape]
    dims = list(opts.get("filter_shape", (rows, cols)))
    if out_shape != dims:
        nd = f" (filter dims {dims})" if len(dims) != 2 else ""
        raise ValueError(f"{where}: options give rows={rows} cols={cols}{nd} but the output tensor {_name(out)!r} "
                         f"has shape {out_shape}")
    arrays = []
    for ti, (short, dtype, shape) in zip(inputs, expect):
        if ti < 0:
            raise ValueError(f"{where}: a stored code input is missing (tensor index {ti})")
        t = sub.tensors[ti]
        got = [] if t.shape is None else [int(v) for v in t.shape]
        ttype = s.TensorType.INT8 if dtype == np.int8 else s.TensorType.UINT8
        if got != list(shape) or t.type != ttype:
            raise ValueError(f"{where}: input {_name(t)!r} has shape {got} type {t.type}, expected {list(shape)} "
                             f"type {ttype} for rows={rows} cols={cols}")
        buf = model.buffers[t.buffer].data
        size = 0 if buf is None else len(buf)
        if size != int(np.prod(shape)):
            raise ValueError(f"{where}: input {_name(t)!r} holds {size} bytes, expected {int(np.prod(shape))} "
                             f"(constant data for shape {list(shape)})")
        arrays.append((short, np.asarray(buf, np.uint8).view(dtype).reshape(shape)))
    return arrays


def build_softplus_probe(in_scale, in_zero_point, out_scale, out_zero_point, n=256):
    """A graph int8[1, n] -> DEQUANTIZE, EXP, ADD(1), LOG, QUANTIZE -> int8 (to test the LUT)."""
    s = _schema()
    TT, BO, OP = s.TensorType, s.BuiltinOptions, s.BuiltinOperator
    g = _Graph(s)
    x = g.tensor("x", [1, n], TT.INT8, in_scale, in_zero_point)
    one = g.tensor("one", [1], TT.FLOAT32, data=np.float32([1.0]).tobytes())
    f, e, a, lg = (g.tensor(nm, [1, n], TT.FLOAT32) for nm in ("f", "e", "a", "lg"))
    y = g.tensor("y", [1, n], TT.INT8, out_scale, out_zero_point)
    g.op(OP.DEQUANTIZE, [x], [f])
    g.op(OP.EXP, [f], [e])
    g.op(OP.ADD, [e, one], [a], BO.AddOptions, s.AddOptionsT())
    g.op(OP.LOG, [a], [lg])
    g.op(OP.QUANTIZE, [lg], [y])
    return _finish(s, g, [x], [y])


def build_softmax_probe(in_scale, depth):
    """A graph int8[1, depth] -> SOFTMAX(beta 1) -> int8 (scale 1/256, zero point -128)."""
    s = _schema()
    g = _Graph(s)
    x = g.tensor("x", [1, depth], s.TensorType.INT8, in_scale, 0)
    y = g.tensor("y", [1, depth], s.TensorType.INT8, SOFTMAX_SCALE, SOFTMAX_ZERO_POINT)
    so = s.SoftmaxOptionsT()
    so.beta = 1.0
    g.op(s.BuiltinOperator.SOFTMAX, [x], [y], s.BuiltinOptions.SoftmaxOptions, so)
    return _finish(s, g, [x], [y])


def _finish(s, g, inputs, outputs):
    sub = s.SubGraphT()
    sub.tensors, sub.operators, sub.name = g.tensors, g.ops, "main"
    sub.inputs = np.asarray(inputs, np.int32)
    sub.outputs = np.asarray(outputs, np.int32)
    model = s.ModelT()
    model.version = 3
    model.operatorCodes, model.subgraphs, model.buffers = g.codes, [sub], g.buffers
    builder = flatbuffers.Builder(1 << 16)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output())
