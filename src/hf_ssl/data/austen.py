"""Jane Austen's six novels, one paragraph per row, labelled with the novel: the ``austen`` text corpus.

The text comes from the Debian package ``r-cran-janeaustenr``, which ships them only as R data: a lazy-load
database of one character vector (the lines) per novel. It is read without R, by :mod:`.r_serialization`.
:func:`.text.load_text_corpus` adds the held-out split, as for any corpus.
"""

from __future__ import annotations

import os

import datasets

from ..errors import HfSslError
from .r_serialization import read_r_lazyload_db

# The six novels in order of publication, under the names the R package gives them.
AUSTEN_NOVELS = {
    "sensesensibility": "Sense & Sensibility",
    "prideprejudice": "Pride & Prejudice",
    "mansfieldpark": "Mansfield Park",
    "emma": "Emma",
    "northangerabbey": "Northanger Abbey",
    "persuasion": "Persuasion",
}
AUSTEN_DEFAULT_DIR = os.path.join(os.path.expanduser("~"), ".cache", "hf_ssl", "janeaustenr")
_AUSTEN_DATA_SUBDIR = os.path.join("usr", "lib", "R", "site-library", "janeaustenr", "data")
AUSTEN_HOW_TO_GET = (
    "cd /tmp && apt-get download r-cran-janeaustenr && "
    f"dpkg -x r-cran-janeaustenr_*.deb {AUSTEN_DEFAULT_DIR} (or pass --data_dir DIR where it was extracted)"
)


def find_austen_data_dir(data_dir: str | None = None) -> str:
    """The folder holding janeaustenr's ``Rdata.rdx``/``Rdata.rdb``: under ``data_dir`` (the extraction root of
    the Debian package, the package folder, or the ``data`` folder itself), else under the default location."""
    roots = [data_dir] if data_dir else [AUSTEN_DEFAULT_DIR, "/"]
    for root in roots:
        for sub in (_AUSTEN_DATA_SUBDIR, "data", ""):
            candidate = os.path.join(root, sub)
            if os.path.isfile(os.path.join(candidate, "Rdata.rdx")):
                return candidate
    where = data_dir or AUSTEN_DEFAULT_DIR
    raise HfSslError(f"Jane Austen's novels not found in {where}: {AUSTEN_HOW_TO_GET}")


def read_austen_novels(data_dir: str | None = None) -> dict[str, list[str]]:
    """Each novel as its list of lines (R's character vectors), keyed by the package's object names."""
    path = find_austen_data_dir(data_dir)
    objects = read_r_lazyload_db(os.path.join(path, "Rdata"))
    missing = [name for name in AUSTEN_NOVELS if name not in objects]
    if missing:
        raise HfSslError(f"{path}/Rdata.rdb lacks the novels {', '.join(missing)}: not janeaustenr's data")
    return {name: objects[name] for name in AUSTEN_NOVELS}


def austen_paragraphs(lines: list[str | None]) -> list[str]:
    """Lines joined into paragraphs: blank (or NA) lines separate paragraphs, the lines of one are joined by a
    space."""
    paragraphs, current = [], []
    for line in lines:
        line = (line or "").strip()
        if line:
            current.append(line)
        elif current:
            paragraphs.append(" ".join(current))
            current = []
    if current:
        paragraphs.append(" ".join(current))
    return paragraphs


def austen_dataset(data_dir: str | None) -> datasets.Dataset:
    """The six novels as one Dataset: a ``text`` row per paragraph, its ``label`` the novel (in order of
    publication)."""
    novels = read_austen_novels(data_dir)
    texts, labels = [], []
    for label, lines in enumerate(novels.values()):
        paragraphs = austen_paragraphs(lines)
        texts += paragraphs
        labels += [label] * len(paragraphs)
    features = datasets.Features({"text": datasets.Value("string"),
                                  "label": datasets.ClassLabel(names=list(AUSTEN_NOVELS.values()))})
    return datasets.Dataset.from_dict({"text": texts, "label": labels}, features=features)
