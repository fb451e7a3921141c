"""The built-in labeled text set: chatterbot-corpus questions labelled by their topic.

Source: the English files of ``chatterbot-corpus`` (PyPI, BSD-3-Clause licence, by Gunther
Cox; https://github.com/gunthercox/chatterbot-corpus), installed with ``edgessl[text]``, so
nothing is downloaded. Each YAML file is one topic; the first line of each conversation is a
user's question. Questions are stripped, deduplicated (case-insensitively) and any question
found under two topics is dropped, since its label would be arbitrary.

Topics: the ten English topics with at least ``MIN_QUESTIONS`` (20) distinct questions in
chatterbot-corpus 1.3.3 (``TOPICS``); smaller topics (food, greetings, money, ...) have too
few for a train/val split at 8 labels per class. ``trivia`` (261 questions) is cut to
``MAX_QUESTIONS`` (100, a seeded choice) so that one class does not make up half of the
val split. About 480 questions in all. The list is pinned rather than recomputed, so a new
corpus version cannot silently change the classes; a pinned topic that shrank below the
minimum is an error.

The set is written as the folder format of ``edgessl.text.data`` (one folder per topic with
``questions.txt``), deterministically, once, into the edgessl cache.
"""

from __future__ import annotations

import importlib.util
import random
from pathlib import Path

from edgessl.errors import DataError
from edgessl.io import atomic_dir

PACKAGE = "chatterbot_corpus"
LICENCE = "BSD-3-Clause (chatterbot-corpus, Gunther Cox)"
TOPICS = ("ai", "coding", "conversations", "emotion", "literature", "movies", "psychology",
          "science", "sports", "trivia")
MIN_QUESTIONS = 20
MAX_QUESTIONS = 100
SEED = 0
NAME = "chatterbot-topics"
INSTALL_HINT = "pip install 'edgessl[text]' (or: pip install chatterbot-corpus)"


def corpus_folder() -> Path:
    """The installed corpus's English YAML folder.

    Raises:
        DataError: chatterbot-corpus is not installed.
    """
    spec = importlib.util.find_spec(PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise DataError(f"the built-in text set needs the chatterbot-corpus package: "
                        f"{INSTALL_HINT}")
    return Path(next(iter(spec.submodule_search_locations))) / "data" / "english"


def _questions(file: Path) -> list[str]:
    """Distinct first lines of the conversations in one topic file, sorted."""
    import yaml

    try:
        data = yaml.safe_load(file.read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError, UnicodeDecodeError) as exc:
        raise DataError(f"chatterbot-corpus file '{file}' cannot be read ({exc}); "
                        f"reinstall it: {INSTALL_HINT}") from None
    seen: dict[str, str] = {}
    for conversation in data.get("conversations") or []:
        if conversation and isinstance(conversation, list):
            question = " ".join(str(conversation[0]).split())
            if question:
                seen.setdefault(question.lower(), question)
    return sorted(seen.values())


def topic_questions() -> dict[str, list[str]]:
    """Topic -> its questions, as the built-in set holds them (see the module docstring)."""
    folder = corpus_folder()
    found = {}
    for topic in TOPICS:
        file = folder / f"{topic}.yml"
        if not file.is_file():
            raise DataError(f"chatterbot-corpus has no topic file '{file}'; reinstall it: "
                            f"{INSTALL_HINT}")
        found[topic] = _questions(file)
    others = [f for f in sorted(folder.glob("*.yml")) if f.stem not in TOPICS]
    owners: dict[str, int] = {}
    for questions in [*found.values(), *map(_questions, others)]:
        for q in {q.lower() for q in questions}:
            owners[q] = owners.get(q, 0) + 1
    rng = random.Random(SEED)
    for topic, questions in found.items():
        unique = [q for q in questions if owners[q.lower()] == 1]
        if len(unique) < MIN_QUESTIONS:
            raise DataError(f"chatterbot-corpus topic '{topic}' has {len(unique)} distinct "
                            f"questions, fewer than {MIN_QUESTIONS}; this corpus version does "
                            "not match the built-in set (chatterbot-corpus 1.3.3)")
        if len(unique) > MAX_QUESTIONS:
            unique = sorted(rng.sample(unique, MAX_QUESTIONS))
        found[topic] = unique
    return found


def write_builtin_text(out: str | Path, force: bool = False) -> Path:
    """Write the built-in set as class folders of ``questions.txt`` under ``out``, atomically.

    Returns:
        ``out``, ready for ``edgessl.text.data.load_text_set``.
    """
    questions = topic_questions()
    out = Path(out)
    with atomic_dir(out, force=force) as tmp:
        for topic, lines in questions.items():
            (tmp / topic).mkdir()
            (tmp / topic / "questions.txt").write_text("\n".join(lines) + "\n",
                                                       encoding="utf-8")
        total = sum(map(len, questions.values()))
        (tmp / "SOURCE.md").write_text(
            f"# {NAME}\n\n{total} questions from chatterbot-corpus (English), labelled by "
            f"topic: {', '.join(TOPICS)}.\nLicence: {LICENCE}.\nBuilt by edgessl.text.builtin "
            "(see its docstring for the selection rules).\n", encoding="utf-8")
    return out


def builtin_text_dir() -> Path:
    """The built-in set's folder in the edgessl cache, written on first use."""
    from edgessl.data.digits import edgessl_home

    root = edgessl_home() / "data" / NAME
    if not (root / "SOURCE.md").is_file():
        write_builtin_text(root, force=True)
    return root
