"""`QuantizationConfig`: which tensors of a variational layer are quantized, and how.

Strategies (arXiv 2512.10602):

* ``none`` -- full precision (alias ``"fp32"``).
* ``vpq`` -- variational-parameter quantization: mu on a uniform grid, sigma on a
  logarithmic grid, then ``w = mu_q + sigma_q * eps``.
* ``spq`` -- sampled-parameter quantization: ``w_q = Q(mu + sigma * eps)``.
* ``jq`` -- joint: ``w_q = Q(Q(mu) + Q_log(sigma) * eps)``.

String shorthands ``"fp32"``, ``"vpq4"``, ``"spq7"``, ``"jq4"``, ... are accepted
wherever a config is (`QuantizationConfig.get`).
"""

from __future__ import annotations

import re

from tfqbnn.quantizers import LOG_MIN_BITS, LogQuantizer, UniformQuantizer, check_bits

STRATEGIES = ("none", "vpq", "spq", "jq")
SIGMA_QUANTIZERS = ("log", "uniform")
_SHORTHAND = re.compile(r"^(vpq|spq|jq)(\d+)$")


class QuantizationConfig:
    """Quantization settings of a `DenseVariational` layer.

    Args:
        strategy: one of ``"none"`` (or ``"fp32"``), ``"vpq"``, ``"spq"``, ``"jq"``.
        bits: default bit width for every quantized tensor of the strategy.
        mu_bits: override of ``bits`` for mu.
        sigma_bits: override of ``bits`` for sigma (1..16 on the log grid, 2..16 on the uniform one).
        sample_bits: override of ``bits`` for the sampled weights.
        sigma_quantizer: ``"log"`` (the paper's choice) or ``"uniform"``
            (sigma quantized on the same uniform grid as mu, as in prior work;
            for the ablation).
        clip: range ``[-clip, clip]`` of the uniform grids for mu and samples.
        sigma_range: ``(min, max)`` of the log grid for sigma (the uniform sigma
            grid uses ``[-max, max]``).
    """

    def __init__(
        self,
        strategy,
        bits=None,
        mu_bits=None,
        sigma_bits=None,
        sample_bits=None,
        sigma_quantizer="log",
        clip=1.0,
        sigma_range=(2.0**-10, 1.0),
    ):
        if strategy == "fp32":
            strategy = "none"
        if strategy not in STRATEGIES:
            raise ValueError(
                f"Unknown quantization strategy {strategy!r}; expected one of {list(STRATEGIES)} "
                "or a shorthand like 'fp32', 'vpq4', 'spq8', 'jq4'"
            )
        if sigma_quantizer not in SIGMA_QUANTIZERS:
            raise ValueError(
                f"`sigma_quantizer` must be one of {list(SIGMA_QUANTIZERS)}; received {sigma_quantizer!r}"
            )
        self.strategy = strategy
        self.sigma_quantizer_kind = sigma_quantizer
        self.clip = float(clip)
        self.sigma_range = (float(sigma_range[0]), float(sigma_range[1]))
        uses_vp = strategy in ("vpq", "jq")
        uses_sp = strategy in ("spq", "jq")
        if strategy == "none":
            for name, v in (("bits", bits), ("mu_bits", mu_bits), ("sigma_bits", sigma_bits),
                            ("sample_bits", sample_bits)):
                if v is not None:
                    raise ValueError(f"strategy 'none' takes no bit widths; received {name}={v!r}")
        if bits is not None:
            check_bits(bits)

        def pick(name, value, used, low=None):
            if not used:
                if value is not None:
                    raise ValueError(f"strategy {strategy!r} does not use `{name}`; received {name}={value!r}")
                return None
            value = bits if value is None else value
            if value is None:
                raise ValueError(f"strategy {strategy!r} needs `bits` or `{name}`")
            return check_bits(value, name) if low is None else check_bits(value, name, low)

        self.mu_bits = pick("mu_bits", mu_bits, uses_vp)
        # a log grid has two levels at 1 bit; the uniform sigma grid (symmetric, narrow range) needs 2
        self.sigma_bits = pick("sigma_bits", sigma_bits, uses_vp,
                               LOG_MIN_BITS if sigma_quantizer == "log" else None)
        self.sample_bits = pick("sample_bits", sample_bits, uses_sp)
        # Build once to validate clip / sigma_range.
        self.mu_quantizer, self.sigma_quantizer, self.sample_quantizer = self._make_quantizers()

    def _make_quantizers(self):
        mu_q = UniformQuantizer(self.mu_bits, self.clip) if self.mu_bits else None
        sigma_q = None
        if self.sigma_bits:
            if self.sigma_quantizer_kind == "log":
                sigma_q = LogQuantizer(self.sigma_bits, *self.sigma_range)
            else:
                sigma_q = UniformQuantizer(self.sigma_bits, self.sigma_range[1])
        sample_q = UniformQuantizer(self.sample_bits, self.clip) if self.sample_bits else None
        return mu_q, sigma_q, sample_q

    @property
    def name(self):
        """Short name, e.g. ``"fp32"``, ``"jq4"``, ``"vpq4-uniform"``."""
        if self.strategy == "none":
            return "fp32"
        widths = {b for b in (self.mu_bits, self.sigma_bits, self.sample_bits) if b}
        if len(widths) == 1:
            name = f"{self.strategy}{widths.pop()}"
        else:
            name = f"{self.strategy}-mu{self.mu_bits}-s{self.sigma_bits}-w{self.sample_bits}"
        if self.sigma_quantizer_kind != "log" and self.sigma_bits:
            name += "-uniform"
        return name

    @property
    def weight_bits(self):
        """Bits of the weights actually used by the matmul (None for float)."""
        return self.sample_bits or self.mu_bits

    def get_config(self):
        return {
            "strategy": self.strategy,
            "mu_bits": self.mu_bits,
            "sigma_bits": self.sigma_bits,
            "sample_bits": self.sample_bits,
            "sigma_quantizer": self.sigma_quantizer_kind,
            "clip": self.clip,
            "sigma_range": list(self.sigma_range),
        }

    @classmethod
    def from_config(cls, config):
        return cls(**config)

    @classmethod
    def get(cls, value):
        """Accept None, a shorthand string, a config dict or a QuantizationConfig."""
        if value is None:
            return cls("none")
        if isinstance(value, cls):
            return value
        if isinstance(value, dict):
            return cls.from_config(value)
        if isinstance(value, str):
            s = value.strip().lower()
            if s in ("fp32", "none"):
                return cls("none")
            m = _SHORTHAND.match(s)
            if m:
                return cls(m.group(1), bits=int(m.group(2)))
            raise ValueError(
                f"Unknown quantization {value!r}; expected 'fp32'/'none' or <strategy><bits> with strategy "
                f"in ['vpq', 'spq', 'jq'] (e.g. 'jq4'), a dict or a QuantizationConfig"
            )
        raise ValueError(f"`quantization` must be None, a string, a dict or a QuantizationConfig; received {value!r}")

    def __eq__(self, other):
        return isinstance(other, QuantizationConfig) and self.get_config() == other.get_config()

    def __repr__(self):
        return f"QuantizationConfig({self.name!r})"
