"""Tiny text encoders and a trivially separable toy set for the text tests.

The encoders are randomly initialised BERT and GPT-2 models (2 layers, hidden 32) saved as
Hugging Face folders with a ``tokenizer.json`` built with ``tokenizers``, so the tests need
no download and run in seconds on 2 cores.
"""

from __future__ import annotations

import random
import subprocess
import sys
import textwrap
from pathlib import Path

CLASSES = {
    "fruit": ["apple", "banana", "cherry", "grape", "lemon", "mango", "peach", "plum"],
    "vehicle": ["car", "bus", "train", "truck", "bike", "boat", "plane", "tram"],
    "weather": ["rain", "snow", "wind", "storm", "sun", "cloud", "fog", "hail"],
}
FILLER = ["i", "like", "the", "a", "see", "my"]
SPECIALS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]"]
HIDDEN = 32


def vocabulary() -> dict[str, int]:
    words = SPECIALS + FILLER + [w for ws in CLASSES.values() for w in ws]
    return {w: i for i, w in enumerate(words)}


def toy_sentences(per_class: int = 12, seed: int = 0) -> dict[str, list[str]]:
    """Class -> sentences of filler words and 2-3 words of that class only."""
    rng = random.Random(seed)
    return {c: [" ".join(rng.sample(FILLER, 2) + rng.sample(words, rng.randint(2, 3)))
                for _ in range(per_class)] for c, words in CLASSES.items()}


def write_toy_folder(root: Path, per_class: int = 12) -> Path:
    for label, lines in toy_sentences(per_class).items():
        (root / label).mkdir(parents=True)
        (root / label / "examples.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return root


def _wordpiece_tokenizer(vocab: dict[str, int]):
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors

    tok = Tokenizer(models.WordPiece(vocab, unk_token="[UNK]"))
    tok.normalizer = normalizers.BertNormalizer(lowercase=True)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", special_tokens=[("[CLS]", vocab["[CLS]"]),
                                                 ("[SEP]", vocab["[SEP]"])])
    return tok


def _wordlevel_tokenizer():
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers

    tok = Tokenizer(models.WordLevel(vocabulary(), unk_token="[UNK]"))
    tok.normalizer = normalizers.Lowercase()
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    return tok


def write_tiny_bert(folder: Path, seed: int = 0, extra_tokens: tuple[str, ...] = ()) -> Path:
    """A random 2-layer BertModel (with its pooler, which edgessl ignores) and a WordPiece
    ``tokenizer.json``; ``extra_tokens`` (e.g. "[MASK]") are added to the vocabulary."""
    import torch
    from transformers import BertConfig, BertModel

    vocab = {**vocabulary()}
    for token in extra_tokens:
        vocab[token] = len(vocab)
    torch.manual_seed(seed)
    config = BertConfig(vocab_size=len(vocab), hidden_size=HIDDEN, num_hidden_layers=2,
                        num_attention_heads=2, intermediate_size=64, max_position_embeddings=64,
                        pad_token_id=0)
    BertModel(config).save_pretrained(folder)
    _wordpiece_tokenizer(vocab).save(str(folder / "tokenizer.json"))
    return folder


def write_tiny_gpt2(folder: Path, seed: int = 0) -> Path:
    """A random 2-layer GPT2Model and a word-level ``tokenizer.json``."""
    import torch
    from transformers import GPT2Config, GPT2Model

    torch.manual_seed(seed)
    config = GPT2Config(vocab_size=len(vocabulary()), n_embd=HIDDEN, n_layer=2, n_head=2,
                        n_positions=64, bos_token_id=0, eos_token_id=0)
    GPT2Model(config).save_pretrained(folder)
    _wordlevel_tokenizer().save(str(folder / "tokenizer.json"))
    return folder


def run_bundle(bundle, *args):
    """``python run.py ARGS`` in a fresh interpreter; the last line lists heavy imports."""
    script = textwrap.dedent(f"""
        import runpy, sys
        sys.argv = ["run.py", *{list(map(str, args))!r}]
        try:
            runpy.run_path({str(bundle / "run.py")!r}, run_name="__main__")
        except SystemExit as exc:
            code = exc.code
        else:
            code = 0
        print("HEAVY", sorted(m for m in ("torch", "transformers", "sklearn", "PIL")
                              if m in sys.modules), "CODE", code)
    """)
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                         timeout=180, cwd=bundle)
    assert out.returncode == 0, out.stderr
    *lines, last = out.stdout.strip().splitlines()
    return lines, last, out.stderr
