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
from . import kernel_ops

IMPLEMENTATIONS = ("compiled", "eager", "per-gate")   # fastest first
BACKENDS = ("auto",) + IMPLEMENTATIONS
KERNEL_NAME = "lstmgan_recurrences"
COMPILED_DTYPES = (torch.float32, torch.float64)

_kernel: dict = {}            # "library" (its path) once built and loaded, or "error": why it cannot be
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


def build_directory() -> Path:
    """Where the kernel is built: under $TORCH_EXTENSIONS_DIR or torch's default root, one folder per
    Python and torch version (a library built against another torch's headers must not be loaded)."""
    from torch.utils import cpp_extension

    root = Path(os.environ.get("TORCH_EXTENSIONS_DIR") or cpp_extension.get_default_build_root())
    version = torch.__version__.replace("+", "_")
    return root / f"{KERNEL_NAME}-py{sys.version_info.major}{sys.version_info.minor}-torch{version}"


def build_kernel(verbose: bool = False) -> Path:
    """Build (the first time) and load the C++ kernel's operators into `torch.ops.lstmgan`.

    Returns the shared library's path; KernelUnavailable says why the kernel cannot be had here.
    """
    if "library" in _kernel:
        return _kernel["library"]
    if "error" in _kernel:
        raise KernelUnavailable(_kernel["error"])
    try:
        if os.environ.get("LSTMGAN_NO_KERNEL"):
            raise RuntimeError("disabled by LSTMGAN_NO_KERNEL")
        from torch.utils import cpp_extension

        folder = build_directory()
        folder.mkdir(parents=True, exist_ok=True)
        if not any(folder.glob(f"{KERNEL_NAME}*.so")):
            print(f"lstmgan: building the compiled LSTM/RNN kernel (once; cached in {folder})", file=sys.stderr,
                  flush=True)
        # is_python_module=False: the library registers operators (TORCH_LIBRARY) and is loaded with
        # torch.ops.load_library; it is no Python module
        cpp_extension.load(KERNEL_NAME, [str(kernel_source())], extra_cflags=compile_flags(),
                           extra_ldflags=["-fopenmp"] if torch.backends.openmp.is_available() else [],
                           build_directory=str(folder), is_python_module=False, verbose=verbose)
    except Exception as error:   # no compiler, missing headers, a compile error: all mean "not here"
        _kernel["error"] = failure_reason(str(error))
        raise KernelUnavailable(_kernel["error"]) from None
    kernel_ops.register()    # the operators' autograd formulas and shape functions, now that they exist
    _kernel["library"] = max(folder.glob(f"{KERNEL_NAME}*.so"), key=lambda p: p.stat().st_mtime)
    return _kernel["library"]


def failure_reason(text: str) -> str:
    """One short line from a build failure: the compiler's first error if it printed one."""
    errors = [line.strip() for line in text.splitlines() if "error:" in line]
    reason = " ".join((errors[0] if errors else text).split())
    return reason[:300] + ("…" if len(reason) > 300 else "")


def resolve(backend: str, x: torch.Tensor, has_kernel: bool = True) -> str:
    """The implementation that runs `backend` on input `x` ("compiled", "eager" or "per-gate") for a
    model that has a compiled kernel (`has_kernel`) or not."""
    if backend in ("eager", "per-gate"):
        return backend
    if not has_kernel:
        if backend == "compiled":
            raise UsageError("this model has no compiled backend; use --backend auto, eager or per-gate")
        return "eager"
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
