"""Text corpora: the embedded python-docs default, plain text files, the Austen reader (on a lazy-load database
written here by an independent minimal XDR writer, and on the real Debian package when it is present)."""

import gzip
import struct
import zlib

import pytest

from hf_ssl.data.austen import AUSTEN_NOVELS, find_austen_data_dir
from hf_ssl.data.r_serialization import read_r_lazyload_db
from hf_ssl.data.text import is_held_out, load_text_corpus
from hf_ssl.errors import HfSslError


@pytest.fixture(scope="module")
def python_docs():
    return load_text_corpus()


def test_python_docs_is_english_deterministic_and_split(python_docs):
    train, test = python_docs["train"], python_docs["test"]
    assert len(train) > 2000 and 0.02 < len(test) / (len(train) + len(test)) < 0.1
    words = " ".join(list(train["text"])[:500]).lower().split()
    for common in ("the", "of", "a", "is", "return"):  # English prose, not code
        assert words.count(common) > 50, common
    assert all(t.strip() for t in train["text"]) and all(t.strip() for t in test["text"])
    assert not set(train["text"]) & set(test["text"])
    again = load_text_corpus("python-docs")
    assert list(again["train"]["text"]) == list(train["text"]) and list(again["test"]["text"]) == list(test["text"])


def test_held_out_fraction_follows_the_hash_of_the_text():
    texts = [f"paragraph number {i}" for i in range(20000)]
    held = is_held_out(texts)
    assert 0.04 < held.mean() < 0.06
    # a function of the text alone: reordering the corpus moves no row across the split
    assert (is_held_out(texts[::-1])[::-1] == held).all()
    expected = [zlib.crc32(t.encode()) / 2**32 < 0.05 for t in texts[:100]]
    assert held[:100].tolist() == expected


def test_text_glob_reads_paragraphs(tmp_path):
    paragraphs = [f"Paragraph {i} of the file,\nwith a second line {i}." for i in range(60)]
    (tmp_path / "a.txt").write_text("\n\n".join(paragraphs[:30]) + "\n")
    (tmp_path / "b.txt").write_text("\n\n\n".join(paragraphs[30:]) + "\n\n  \n")
    corpus = load_text_corpus(f"text:{tmp_path}/*.txt")
    texts = list(corpus["train"]["text"]) + list(corpus["test"]["text"])
    assert sorted(texts) == sorted(" ".join(p.split()) for p in paragraphs)
    assert len(corpus["test"]) >= 1


def test_errors_are_one_line(tmp_path):
    for spec, fragment in [(f"text:{tmp_path}/nothing*.txt", "matches no files"),
                           ("austn", "did you mean 'austen'")]:
        with pytest.raises(HfSslError, match=fragment) as info:
            load_text_corpus(spec)
        assert "\n" not in str(info.value)
    with pytest.raises(HfSslError, match="apt-get download r-cran-janeaustenr && dpkg -x") as info:
        load_text_corpus("austen", data_dir=str(tmp_path))
    assert "\n" not in str(info.value)


def test_hub_style_dataset_folder_detects_the_text_column(tmp_path):
    import datasets

    rows = {"sentence": [f"sentence {i} is here" for i in range(100)], "score": list(range(100))}
    datasets.Dataset.from_dict(rows).to_json(str(tmp_path / "data" / "train.jsonl"))
    corpus = load_text_corpus(str(tmp_path / "data"))
    assert corpus["train"].column_names == ["text"]
    assert sorted(list(corpus["train"]["text"]) + list(corpus["test"]["text"])) == sorted(rows["sentence"])
    with pytest.raises(HfSslError, match="no column 'body'"):
        load_text_corpus(str(tmp_path / "data"), text_column="body")
    with pytest.raises(HfSslError, match="not text"):
        load_text_corpus(str(tmp_path / "data"), text_column="score")


# --- an independent minimal writer of R's XDR serialization (R Internals, "Serialization formats") -------------

def _flags(sexp_type: int, has_attr: bool = False, has_tag: bool = False, levels: int = 0) -> bytes:
    return struct.pack(">i", sexp_type | (has_attr << 9) | (has_tag << 10) | (levels << 12))


def _charsxp(text: str | None) -> bytes:
    if text is None:
        return _flags(9) + struct.pack(">i", -1)
    raw = text.encode("utf-8")
    return _flags(9, levels=8) + struct.pack(">i", len(raw)) + raw  # 8: UTF-8 marked


def _strsxp(values: list, names: list | None = None) -> bytes:
    body = struct.pack(">i", len(values)) + b"".join(_charsxp(v) for v in values)
    return _flags(16, has_attr=names is not None) + body + (_names_attribute(names) if names is not None else b"")


def _names_attribute(names: list[str]) -> bytes:
    # pairlist (tag = symbol "names", car = character vector), terminated by R_NilValue (254)
    symbol = _flags(1) + _charsxp("names")
    return _flags(2, has_tag=True) + symbol + _strsxp(names) + _flags(254)


def _named_list_of_int_pairs(pairs: dict[str, tuple[int, int]]) -> bytes:
    body = b"".join(_flags(13) + struct.pack(">iii", 2, *pair) for pair in pairs.values())
    return _flags(19, has_attr=True) + struct.pack(">i", len(pairs)) + body + _names_attribute(list(pairs))


def _serialize(item: bytes, version: int = 3) -> bytes:
    header = b"X\n" + struct.pack(">iii", version, 0x040201, 0x030500)
    if version == 3:
        header += struct.pack(">i", 5) + b"UTF-8"
    return header + item


def write_lazyload_db(prefix: str, objects: dict[str, list]) -> None:
    """A lazy-load database as R's makeLazyLoadDB writes it: records of 4-byte length + zlib data (the second
    one with the 'Z' type byte of compress=2-style headers), and a gzip-compressed index."""
    records, offsets = b"", {}
    for i, (name, lines) in enumerate(objects.items()):
        data = _serialize(_strsxp(lines), version=2 + i % 2)
        record = struct.pack(">I", len(data)) + (b"Z" if i % 2 else b"") + zlib.compress(data)
        offsets[name] = (len(records), len(record))
        records += record
    index = _flags(19, has_attr=True) + struct.pack(">i", 3)
    index += _named_list_of_int_pairs(offsets)
    index += _flags(19, has_attr=True) + struct.pack(">i", 0) + _names_attribute([])  # references: empty
    index += _flags(10) + struct.pack(">ii", 1, 1)  # compressed = TRUE
    index += _names_attribute(["variables", "references", "compressed"])
    with open(prefix + ".rdb", "wb") as f:
        f.write(records)
    with open(prefix + ".rdx", "wb") as f:
        f.write(gzip.compress(_serialize(index)))


def test_r_lazyload_reader_on_a_database_written_here(tmp_path):
    novels = {name: [f"{name} line {i}" if i % 4 else "" for i in range(40)] for name in AUSTEN_NOVELS}
    novels["emma"][5] = None  # NA_character_
    novels["persuasion"][7] = "Anne \u00c9lliot \u2014 caf\u00e9"
    data_dir = tmp_path / "usr" / "lib" / "R" / "site-library" / "janeaustenr" / "data"
    data_dir.mkdir(parents=True)
    write_lazyload_db(str(data_dir / "Rdata"), novels)
    assert read_r_lazyload_db(str(data_dir / "Rdata")) == novels
    assert find_austen_data_dir(str(tmp_path)) == str(data_dir)

    corpus = load_text_corpus("austen", data_dir=str(tmp_path))
    rows = [(row["text"], row["label"]) for split in ("train", "test") for row in corpus[split]]
    # lines 1-3, 5-7, ... form paragraphs (every 4th line is blank); each paragraph keeps its novel's label
    expected = []
    for label, (name, lines) in enumerate(novels.items()):
        for start in range(1, 40, 4):
            expected.append((" ".join(l for l in lines[start:start + 3] if l), label))
    assert sorted(rows) == sorted(expected)
    assert corpus["train"].features["label"].names == list(AUSTEN_NOVELS.values())

    (data_dir / "Rdata.rdb").write_bytes(b"\x00\x00\x00\x10garbage")
    with pytest.raises(HfSslError, match="not a readable R lazy-load database"):
        load_text_corpus("austen", data_dir=str(tmp_path))


def _real_austen_dir():
    try:
        return find_austen_data_dir()
    except HfSslError:
        return None


@pytest.mark.skipif(_real_austen_dir() is None, reason="Debian package r-cran-janeaustenr not extracted under "
                    "~/.cache/hf_ssl/janeaustenr (apt-get download r-cran-janeaustenr && dpkg -x ...)")
def test_real_austen_novels():
    corpus = load_text_corpus("austen")
    texts = list(corpus["train"]["text"]) + list(corpus["test"]["text"])
    assert 700_000 < sum(len(t.split()) for t in texts) < 740_000  # about 718k words
    assert any(t.startswith("It is a truth universally acknowledged") for t in texts)
    labels = list(corpus["train"]["label"])
    assert set(labels) == set(range(6))
    assert not set(list(corpus["train"]["text"])) & set(list(corpus["test"]["text"]))
