"""Loading text corpora from the sources users name.

One entry point, :func:`load_text_corpus`, turns a short spec into a ``DatasetDict`` with a ``train`` and a
``test`` split, each holding a string column ``text`` (one document or paragraph per row, blank rows dropped)
and, where the source has one, a ``label`` column:

- ``python-docs`` (also ``None``): the docstrings of the Python standard library, real English on every machine
  that has Python (about 5,000 docstrings, 175k words on CPython 3.11); the default for quick runs and tests,
- ``austen``: Jane Austen's six novels, one paragraph per row, labelled with the novel (Debian package
  ``r-cran-janeaustenr``, read from R's lazy-load database without R: :mod:`.austen`),
- ``text:GLOB``: plain text files, paragraphs separated by blank lines,
- anything else: a Hub dataset id or a local dataset folder, through ``datasets.load_dataset``.

The held-out split is a function of each row's text (a CRC-32 of it), not of its position or of a random seed:
the same corpus always gives the same split, and a paragraph that occurs twice (a chapter heading, a repeated
docstring) lands on one side only, so the splits never share a row.
"""

from __future__ import annotations

import ast
import difflib
import glob
import inspect
import os
import sysconfig
import zlib
from pathlib import Path

import datasets
import numpy as np

from ..errors import HfSslError, first_line
from .austen import austen_dataset

BUILTIN_TEXT_CORPORA: dict[str, str] = {
    "python-docs": "docstrings of the Python standard library: about 5,000 documents, 175k words of English "
    "(always available; the default text corpus)",
    "austen": "Jane Austen's six novels: about 10,000 paragraphs, 718k words, labelled with the novel "
    "(Debian package r-cran-janeaustenr, or --data_dir)",
}
DEFAULT_TEXT_CORPUS = "python-docs"
TEST_FRACTION = 0.05  # share of rows held out (by a hash of their text)

# Parts of the standard library whose docstrings are not prose about Python, or that are tests and tools:
# test suites, IDLE, Tk's GUI code, bundled installers, the deprecated 2to3 fixers.
_STDLIB_SKIP = {
    "test", "tests", "idlelib", "tkinter", "turtledemo", "ensurepip", "lib2to3", "site-packages", "dist-packages",
    "__pycache__", "venv", "distutils", "pydoc_data",
}  # fmt: skip


def load_text_corpus(
    spec: str | None = None, data_dir: str | None = None, text_column: str | None = None,
) -> datasets.DatasetDict:
    """Load the corpus named by ``spec`` (see the module docstring; None means ``python-docs``).

    ``data_dir`` is where ``austen`` looks for the extracted Debian package and ``load_dataset``'s ``data_dir``
    for Hub datasets. ``text_column`` names the text column of a Hub/local dataset (detected when it has exactly
    one string column). Raises :class:`HfSslError` for anything the user can fix.
    """
    spec = spec or DEFAULT_TEXT_CORPUS
    if text_column is not None and (spec in BUILTIN_TEXT_CORPORA or spec.startswith("text:")):
        raise HfSslError(f"--text_column does not apply to {spec}: its text is in the 'text' column")
    if spec == "python-docs":
        if data_dir is not None:
            raise HfSslError("python-docs is read from this Python's standard library: --data_dir does not apply")
        table = {"text": python_docstrings()}
        corpus = datasets.Dataset.from_dict(table)
    elif spec == "austen":
        corpus = austen_dataset(data_dir)
    elif spec.startswith("text:"):
        corpus = _load_text_files(spec.removeprefix("text:"))
    else:
        return _load_generic(spec, data_dir, text_column)
    return _hold_out(_drop_blank(corpus))


def text_corpus_name(spec: str | None) -> str:
    """The name a model card gives the corpus: the built-in's name, ``text`` for files, the Hub id or folder name."""
    spec = spec or DEFAULT_TEXT_CORPUS
    if spec in BUILTIN_TEXT_CORPORA:
        return spec
    if spec.startswith("text:"):
        return "text"
    return os.path.basename(os.path.normpath(spec)) if os.path.exists(spec) else spec


# ---------------------------------------------------------------------------------------------- python-docs


def python_docstrings() -> list[str]:
    """The docstrings (module, class, function) of the public pure-Python standard library, deduplicated, in a
    fixed order (sorted file paths, then source order).

    Read from the source with ``ast``, not by importing the modules: importing every stdlib module has side
    effects (``antigravity`` opens a web browser, ``this`` prints) and takes longer. About 2 s here."""
    root = sysconfig.get_paths()["stdlib"]
    files = []
    for directory, subdirs, names in os.walk(root):
        subdirs[:] = sorted(d for d in subdirs if d not in _STDLIB_SKIP and not d.startswith(("_", "config-")))
        files += [os.path.join(directory, n) for n in sorted(names) if n.endswith(".py") and not n.startswith("_")]
    seen: dict[str, None] = {}  # an ordered set
    for path in files:
        try:
            with open(path, encoding="utf-8") as f:
                tree = ast.parse(f.read())
        except (SyntaxError, UnicodeDecodeError, OSError, ValueError):
            continue  # a file this interpreter cannot parse holds no docstrings for us
        for node in ast.walk(tree):
            if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
                doc = ast.get_docstring(node, clean=True)
                if doc and doc.strip():
                    seen.setdefault(inspect.cleandoc(doc), None)
    if not seen:
        raise HfSslError(f"found no docstrings in the Python standard library at {root} (is it installed?)")
    return list(seen)


# ---------------------------------------------------------------------------------------------- text files


def _diagnose_text_files(files: list[str]) -> str | None:
    """What is wrong with the files, which `datasets`' text builder reports only as "An error occurred while
    generating the dataset": the first one that is not UTF-8, or that none holds any text."""
    has_text = False
    for path in files:
        data = Path(path).read_bytes()
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as e:
            return (f"{path} is not UTF-8 text (byte 0x{data[e.start]:02x} at offset {e.start}); convert it, e.g. "
                    "`iconv -f latin1 -t utf-8`")
        has_text = has_text or bool(text.strip())
    return None if has_text else "the files hold no text (empty, or whitespace only)"


def _load_text_files(pattern: str) -> datasets.Dataset:
    if not pattern:
        raise HfSslError("text: needs a file pattern, e.g. text:'corpus/*.txt'")
    files = sorted(f for f in glob.glob(os.path.expanduser(pattern), recursive=True) if os.path.isfile(f))
    if not files:
        raise HfSslError(f"text:{pattern} matches no files")
    try:
        loaded = datasets.load_dataset("text", data_files={"train": files}, sample_by="paragraph", split="train")
    except Exception as e:  # undecodable bytes and the like: a problem with the user's files
        reason = _diagnose_text_files(files) or first_line(e)
        raise HfSslError(f"cannot read the text files of text:{pattern}: {reason}") from None
    # a paragraph's lines become one line of text
    return loaded.map(lambda batch: {"text": [" ".join(t.split()) for t in batch["text"]]}, batched=True)


# ------------------------------------------------------------------------------------------ Hub / local datasets


def _load_generic(spec: str, data_dir: str | None, text_column: str | None) -> datasets.DatasetDict:
    is_local = os.path.exists(spec)
    if "/" not in spec and not is_local:
        # most likely a mistyped built-in; asking the Hub first costs about 30 s of retries when offline
        close = difflib.get_close_matches(spec, [*BUILTIN_TEXT_CORPORA, "text"], n=1)
        hint = f"did you mean '{close[0]}'? " if close else ""
        raise HfSslError(f"unknown text dataset '{spec}' ({hint}built-in: {', '.join(BUILTIN_TEXT_CORPORA)}; "
                         "or text:GLOB, a Hub dataset id)")
    try:
        loaded = datasets.load_dataset(spec, data_dir=data_dir)
    except Exception as e:  # not found, offline, gated, bad files: all reported as one line
        raise HfSslError(f"cannot load dataset '{spec}': {first_line(e)}") from None
    splits = dict(loaded)
    if not splits:
        raise HfSslError(f"dataset {spec} has no splits")
    train_name = "train" if "train" in splits else next(iter(splits)) if len(splits) == 1 else None
    if train_name is None:
        raise HfSslError(f"dataset {spec} has no 'train' split (splits: {', '.join(splits)})")
    test_name = next((s for s in ("test", "validation") if s in splits and s != train_name), None)
    column = _text_column(spec, splits[train_name].features, text_column)

    def standard(split: datasets.Dataset) -> datasets.Dataset:
        keep = [column] + [c for c in ("label",) if c in split.column_names and c != column]
        split = split.select_columns(keep)
        return split.rename_column(column, "text") if column != "text" else split

    if test_name is None:
        return _hold_out(_drop_blank(standard(splits[train_name])))
    return datasets.DatasetDict({"train": _drop_blank(standard(splits[train_name])),
                                 "test": _drop_blank(standard(splits[test_name]))})


def _text_column(spec: str, features: datasets.Features, requested: str | None) -> str:
    def is_string(feature: object) -> bool:
        return isinstance(feature, datasets.Value) and feature.dtype in ("string", "large_string")

    columns = list(features)
    if requested is not None:
        if requested not in features:
            raise HfSslError(f"dataset {spec} has no column '{requested}' (columns: {', '.join(columns)})")
        if not is_string(features[requested]):
            raise HfSslError(f"column '{requested}' of dataset {spec} holds {features[requested]}, not text")
        return requested
    strings = [c for c in columns if is_string(features[c])]
    if len(strings) == 1:
        return strings[0]
    if "text" in strings:
        return "text"
    if not strings:
        raise HfSslError(f"dataset {spec} has no text (string) column (columns: {', '.join(columns)})")
    raise HfSslError(f"dataset {spec} has several text columns ({', '.join(strings)}): name one with --text_column")


# ------------------------------------------------------------------------------------------------ splitting


def _drop_blank(dataset: datasets.Dataset) -> datasets.Dataset:
    return dataset.filter(lambda batch: [bool(t and t.strip()) for t in batch["text"]], batched=True)


def is_held_out(texts: list[str]) -> np.ndarray:
    """Whether each text belongs to the test split: the CRC-32 of its UTF-8 bytes, as a fraction of 2**32, falls
    below TEST_FRACTION."""
    hashes = np.fromiter((zlib.crc32(t.encode("utf-8")) for t in texts), dtype=np.uint64, count=len(texts))
    return hashes < np.uint64(int(TEST_FRACTION * 2**32))


def _hold_out(dataset: datasets.Dataset) -> datasets.DatasetDict:
    held_out = is_held_out(dataset["text"])
    if held_out.all() or not held_out.any():  # a tiny corpus: hold out its last row so both splits exist
        if len(dataset) < 2:
            raise HfSslError(f"the corpus holds {len(dataset)} non-blank paragraph(s); it needs at least 2")
        held_out = np.zeros(len(dataset), dtype=bool)
        held_out[-1] = True
    return datasets.DatasetDict({"train": dataset.select(np.flatnonzero(~held_out)),
                                 "test": dataset.select(np.flatnonzero(held_out))})
