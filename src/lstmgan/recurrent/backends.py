"""Which implementation runs a recurrence, over the same parameters.

* "compiled": the C++ kernel in `kernels/recurrences.cpp`, built once per binary with
  `torch.utils.cpp_extension` and cached in torch's extensions folder (CPU, float32/float64;
  how the cache stays safe under kills and concurrent builds: `kernel_cache.py`);
* "eager": the fused gates with a hand-written backward through time in Python (`fused.py`);
* "per-gate": the model's equations one gate at a time, differentiated by autograd;
* "auto": compiled where it applies and builds, eager otherwise (with one warning naming why).

Environment: `LSTMGAN_NO_KERNEL=1` acts as if the build failed (machines without a compiler,
tests of the fallback); `LSTMGAN_KERNEL_WAIT=S` bounds the wait for another process's build
(default 300 s, then the eager backend); `LSTMGAN_REQUIRE_KERNEL=1` makes a failed build an error even under
"auto" (CI, so the compiled kernel is always what the tests exercise).
"""

from __future__ import annotations

import os
import warnings
from importlib import resources
from pathlib import Path

import torch

from ..errors import UsageError
from . import kernel_cache, kernel_ops

IMPLEMENTATIONS = ("compiled", "eager", "per-gate")   # fastest first
COMPILED, EAGER, PER_GATE = IMPLEMENTATIONS          # the names the code compares with
BACKENDS = ("auto",) + IMPLEMENTATIONS
KERNEL_NAME = "lstmgan_recurrences"
COMPILED_DTYPES = (torch.float32, torch.float64)

_kernel: dict = {}            # "kernel" (a kernel_cache.Kernel) once loaded, or "error": why it cannot be
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


def kernel_recipe() -> kernel_cache.Recipe:
    return kernel_cache.Recipe(KERNEL_NAME, kernel_source(), tuple(compile_flags()),
                               ("-fopenmp",) if torch.backends.openmp.is_available() else ())


def kernel(verbose: bool = False) -> kernel_cache.Kernel:
    """Build (the first time) or reuse the C++ kernel, and load its operators into `torch.ops.lstmgan`.

    KernelUnavailable says why the kernel cannot be had here (the caller may fall back to eager)."""
    if "kernel" in _kernel:
        return _kernel["kernel"]
    if "error" in _kernel:
        raise KernelUnavailable(_kernel["error"])
    try:
        if os.environ.get("LSTMGAN_NO_KERNEL"):
            raise kernel_cache.BuildFailed("disabled by LSTMGAN_NO_KERNEL")
        found = kernel_cache.ensure(kernel_recipe(), verbose=verbose)
        # is_python_module=False at build time: the library registers operators (TORCH_LIBRARY), no Python module
        torch.ops.load_library(str(found.library))
    except (kernel_cache.BuildFailed, OSError, RuntimeError) as error:   # no compiler, a failed build or load
        _kernel["error"] = kernel_cache.failure_reason(str(error))
        raise KernelUnavailable(_kernel["error"]) from None
    kernel_ops.register()    # the operators' autograd formulas and shape functions, now that they exist
    _kernel["kernel"] = found
    return found


def build_kernel(verbose: bool = False) -> Path:
    """The loaded kernel's shared library (built or reused; see `kernel`)."""
    return kernel(verbose).library


def resolve(backend: str, x: torch.Tensor, has_kernel: bool = True) -> str:
    """The implementation that runs `backend` on input `x` ("compiled", "eager" or "per-gate") for a
    model that has a compiled kernel (`has_kernel`) or not."""
    if backend in (EAGER, PER_GATE):
        return backend
    if not has_kernel:
        if backend == COMPILED:
            raise UsageError("this model has no compiled backend; use --backend auto, eager or per-gate")
        return EAGER
    applies = x.device.type == "cpu" and x.dtype in COMPILED_DTYPES
    if backend == COMPILED:
        if not applies:
            raise UsageError(f"the compiled backend runs float32/float64 on the CPU, not {x.dtype} on {x.device}; "
                             "use --backend eager or auto")
        build_kernel()
        return COMPILED
    if not applies:
        return EAGER
    try:
        build_kernel()
    except KernelUnavailable as error:
        if os.environ.get("LSTMGAN_REQUIRE_KERNEL"):
            raise RuntimeError(f"LSTMGAN_REQUIRE_KERNEL is set but the compiled kernel is unavailable: {error}") \
                from None
        _warn_once(f"compiled LSTM/RNN kernel unavailable ({error}); using the eager backend")
        return EAGER
    return COMPILED


def _warn_once(message: str) -> None:
    global _warned
    if not _warned:
        _warned = True
        warnings.warn(message, RuntimeWarning, stacklevel=3)


def resolved_name(backend: str, device: torch.device, dtype: torch.dtype = torch.float32,
                  has_kernel: bool = True) -> str:
    """What `backend` becomes for a model on `device` (recorded in config.json, shown by the CLI)."""
    return resolve(backend, torch.empty(0, device=device, dtype=dtype), has_kernel)


def _needs_grad(*tensors) -> bool:
    return torch.is_grad_enabled() and any(t.requires_grad for t in tensors)


def compiled_lstm(x, W_x, W_h, b, segment: int | None = None):
    """h_T by the kernel: the training path (saving what BPTT needs) only when gradients are wanted.

    `segment` k < T: checkpointed BPTT, keeping (c, h) every k steps and recomputing the rest."""
    build_kernel()
    if not _needs_grad(x, W_x, W_h, b):
        return torch.ops.lstmgan.lstm_inference(x, W_x, W_h, b)
    if segment and segment < x.shape[1]:
        return torch.ops.lstmgan.lstm_forward_checkpointed(x, W_x, W_h, b, segment)[0]
    return torch.ops.lstmgan.lstm_forward(x, W_x, W_h, b)[0]


def compiled_rnn(x, W_x, W_h, b):
    build_kernel()
    if _needs_grad(x, W_x, W_h, b):
        return torch.ops.lstmgan.rnn_forward(x, W_x, W_h, b)[0]
    return torch.ops.lstmgan.rnn_inference(x, W_x, W_h, b)
