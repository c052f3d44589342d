"""Which implementation runs a recurrence, over the same parameters.

* "compiled": the C++ kernel in `kernels/recurrences.cpp`, built once with
  `torch.utils.cpp_extension` and cached in torch's extensions folder (CPU, float32/float64);
* "eager": the fused gates with a hand-written backward through time in Python (`fused.py`);
* "per-gate": the model's equations one gate at a time, differentiated by autograd;
* "auto": compiled where it applies and builds, eager otherwise (with one warning naming why).

Environment: `LSTMGAN_NO_KERNEL=1` acts as if the build failed (machines without a compiler,
tests of the fallback); `LSTMGAN_REQUIRE_KERNEL=1` makes a failed build an error even under
"auto" (CI, so the compiled kernel is always what the tests exercise).
"""

from __future__ import annotations

import os
import sys
import warnings
from importlib import resources
from pathlib import Path

import torch

from ..errors import UsageError

BACKENDS = ("auto", "compiled", "eager", "per-gate")
KERNEL_NAME = "lstmgan_recurrences"
COMPILED_DTYPES = (torch.float32, torch.float64)

_kernel: dict = {}            # "module" once built, or "error": why it cannot be
_warned = False


class KernelUnavailable(UsageError):
    """The compiled kernel cannot be built or loaded here (no compiler, a failed build, disabled)."""


def check(backend: str) -> str:
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {', '.join(BACKENDS)} (got {backend!r})")
    return backend


def kernel_source() -> Path:
    return Path(str(resources.files("lstmgan.recurrent") / "kernels" / "recurrences.cpp"))


# Vectorized<float> compiles to the vector width of the capability macro defined; ATen itself
# runs at the capability torch reports, so the kernel is built for the same one.
CAPABILITY_FLAGS = {
    "AVX512": ["-DCPU_CAPABILITY=AVX512", "-DCPU_CAPABILITY_AVX512", "-mavx512f", "-mavx512bw", "-mavx512vl",
               "-mavx512dq", "-mfma"],
    "AVX2": ["-DCPU_CAPABILITY=AVX2", "-DCPU_CAPABILITY_AVX2", "-mavx2", "-mfma", "-mf16c"],
}


def compile_flags() -> list[str]:
    capability = os.environ.get("LSTMGAN_KERNEL_CAPABILITY") or torch.backends.cpu.get_cpu_capability()
    # -fopenmp: at::parallel_for is an OpenMP pragma in the headers; without it the loops run on one thread.
    # The library it links (libgomp.so.1) resolves to the one torch has already loaded.
    return ["-O3", *(["-fopenmp"] if torch.backends.openmp.is_available() else []),
            *CAPABILITY_FLAGS.get(capability, [])]


def build_kernel(verbose: bool = False):
    """Build (the first time) and load the C++ kernel; KernelUnavailable says why it cannot be."""
    if "module" in _kernel:
        return _kernel["module"]
    if "error" in _kernel:
        raise KernelUnavailable(_kernel["error"])
    try:
        if os.environ.get("LSTMGAN_NO_KERNEL"):
            raise RuntimeError("disabled by LSTMGAN_NO_KERNEL")
        from torch.utils import cpp_extension

        build_dir = Path(cpp_extension._get_build_directory(KERNEL_NAME, verbose=False))
        if not any(build_dir.glob(f"{KERNEL_NAME}*.so")):
            print(f"lstmgan: building the compiled LSTM/RNN kernel (once; cached in {build_dir})", file=sys.stderr,
                  flush=True)
        module = cpp_extension.load(KERNEL_NAME, [str(kernel_source())], extra_cflags=compile_flags(),
                                    extra_ldflags=["-fopenmp"] if torch.backends.openmp.is_available() else [],
                                    verbose=verbose)
    except Exception as error:   # no compiler, missing headers, a compile error: all mean "not here"
        _kernel["error"] = failure_reason(str(error))
        raise KernelUnavailable(_kernel["error"]) from None
    _kernel["module"] = module
    return module


def failure_reason(text: str) -> str:
    """One short line from a build failure: the compiler's first error if it printed one."""
    errors = [line.strip() for line in text.splitlines() if "error:" in line]
    reason = " ".join((errors[0] if errors else text).split())
    return reason[:300] + ("…" if len(reason) > 300 else "")


def kernel_error() -> str | None:
    """Why the kernel is unavailable (after a build was tried), else None."""
    try:
        build_kernel()
    except KernelUnavailable as error:
        return str(error)
    return None


def resolve(backend: str, x: torch.Tensor) -> str:
    """The implementation that runs `backend` on input `x` ("compiled", "eager" or "per-gate")."""
    if backend in ("eager", "per-gate"):
        return backend
    applies = x.device.type == "cpu" and x.dtype in COMPILED_DTYPES
    if backend == "compiled":
        if not applies:
            raise UsageError(f"the compiled backend runs float32/float64 on the CPU, not {x.dtype} on {x.device}; "
                             "use --backend eager or auto")
        build_kernel()
        return "compiled"
    if not applies:
        return "eager"
    try:
        build_kernel()
    except KernelUnavailable as error:
        if os.environ.get("LSTMGAN_REQUIRE_KERNEL"):
            raise RuntimeError(f"LSTMGAN_REQUIRE_KERNEL is set but the compiled kernel is unavailable: {error}") \
                from None
        _warn_once(f"compiled LSTM/RNN kernel unavailable ({error}); using the eager backend")
        return "eager"
    return "compiled"


def _warn_once(message: str) -> None:
    global _warned
    if not _warned:
        _warned = True
        warnings.warn(message, RuntimeWarning, stacklevel=3)


def resolved_name(backend: str, device: torch.device, dtype: torch.dtype = torch.float32) -> str:
    """What `backend` becomes for a model on `device` (recorded in config.json, shown by the CLI)."""
    return resolve(backend, torch.empty(0, device=device, dtype=dtype))


def _needs_grad(*tensors) -> bool:
    return torch.is_grad_enabled() and any(t.requires_grad for t in tensors)


def compiled_lstm(x, W_x, W_h, b):
    """h_T by the kernel: the training path (saving what BPTT needs) only when gradients are wanted."""
    if _needs_grad(x, W_x, W_h, b):
        return CompiledLSTM.apply(x, W_x, W_h, b)
    return build_kernel().lstm_inference(x.contiguous(), W_x.contiguous(), W_h.contiguous(), b.contiguous())


def compiled_rnn(x, W_x, W_h, b):
    if _needs_grad(x, W_x, W_h, b):
        return CompiledRNN.apply(x, W_x, W_h, b)
    return build_kernel().rnn_inference(x.contiguous(), W_x.contiguous(), W_h.contiguous(), b.contiguous())


class CompiledLSTM(torch.autograd.Function):
    """h_T of the LSTM by the C++ kernel; x [B, T, D], W_x [4H, D], W_h [4H, H], b [4H] (gates i, f, o, g)."""

    @staticmethod
    def forward(ctx, x, W_x, W_h, b):
        x = x.contiguous()
        h_T, gates, cells, hiddens = build_kernel().lstm_forward(x, W_x.contiguous(), W_h.contiguous(),
                                                                 b.contiguous())
        ctx.save_for_backward(x, W_x, W_h, gates, cells, hiddens)
        return h_T

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad_h):
        x, W_x, W_h, gates, cells, hiddens = ctx.saved_tensors
        grads = build_kernel().lstm_backward(grad_h.contiguous(), x, W_x.contiguous(), W_h.contiguous(), gates,
                                             cells, hiddens, ctx.needs_input_grad[0])
        grad_x, grad_W_x, grad_W_h, grad_b = grads
        return (grad_x if ctx.needs_input_grad[0] else None), grad_W_x, grad_W_h, grad_b


class CompiledRNN(torch.autograd.Function):
    """h_T of the vanilla RNN by the C++ kernel; x [B, T, D], W_x [H, D], W_h [H, H], b [H]."""

    @staticmethod
    def forward(ctx, x, W_x, W_h, b):
        x = x.contiguous()
        h_T, hiddens = build_kernel().rnn_forward(x, W_x.contiguous(), W_h.contiguous(), b.contiguous())
        ctx.save_for_backward(x, W_x, W_h, hiddens)
        return h_T

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad_h):
        x, W_x, W_h, hiddens = ctx.saved_tensors
        grad_x, grad_W_x, grad_W_h, grad_b = build_kernel().rnn_backward(
            grad_h.contiguous(), x, W_x.contiguous(), W_h.contiguous(), hiddens, ctx.needs_input_grad[0])
        return (grad_x if ctx.needs_input_grad[0] else None), grad_W_x, grad_W_h, grad_b
