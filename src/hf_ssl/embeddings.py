"""`hf-ssl embed`: an exported encoder's features for every example of a dataset, written to one file, for
retrieval, clustering and deduplication.

The modality yields the features batch by batch (`Modality.embeddings`: decoded, encoded and pooled as its
evaluation does), so memory does not grow with the dataset; `EmbeddingsFile` writes them as they come:

- `.parquet`: one row per example, columns `id` (its file's path relative to the dataset folder, else
  `SPLIT/ROW`), `split`, `label` (the class id, null without labels) and `embedding` (a list of float32);
- `.npy`: an (N, D) float32 array, with the ids, one per line, in `FILE.ids.txt` (same order).

The file is written under a temporary name next to the target and renamed when complete: an interrupted or failed
run leaves no half-written output.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from .errors import HfSslError

FORMATS = (".parquet", ".npy")


@dataclass
class EmbeddingBatch:
    """Features of consecutive examples of one split."""

    ids: list[str]
    split: str
    labels: list[int | None]
    features: torch.Tensor  # (B, D) float32


def check_output_path(path: str | os.PathLike) -> Path:
    """The output file's path, refused in one line when it cannot be written (checked before any model is loaded)."""
    path = Path(path)
    if path.suffix not in FORMATS:
        raise HfSslError(f"--output {path}: the file name must end in {' or '.join(FORMATS)}")
    if not path.parent.is_dir():
        raise HfSslError(f"--output {path}: the folder {path.parent} does not exist")
    return path


class EmbeddingsFile:
    """Writes `EmbeddingBatch`es into `path` (.parquet or .npy, see the module docstring); `total` is the number of
    examples to come (the .npy array is allocated once the width is known). Use as a context manager: the file
    appears at `path` only when the block completes."""

    def __init__(self, path: str | os.PathLike, total: int):
        self.path = check_output_path(path)
        if total == 0:
            raise HfSslError("nothing to embed: the selected splits hold no example")
        self.total = total
        self._partial = self.path.with_name(f".{self.path.name}.partial")
        self._ids_partial = self._partial.with_name(self._partial.name + ".ids")
        self._written = 0
        self._writer = None  # pyarrow's ParquetWriter, or the .npy memory map
        self._ids: list[str] = []

    def __enter__(self) -> EmbeddingsFile:
        return self

    def write(self, batch: EmbeddingBatch) -> None:
        features = batch.features.float().numpy()
        if self.path.suffix == ".parquet":
            self._write_parquet(batch, features)
        else:
            if self._writer is None:
                self._writer = np.lib.format.open_memmap(self._partial, mode="w+", dtype=np.float32,
                                                         shape=(self.total, features.shape[1]))
            self._writer[self._written : self._written + len(features)] = features
            self._ids.extend(batch.ids)
        self._written += len(features)

    def _write_parquet(self, batch: EmbeddingBatch, features: np.ndarray) -> None:
        import pyarrow as pa
        import pyarrow.parquet as pq

        embedding = pa.FixedSizeListArray.from_arrays(pa.array(features.reshape(-1)), features.shape[1])
        table = pa.table({"id": pa.array(batch.ids, pa.string()),
                          "split": pa.array([batch.split] * len(batch.ids), pa.string()),
                          "label": pa.array(batch.labels, pa.int64()), "embedding": embedding})
        if self._writer is None:
            self._writer = pq.ParquetWriter(self._partial, table.schema)
        self._writer.write_table(table)

    def __exit__(self, error_type, error, traceback) -> None:
        if self.path.suffix == ".parquet" and self._writer is not None:
            self._writer.close()
        elif self._writer is not None:
            self._writer.flush()
            del self._writer
        if error_type is not None or self._written != self.total:
            for partial in (self._partial, self._ids_partial):
                partial.unlink(missing_ok=True)
            if error_type is None:
                raise RuntimeError(f"embeddings: {self._written} of {self.total} examples written")
            return
        if self.path.suffix == ".npy":
            self._ids_partial.write_text("".join(f"{i}\n" for i in self._ids), encoding="utf-8")
            os.replace(self._ids_partial, self.path.with_name(self.path.name + ".ids.txt"))
        os.replace(self._partial, self.path)


__all__ = ["EmbeddingBatch", "EmbeddingsFile", "FORMATS", "check_output_path"]
