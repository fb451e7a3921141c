"""Self-supervised continuation of a text encoder on unlabeled lines (``edgessl pretrain``).

``pretrain_text(cfg)`` trains ``cfg.start`` (default all-MiniLM-L6-v2) with a registered
method (``TEXT_METHODS``: SimCSE, masked LM) on a ``.txt`` file or folder of them, with
AdamW, a linear warm-up and a cosine decay counted in steps, and writes an encoder folder
that ``load_encoder`` and ``finetune_text`` take as a start: ``config.json``,
``model.safetensors`` (the base model's tensors under their Hugging Face names, plus the
MLM head's for ``mlm``), the start's tokenizer files, ``card.json`` (format
``edgessl-text-encoder/1``: the start, the run, the data) and ``history.json`` (loss per
step).

Guarantees, as for image pretraining (``edgessl.ssl.pretrain``):

- the folder is written atomically every ``checkpoint_every`` steps (a crash loses at most
  that many steps) with ``train_state.pt`` (optimiser, schedule, RNG, history), which the
  last checkpoint of a finished run drops;
- ``resume=True`` continues from the last checkpoint, with the same batches and dropout
  masks as an uninterrupted run, and refuses a run whose settings differ;
- SIGINT/SIGTERM write a checkpoint at the current step and raise ``Interrupted``; a second
  signal stops at once and leaves the previous checkpoint as it was;
- the loss of every step is kept and logged every ``log_every`` steps; a ``NOT LEARNING
  WARNING`` says what to change when, past half the run, the loss is still within 3% of the
  method's chance level (log(batch) for SimCSE, log(vocabulary) for MLM); a loss that is
  not finite stops the run and keeps the last good checkpoint.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import logging
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated

import torch

from edgessl import __version__
from edgessl.config import MAX_BATCH, MAX_EPOCHS, MAX_LR, MAX_SEED, Range, check_fields
from edgessl.errors import CheckpointError, ConfigError, DataError, Interrupted, printable
from edgessl.registry import Registry
from edgessl.ssl.monitor import CHANCE_MARGIN, LEARNING_CHECK_FROM
from edgessl.text.encoders import DEFAULT_TEXT_START, load_encoder
from edgessl.text.mlm import MaskedLM
from edgessl.text.runtime import MAX_SEQUENCE, encode_texts
from edgessl.text.simcse import SimCSE
from edgessl.text.ssl_base import TextSSLMethod, build_method_options
from edgessl.text.unlabeled import UnlabeledText, read_unlabeled_text

log = logging.getLogger("edgessl")

TEXT_METHODS: Registry[type[TextSSLMethod]] = Registry("text SSL method")
TEXT_METHODS.register(SimCSE.name, SimCSE)
TEXT_METHODS.register(MaskedLM.name, MaskedLM)

CARD_FORMAT = "edgessl-text-encoder/1"
CARD_FILE, HISTORY_FILE, STATE_FILE = "card.json", "history.json", "train_state.pt"
WEIGHTS_FILE, CONFIG_FILE = "model.safetensors", "config.json"
# Copied from the start as they are, so the output tokenises exactly as the start did.
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json",
                   "vocab.txt", "vocab.json", "merges.txt", "sentence_bert_config.json")
# Tokens per line without --max-length (at most the encoder's limit): a sentence or two.
DEFAULT_MAX_LENGTH = 64
# Settings that change what is learned: a resumed run must have the same ones.
SAME_RUN = ("method", "start", "batch_size", "lr", "steps", "warmup_steps", "weight_decay",
            "grad_clip", "max_length", "seed", "method_options")


@dataclass(frozen=True)
class TextPretrainConfig:
    """Settings of one text pretraining run (flags of ``edgessl pretrain TEXT``).

    Attributes:
        data: a ``.txt`` file or a folder of them, one example per line.
        method: a ``TEXT_METHODS`` name: "simcse" or "mlm".
        start: a text start (``all-minilm-l6-v2``) or a local Hugging Face folder
            (``--backbone`` on the command line).
        epochs, steps: length of the run, one of them (None and None = 1 epoch); an epoch
            is ``lines // batch_size`` steps (an incomplete last batch is dropped).
        batch_size: lines per step (at most the number of lines).
        lr: peak AdamW learning rate; None = the method's (SimCSE 3e-5, MLM 5e-5).
        warmup_steps: linear warm-up before the cosine decay; None = 10% of the steps.
        weight_decay: AdamW's, not on biases and norms. grad_clip: gradient-norm clip
            (0 = off).
        max_length: tokens per line, special tokens included (longer lines are cut); None =
            ``DEFAULT_MAX_LENGTH`` or the encoder's own limit, whichever is smaller. A value
            over that limit is a ConfigError (the encoder was never trained on, or cannot
            hold, longer inputs).
        seed: seeds the batch order, dropout, masking and any fresh head.
        method_options: the method's own settings (``--opt``), e.g. ``temperature``.
        checkpoint_every: steps between checkpoints (the last step always writes one).
        log_every: steps between loss lines in the log.
        device: "auto", "cpu", "cuda" or "cuda:N".
        out: the encoder folder; None = ``models/<method>-<start folder name>``.
        force: replace an existing ``out``. resume: continue the unfinished run in ``out``.
    """

    FIELD_LABEL = "--"

    data: str
    method: str = "simcse"
    start: str = DEFAULT_TEXT_START
    epochs: Annotated[int | None, Range(ge=1, le=MAX_EPOCHS)] = None
    steps: Annotated[int | None, Range(ge=1, le=10**9)] = None
    batch_size: Annotated[int, Range(ge=2, le=MAX_BATCH)] = 32
    lr: Annotated[float | None, Range(gt=0, le=MAX_LR)] = None
    warmup_steps: Annotated[int | None, Range(ge=0, le=10**9)] = None
    weight_decay: Annotated[float, Range(ge=0, le=1)] = 0.01
    grad_clip: Annotated[float, Range(ge=0, note="0 = off")] = 1.0
    max_length: Annotated[int | None, Range(ge=4, le=MAX_SEQUENCE, note="tokens")] = None
    seed: Annotated[int, Range(ge=0, le=MAX_SEED)] = 0
    method_options: dict = field(default_factory=dict)
    checkpoint_every: Annotated[int, Range(ge=1, le=10**9, note="steps")] = 50
    log_every: Annotated[int, Range(ge=1, le=10**9, note="steps")] = 10
    device: str = "auto"
    out: str | None = None
    force: bool = False
    resume: bool = False

    def __post_init__(self) -> None:
        check_fields(self)
        TEXT_METHODS.get(self.method)  # an unknown method is a ConfigError with a suggestion
        if self.epochs is not None and self.steps is not None:
            raise ConfigError("--epochs and --steps both set the length of the run; pass one")
        if self.resume and self.force:
            raise ConfigError("--resume continues the run in --out and --force replaces it; "
                              "pass only one of them")


@dataclass(frozen=True)
class TextPretrainResult:
    """Where the encoder went and how training went.

    Attributes:
        path: the encoder folder. losses: the loss of every step (resumed runs: all steps).
        steps: steps done. seconds: this call's training time.
        fresh_parameters: head parameters the method created (MLM on a ``BertModel``).
        not_learning: why the run looked unable to learn, or None.
        card: the saved card.
    """

    path: Path
    losses: tuple[float, ...]
    steps: int
    seconds: float
    fresh_parameters: tuple[str, ...]
    not_learning: str | None
    card: dict


@dataclass
class _Run:
    """What a run carries from step to step (``state`` is saved for resume)."""

    method: TextSSLMethod
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler
    step: int = 0
    history: list = field(default_factory=list)  # {"step", "loss", "lr"} per step
    not_learning: str | None = None

    def state(self) -> dict:
        from edgessl.training import rng_state

        return {"optimizer": self.optimizer.state_dict(),
                "scheduler": self.scheduler.state_dict(), "step": self.step,
                "history": list(self.history), "not_learning": self.not_learning,
                "rng": rng_state()}

    def restore(self, state: dict) -> None:
        from edgessl.training import set_rng_state

        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.step, self.history = int(state["step"]), list(state["history"])
        self.not_learning = state["not_learning"]
        set_rng_state(state["rng"])


@dataclass(frozen=True)
class _Plan:
    """What the config leaves to defaults, decided once."""

    batch_size: int
    steps_per_epoch: int
    steps: int
    lr: float
    warmup_steps: int
    max_length: int

    def settings(self, cfg: TextPretrainConfig, options) -> dict:
        """The run's settings as the card records them (``SAME_RUN`` compares these)."""
        return {"method": cfg.method, "start": cfg.start, "batch_size": self.batch_size,
                "lr": self.lr, "steps": self.steps, "warmup_steps": self.warmup_steps,
                "steps_per_epoch": self.steps_per_epoch, "weight_decay": cfg.weight_decay,
                "grad_clip": cfg.grad_clip, "max_length": self.max_length, "seed": cfg.seed,
                "method_options": dataclasses.asdict(options)}


def sequence_length(cfg: TextPretrainConfig, encoder_limit: int) -> int:
    """Tokens per line: ``cfg.max_length``, or the default capped at ``encoder_limit``.

    Raises:
        ConfigError: ``cfg.max_length`` is over ``encoder_limit``.
    """
    if cfg.max_length is None:
        return min(DEFAULT_MAX_LENGTH, encoder_limit)
    if cfg.max_length > encoder_limit:
        raise ConfigError(f"--max-length {cfg.max_length} is over the {encoder_limit} tokens "
                          f"that encoder '{printable(cfg.start)}' reads; pass --max-length "
                          f"{encoder_limit} or less (longer lines are cut)")
    return cfg.max_length


def _plan(cfg: TextPretrainConfig, lines: int, method_cls, length: int) -> _Plan:
    batch = min(cfg.batch_size, lines)
    if batch < method_cls.min_batch:
        raise DataError(f"'{printable(cfg.data)}' holds {lines} line; {cfg.method} needs at "
                        f"least {method_cls.min_batch} per batch: add text")
    per_epoch = lines // batch
    steps = cfg.steps if cfg.steps is not None else (cfg.epochs or 1) * per_epoch
    warmup = cfg.warmup_steps if cfg.warmup_steps is not None else steps // 10
    return _Plan(batch, per_epoch, steps, cfg.lr if cfg.lr is not None else method_cls.lr,
                 min(warmup, steps), length)


def batch_lines(lines: tuple[str, ...], plan: _Plan, seed: int, step: int) -> list[str]:
    """The lines of step ``step`` (0-based): a seeded shuffle per epoch, so a resumed run sees
    the same batches as an uninterrupted one."""
    epoch, index = divmod(step, plan.steps_per_epoch)
    order = torch.randperm(len(lines), generator=torch.Generator().manual_seed(
        seed * 100_003 + epoch)).tolist()
    return [lines[i] for i in order[index * plan.batch_size:(index + 1) * plan.batch_size]]


def chance_check(history: list[dict], total: int, chance: float | None) -> str | None:
    """Why the run looks unable to learn, or None; judged from half the steps on, on the mean
    loss of the last 10% of steps (at least 1, at most 50)."""
    if chance is None or len(history) < max(2, math.ceil(LEARNING_CHECK_FROM * total)):
        return None
    window = max(1, min(50, total // 10))
    recent = sum(r["loss"] for r in history[-window:]) / len(history[-window:])
    if recent < (1 - CHANCE_MARGIN) * chance:
        return None
    return (f"the loss {recent:.3f} (mean of the last {window} steps) is still at chance level "
            f"({chance:.3f}) after {len(history)} of {total} steps")


def _output_folder(cfg: TextPretrainConfig, start_folder: Path) -> Path:
    from edgessl.errors import OutputExistsError
    from edgessl.io import check_outputs

    out = Path(cfg.out or Path("models") / f"{cfg.method}-{Path(cfg.start).name}").expanduser()
    if cfg.resume:
        if not (out / STATE_FILE).is_file():
            why = "does not exist" if not out.exists() else f"has no {STATE_FILE} (finished)"
            raise CheckpointError(f"nothing to resume: '{printable(out)}' {why}; start "
                                  "without --resume")
    elif out.exists() and not cfg.force:
        raise OutputExistsError(f"'{printable(out)}' exists; pass --force to overwrite it, "
                                "--resume to continue it, or choose --out")
    check_outputs({"--out": out}, {"DATA": cfg.data, "--backbone": start_folder}, force=True)
    return out


def _read_card(out: Path) -> dict:
    import json

    try:
        card = json.loads((out / CARD_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise CheckpointError(f"'{printable(out / CARD_FILE)}' cannot be read ({exc}); the "
                              "checkpoint is damaged: start again with --force") from None
    if not isinstance(card, dict) or card.get("format") != CARD_FORMAT:
        raise CheckpointError(f"'{printable(out)}' is not a text encoder saved by edgessl "
                              "pretrain; choose another --out")
    return card


def _require_same_run(out: Path, saved: dict, now: dict) -> None:
    for key in SAME_RUN:
        if saved.get(key) != now[key]:
            raise ConfigError(f"--resume: '{printable(out)}' was trained with {key} = "
                              f"{saved.get(key)!r}, this run has {now[key]!r}; pass the same "
                              "settings, or start again with --force")


def _source_files(folder: Path, tokenizer) -> dict[str, bytes]:
    """The start's tokenizer files, read once (a tokenizer.json is made when it has none)."""
    files = {name: (folder / name).read_bytes() for name in TOKENIZER_FILES
             if (folder / name).is_file()}
    if "tokenizer.json" not in files:
        tokenizer.no_padding()
        tokenizer.no_truncation()
        files["tokenizer.json"] = tokenizer.to_str().encode()
    return files


def save_encoder_folder(run: _Run, card: dict, files: dict[str, bytes], out: Path,
                        complete: bool) -> None:
    """Write the encoder folder atomically (``train_state.pt`` unless ``complete``)."""
    from safetensors.torch import save_file

    from edgessl.io import atomic_dir, write_json

    model = run.method.encoder.model
    state = {k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}
    state.update({k: v.detach().contiguous().cpu() for k, v in run.method.head_state().items()})
    with atomic_dir(out, force=True) as tmp:
        save_file(state, str(tmp / WEIGHTS_FILE), metadata={"format": "pt"})
        (tmp / CONFIG_FILE).write_text(model.config.to_json_string(), encoding="utf-8")
        for name, data in files.items():
            (tmp / name).write_bytes(data)
        licence = str(card["start"].get("licence") or "unknown").split()[0]
        (tmp / "README.md").write_text(
            f"---\nlicense: {licence}\n---\n# {card['ssl']['method']} continuation of "
            f"{card['start']['name']}\n\nWritten by edgessl pretrain; see card.json.\n",
            encoding="utf-8")
        write_json(tmp / CARD_FILE, card)
        write_json(tmp / HISTORY_FILE, run.history)
        if not complete:
            torch.save(run.state(), tmp / STATE_FILE)


def _step(run: _Run, ids, mask, grad_clip: float, out: Path) -> float:
    loss = run.method(ids, mask)
    value = float(loss.item())
    if not math.isfinite(value):
        lr = run.optimizer.param_groups[0]["lr"]
        raise ConfigError(f"training diverged: the loss became {value} at step {run.step + 1} "
                          f"(lr {lr:.3g}); the last good checkpoint in '{printable(out)}' is "
                          f"kept. Start again with --force and a lower --lr (e.g. {lr / 4:.3g})")
    run.optimizer.zero_grad(set_to_none=True)
    loss.backward()
    if grad_clip > 0:
        torch.nn.utils.clip_grad_norm_(run.method.parameters(), grad_clip)
    run.optimizer.step()
    run.scheduler.step()
    run.step += 1
    return value


def _train(run: _Run, cfg: TextPretrainConfig, plan: _Plan, text: UnlabeledText,
           loaded, device, save) -> None:
    """Steps until the plan is done or a signal asks to stop (then save and raise)."""
    from edgessl.training import GracefulStop

    chance = run.method.chance_loss(plan.batch_size)
    begin, done_before = time.perf_counter(), run.step
    with GracefulStop() as stop:
        while run.step < plan.steps:
            lines = batch_lines(text.lines, plan, cfg.seed, run.step)
            ids, mask = (torch.from_numpy(a).to(device) for a in encode_texts(
                loaded.tokenizer, lines, plan.max_length, loaded.pad_id, False))
            value = _step(run, ids, mask, cfg.grad_clip, save.out)
            run.history.append({"step": run.step, "loss": value,
                                "lr": run.scheduler.get_last_lr()[0]})
            if run.step % cfg.log_every == 0 or run.step == plan.steps:
                rate = (run.step - done_before) * plan.batch_size / max(
                    time.perf_counter() - begin, 1e-9)
                log.info("%s step %d/%d: loss %.4f (chance %s), %.1f lines/s", cfg.method,
                         run.step, plan.steps, value,
                         "-" if chance is None else f"{chance:.3f}", rate)
            reason = chance_check(run.history, plan.steps, chance)
            if reason is not None and run.not_learning is None:
                run.not_learning = reason
                log.warning("NOT LEARNING WARNING: %s; %s", reason, run.method.advice)
            if run.step == plan.steps:
                save(True)
            elif stop.requested:
                save(False)
                raise Interrupted(f"{stop.requested}: saved a checkpoint at step {run.step} of "
                                  f"{plan.steps} to {save.out}; continue with --resume")
            elif run.step % cfg.checkpoint_every == 0:
                save(False)


class _Saver:
    """Writes the run's folder with a fresh card; ``out`` is where."""

    def __init__(self, run: _Run, card: dict, files: dict, out: Path) -> None:
        self.run, self.card, self.files, self.out = run, card, files, out
        self.started = time.perf_counter()
        self.seconds_before = float(card["ssl"].get("seconds") or 0.0)  # earlier calls

    def __call__(self, complete: bool) -> dict:
        run = self.run
        self.card["ssl"].update({
            "steps_done": run.step, "complete": complete,
            "final_loss": run.history[-1]["loss"] if run.history else None,
            "first_loss": run.history[0]["loss"] if run.history else None,
            "not_learning": run.not_learning,
            "seconds": round(self.seconds_before + time.perf_counter() - self.started, 1)})
        save_encoder_folder(run, self.card, self.files, self.out, complete)
        return self.card


def pretrain_text(cfg: TextPretrainConfig) -> TextPretrainResult:
    """Continue ``cfg.start`` with ``cfg.method`` on ``cfg.data``; write the encoder folder.

    Raises:
        DataError: unreadable text, or too few lines for one batch.
        ConfigError: bad settings, a method the encoder cannot run, a diverged loss.
        CheckpointError, OutputExistsError: see ``resume`` and ``force``.
        Interrupted: SIGINT/SIGTERM, after saving a checkpoint.
    """
    from edgessl.io import output_lock
    from edgessl.ssl.ddp import resolve_device
    from edgessl.text.encoders import encoder_max_length, resolve_encoder
    from edgessl.training import cosine_with_warmup, param_groups, seed_everything

    method_cls = TEXT_METHODS.get(cfg.method)
    options = build_method_options(method_cls, cfg.method_options)
    device = torch.device(resolve_device(cfg.device))
    text = read_unlabeled_text(cfg.data, min_lines=method_cls.min_batch)
    source = resolve_encoder(cfg.start)
    length = sequence_length(cfg, encoder_max_length(source))  # before the weights load
    out = _output_folder(cfg, source.folder)
    saved = _read_card(out) if cfg.resume else None
    seed_everything(cfg.seed)
    loaded = load_encoder(out if cfg.resume else cfg.start)
    method = method_cls(loaded, options)
    plan = _plan(cfg, len(text.lines), method_cls, length)
    method.to(device).train()
    optimizer = torch.optim.AdamW(
        [{**g, "lr": plan.lr} for g in param_groups(method, cfg.weight_decay)])
    run = _Run(method, optimizer, cosine_with_warmup(optimizer, plan.steps, plan.warmup_steps))
    settings = plan.settings(cfg, options)
    if saved is not None:
        _require_same_run(out, saved["ssl"], settings)
        if saved["data"]["fingerprint"] != text.fingerprint():
            raise ConfigError(f"--resume: the text in '{printable(cfg.data)}' differs from the "
                              "text the run started on; pass the same data, or start again "
                              "with --force")
        run.restore(_load_state(out))
        log.info("resuming %s at step %d of %d", out, run.step, plan.steps)
    card = saved or _new_card(cfg, loaded, method, settings, text)
    fresh = card["ssl"]["fresh_parameters"]
    if fresh and not cfg.resume:
        log.warning("%s: %d head parameters are new (not in the start's weights) and start "
                    "from random values: %s", cfg.method, len(fresh), ", ".join(fresh))
    log.info("pretraining %s with %s on %d lines from %s (%d steps of %d lines, lr %.3g, "
             "warm-up %d, max length %d, %s)", loaded.record["name"], cfg.method,
             len(text.lines), cfg.data, plan.steps, plan.batch_size, plan.lr,
             plan.warmup_steps, plan.max_length, device)
    save = _Saver(run, card, _source_files(loaded.folder, loaded.tokenizer), out)
    with output_lock(out, force=True):
        if run.step >= plan.steps:
            save(True)
        else:
            _train(run, cfg, plan, text, loaded, device, save)
    return TextPretrainResult(out, tuple(r["loss"] for r in run.history), run.step,
                              time.perf_counter() - save.started, tuple(fresh),
                              run.not_learning, card)


def _load_state(out: Path) -> dict:
    try:
        return torch.load(out / STATE_FILE, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - unpickling errors come in many types
        raise CheckpointError(f"'{printable(out / STATE_FILE)}' cannot be loaded "
                              f"({type(exc).__name__}); the checkpoint is damaged: start "
                              "again with --force") from None


def _new_card(cfg: TextPretrainConfig, loaded, method: TextSSLMethod, settings: dict,
              text: UnlabeledText) -> dict:
    return {
        "format": CARD_FORMAT, "kind": "text-encoder",
        "start": loaded.record, "start_load_report": loaded.load_report,
        "ssl": {**settings, "fresh_parameters": method.fresh_parameters(),
                "chance_loss": method.chance_loss(settings["batch_size"])},
        "data": text.summary(), "edgessl_version": __version__,
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
    }
