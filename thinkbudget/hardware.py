"""Which precision to train and generate in, decided once from the hardware.

The CPU is this project's proving ground, and most of its speed there comes from bfloat16: on a CPU
with native bf16 instructions (AVX512-BF16 or AMX) autocast trains SmolLM2-135M about 2.4x faster than
fp32 and bf16 weights generate about 4x faster (``results/cpu-speed.md``). So:

- training (SFT, GRPO): ``bf16`` unset (TRL's default) means bf16 autocast with fp32 master weights
  wherever the device supports it, fp32 elsewhere (said once in the log); ``--bf16 false`` is fp32.
  On a machine without a GPU ``use_cpu`` is switched on, so ``--bf16 true`` on a CPU just works
  instead of stopping with transformers' "Your setup doesn't support bf16/gpu".
- generation (evaluation, GRPO rollouts): ``dtype: auto`` means bf16 weights on a GPU and on a CPU
  with native bf16, fp32 elsewhere.
"""

from __future__ import annotations

import functools
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)

# /proc/cpuinfo flags of native bf16 arithmetic (x86). Without them bf16 is emulated and slower than fp32.
BF16_CPU_FLAGS = ("avx512_bf16", "amx_bf16")


@functools.cache
def cpu_has_native_bf16() -> bool:
    """True when this CPU computes in bf16 natively (oneDNN's own check, else the cpuinfo flags)."""
    import torch

    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported()) and _cpuinfo_has_bf16()
    except (AttributeError, RuntimeError):
        return _cpuinfo_has_bf16()


def _cpuinfo_has_bf16() -> bool:
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:  # not Linux: Apple silicon and others have no x86 flags; be conservative
        return False
    return any(f in flags.split() for f in BF16_CPU_FLAGS)


def gpu_available() -> bool:
    import torch

    return torch.cuda.is_available() or (hasattr(torch, "xpu") and torch.xpu.is_available())


@functools.cache
def _say_once(message: str) -> None:
    logger.info(message)


def resolve_training_precision(bf16: bool | None, fp16: bool, use_cpu: bool) -> tuple[bool, bool]:
    """``(bf16, use_cpu)`` for a trainer config: ``bf16=None`` (unset) means bf16 where it is fast."""
    on_cpu = use_cpu or not gpu_available()
    if not on_cpu:
        return (not fp16 if bf16 is None else bf16), use_cpu
    if bf16 is None:
        bf16 = not fp16 and cpu_has_native_bf16()
        _say_once(
            "CPU training in bf16 autocast (fp32 master weights): the CPU has native bf16"
            if bf16
            else "CPU training in fp32: this CPU has no native bf16 (avx512_bf16/amx_bf16), where bf16 is slower"
        )
    elif bf16 and not cpu_has_native_bf16():
        _say_once("bf16 was asked for, but this CPU has no native bf16: it runs emulated, slower than fp32")
    return bf16, True


def resolve_generation_dtype(dtype: str, on_gpu: bool) -> str:
    """The weight dtype for generation: ``auto`` = bfloat16 on a GPU or a bf16-capable CPU, else float32."""
    if dtype != "auto":
        return dtype
    if on_gpu or cpu_has_native_bf16():
        return "bfloat16"
    _say_once("generation in float32: this CPU has no native bf16 (avx512_bf16/amx_bf16)")
    return "float32"


@functools.cache
def _libc() -> Any:
    """The C library (ctypes), or None where ctypes cannot find one: malloc_trim and mallopt live there."""
    import ctypes
    import ctypes.util

    name = ctypes.util.find_library("c")
    return ctypes.CDLL(name) if name else None


class ReleaseFreedMemory:
    """A ``TrainerCallback`` for CPU training: hand freed heap memory back to the system every step.

    On CPU every batch has its own sequence length, so the allocator sees tensors of ever new sizes;
    glibc keeps the freed ones in its heap (its mmap threshold rises after the first large frees) and
    the resident memory of a SmolLM2-135M SFT run grew by ~120 MB a step, to 15 GB after 80 steps, and
    slowed the steps down. ``malloc_trim(0)`` after each micro-batch and each step returns it (a few
    milliseconds each).
    """

    def __init__(self) -> None:
        self._trim = getattr(_libc(), "malloc_trim", None)

    @classmethod
    def callback(cls) -> Any:
        from transformers import TrainerCallback

        release = cls()

        class _Callback(TrainerCallback):
            # After each micro-batch's backward too: its activations are the step's largest allocation,
            # and freed heap left between micro-batches set the stage's peak (results/cpu-memory.md).
            def on_substep_end(self, args, state, control, **kwargs):
                release()

            def on_pre_optimizer_step(self, args, state, control, **kwargs):
                release()

            def on_step_end(self, args, state, control, **kwargs):
                release()

        return _Callback()

    def __call__(self) -> None:
        if self._trim is not None:
            self._trim(0)


LM_HEAD_LOSSES = ("auto", "fused", "full_logits", "chunked")


@dataclass
class OutputHeadArguments:
    """The output-head and CPU-allocator fields of the SFT and GRPO configs (placed before TRL's config
    class in the bases), written and checked once; the trainers read ``lm_head_loss`` through
    :func:`resolve_lm_head_loss`, and :func:`training_callbacks` applies ``cpu_mmap_threshold_mb``."""

    lm_head_loss: str = field(
        default="auto",
        metadata={
            "help": "How the trainer reads the output head for the loss and log-probabilities: fused (TRL's "
            "chunked head: never holds the full logits, recomputes them in the backward; for GPUs, where it "
            "has a Triton kernel), full_logits (one plain forward over the scored positions: holds rows x "
            "tokens x vocabulary logits), chunked (the scored positions' head in chunks of the vocabulary, a "
            "bf16 softmax kept for the backward: no full fp32 logits; thinkbudget/head.py), "
            "auto (chunked on a CPU, fused elsewhere). Choices: auto, fused, full_logits, chunked."
        },
    )

    cpu_mmap_threshold_mb: float = field(
        default=0.0,
        metadata={
            "help": "On the CPU, allocations of at least this many MB are mapped from the system and returned "
            "to it when freed (glibc mallopt M_MMAP_THRESHOLD): the heap cannot grow by fragmenting, for a "
            "lower peak resident memory at some speed (each new page faults once). 0 = glibc's default "
            "(a threshold that rises up to 32 MB)."
        },
    )

    def __post_init__(self) -> None:
        if not 0 <= self.cpu_mmap_threshold_mb <= 32:
            raise ValueError(
                f"cpu_mmap_threshold_mb: megabytes in [0, 32] (glibc's maximum; 0 = its default), "
                f"got {self.cpu_mmap_threshold_mb}"
            )
        if self.lm_head_loss not in LM_HEAD_LOSSES:
            raise ValueError(
                f"lm_head_loss: {self.lm_head_loss!r}; choose one of {', '.join(LM_HEAD_LOSSES)}"
            )
        super().__post_init__()


def resolve_lm_head_loss(choice: str, use_cpu: bool) -> str:
    """What ``lm_head_loss`` means on this machine: ``auto`` is ``chunked`` on a CPU (or with no GPU), else
    ``fused``; the other choices are themselves."""
    if choice == "auto":
        return "chunked" if use_cpu or not gpu_available() else "fused"
    return choice


def autocast_without_weight_cache(accelerator: Any) -> None:
    """Make the trainer's mixed precision (accelerate's autocast, set before the model is prepared) keep no
    cache of cast weights.

    Why: autocast caches the bf16 copy of every weight it casts until the forward pass leaves autocast, so
    at the end of a forward all of them (2 bytes a parameter) sit beside the fp32 weights, gradients and
    AdamW's moments. Each weight is used once per forward, so the cache saves no cast; with activation
    checkpointing the backward pass casts again in its recomputation anyway. The demo's SFT steps peaked
    ~0.2 GB lower without it, same losses and time (results/cpu-memory.md)."""
    from accelerate.utils import AutocastKwargs

    accelerator.autocast_handler = AutocastKwargs(cache_enabled=False)


M_MMAP_THRESHOLD = -3  # glibc's mallopt parameter


def map_large_allocations(threshold_mb: float) -> bool:
    """Make glibc map every allocation of at least ``threshold_mb`` MB from the system and unmap it when it
    is freed (``mallopt(M_MMAP_THRESHOLD)``, which also stops glibc from raising the threshold by itself).

    Why: by default glibc serves a large block from its heap once a block of that size has been freed
    (its threshold rises up to 32 MB), and a training step's tensors of ever new sizes then leave the heap
    fragmented, so the resident set grows above what the step holds. Mapped blocks cost a page fault per
    4 kB page on first touch: the demo's GRPO stage peaked ~0.6 GB lower at 1 MB and ran ~10 % slower
    (results/cpu-memory.md). Returns whether the setting took (False off glibc)."""
    mallopt = getattr(_libc(), "mallopt", None)
    if mallopt is None:
        logger.warning("cpu_mmap_threshold_mb: this C library has no mallopt; the setting is ignored")
        return False
    ok = bool(mallopt(M_MMAP_THRESHOLD, int(threshold_mb * 1024 * 1024)))
    if ok:
        logger.info("allocations of %s MB or more are mapped and returned when freed", threshold_mb)
    return ok


def training_callbacks(args: Any) -> list[Any]:
    """The callbacks every trainer of this project adds for its device (train/sft.py, train/rl.py), and on
    the CPU its allocator setting (``cpu_mmap_threshold_mb``)."""
    if not args.use_cpu:
        return []
    threshold = getattr(args, "cpu_mmap_threshold_mb", 0)
    if threshold:
        map_large_allocations(threshold)
    return [ReleaseFreedMemory.callback()]
