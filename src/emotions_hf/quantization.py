"""Opt-in int8 inference on the CPU: dynamic quantization of the Linear layers.

`quantize_int8(model)` returns a quantized copy (the model passed in is left as it is): every `nn.Linear` gets int8
weights (per output channel) and int8 activations quantized on the fly per call, computed by the CPU's int8 kernels
(fbgemm / x86, which use AVX-512 VNNI where the CPU has it). Convolutions, LayerNorms, attention and everything else
stay in float32. The copy is for inference only (eval mode, no gradients). It sets torch's quantized engine (process-wide) to one
with int8 kernels where the current one has none, and leaves it set: packed weights run on the engine that packed
them.

Linears whose weight the model reads directly instead of calling the module (AV-CANet's `classifier`, whose weight is
split into the visual and the audio logit terms) stay in float: name them in `keep_float` (matched against the last
part of the module's name). torch's own eager API (`torch.ao.quantization.quantize_dynamic`) is deprecated in favour
of torchao; it is what this torch ships, so it is used here, with its deprecation warning silenced.
"""

from __future__ import annotations

import copy
import warnings
from collections.abc import Iterable

import torch
from torch import nn

KEEP_FLOAT = ("classifier",)
_INT8_ENGINES = ("x86", "fbgemm", "onednn")


class QuantizationUnavailableError(RuntimeError):
    """This torch build cannot run int8 dynamic quantization on this machine."""


def int8_engine() -> str:
    """The quantized engine `quantize_int8` uses: the current one if it has int8 Linear kernels, else the first
    supported one of x86 / fbgemm / onednn. Raises `QuantizationUnavailableError` where none is available."""
    supported = torch.backends.quantized.supported_engines
    if torch.backends.quantized.engine in _INT8_ENGINES:
        return torch.backends.quantized.engine
    for engine in _INT8_ENGINES:
        if engine in supported:
            return engine
    raise QuantizationUnavailableError(
        f"int8 dynamic quantization needs one of the quantized engines {_INT8_ENGINES}; this torch "
        f"({torch.__version__}) supports {supported}. Run the model in float32 instead.")


def _quantize_dynamic():
    quantization = getattr(torch.ao, "quantization", None)
    function = getattr(quantization, "quantize_dynamic", None)
    if function is None:
        raise QuantizationUnavailableError(
            f"torch {torch.__version__} has no torch.ao.quantization.quantize_dynamic; int8 needs a torch that has "
            "it (torchao's quantize_ is its successor)")
    return function


def quantize_int8(model: nn.Module, keep_float: Iterable[str] = KEEP_FLOAT) -> nn.Module:
    """A copy of `model` in eval mode with its `nn.Linear` layers dynamically quantized to int8 (CPU only).

    `keep_float`: last name parts of Linears to leave in float32 (default: `classifier`). Raises
    `QuantizationUnavailableError` where this torch has no int8 backend, and `ValueError` for a model on another
    device than the CPU.
    """
    devices = {p.device.type for p in model.parameters()}
    if devices - {"cpu"}:
        raise ValueError(f"int8 dynamic quantization runs on the CPU; the model is on {sorted(devices)}")
    engine = int8_engine()
    quantize_dynamic = _quantize_dynamic()
    keep = set(keep_float)
    names = {name for name, module in model.named_modules()
             if type(module) is nn.Linear and name.rsplit(".", 1)[-1] not in keep}
    quantized = copy.deepcopy(model).eval()
    if not names:
        return quantized
    torch.backends.quantized.engine = engine  # packed weights run on the engine that packed them: it stays set
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=DeprecationWarning)
        warnings.filterwarnings("ignore", message=".*quantize_per_(tensor|channel).*")
        qconfig = torch.ao.quantization.per_channel_dynamic_qconfig
        quantized = quantize_dynamic(quantized, qconfig_spec=dict.fromkeys(names, qconfig), dtype=torch.qint8,
                                     inplace=True)
    for parameter in quantized.parameters():
        parameter.requires_grad_(False)
    return quantized


def is_quantized(model: nn.Module) -> bool:
    """Whether `model` holds dynamically quantized Linears (as `quantize_int8` makes)."""
    return any(type(module).__module__.startswith("torch.ao.nn.quantized") for module in model.modules())


__all__ = ["KEEP_FLOAT", "QuantizationUnavailableError", "int8_engine", "is_quantized", "quantize_int8"]
