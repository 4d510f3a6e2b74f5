"""Which checkpoint a re-run resumes from, and the one-writer lock on OUT.

A run killed while Trainer writes `checkpoint-N` leaves a folder that Trainer's own resume refuses with a traceback
("Can't find a valid checkpoint at ..."). `Trainer._save_checkpoint` (checked in transformers 5.25) writes, in
this order, the weights, the optimizer and scheduler, the scaler, the generator states, and last `trainer_state.json`;
older checkpoints are rotated away only after that. So a checkpoint whose `trainer_state.json` reads as JSON is
complete, and only the newest one can be incomplete: `last_complete_checkpoint` skips (and removes) it, saying so,
and resumes from the one before. Trainer writes `checkpoint-N` in place, not under a temporary name renamed when
complete; the order above gives the same guarantee without reimplementing `_save_checkpoint`.
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
import re
import shutil
from pathlib import Path

from transformers.trainer import TRAINER_STATE_NAME
from transformers.trainer_utils import PREFIX_CHECKPOINT_DIR

from ..errors import HfSslError

CHECKPOINTS_SUBDIR = "checkpoints"  # OUT/checkpoints: Trainer's output_dir, never pushed (hub/push.py)
LOCK_FILE = ".hf-ssl.lock"
_CHECKPOINT = re.compile(rf"^{PREFIX_CHECKPOINT_DIR}-(\d+)$")


def is_complete_checkpoint(folder: str | os.PathLike) -> bool:
    """Whether Trainer finished writing `folder`: its `trainer_state.json`, written last, exists and parses."""
    try:
        json.loads((Path(folder) / TRAINER_STATE_NAME).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return True


def last_complete_checkpoint(checkpoints_dir: str | os.PathLike, remove_incomplete: bool = True) -> str | None:
    """The newest complete `checkpoint-N` in `checkpoints_dir`, or None. An incomplete one (the run was killed
    while writing it) is reported in one line and, with `remove_incomplete` (the main process), removed, so that
    Trainer rewrites it cleanly when the run gets there again."""
    folder = Path(checkpoints_dir)
    if not folder.is_dir():
        return None
    steps = sorted(((int(m.group(1)), entry) for entry in folder.iterdir()
                    if entry.is_dir() and (m := _CHECKPOINT.match(entry.name))), reverse=True)
    for _, checkpoint in steps:
        if is_complete_checkpoint(checkpoint):
            return str(checkpoint)
        print(f"Skipping {checkpoint}: incomplete (the run stopped while writing it)"
              + ("; removed" if remove_incomplete else ""))
        if remove_incomplete:
            shutil.rmtree(checkpoint, ignore_errors=True)
    return None


def check_resumable(checkpoint: str | os.PathLike, train_batch_size: int | None, total_steps: int | None) -> None:
    """Refuse, in one line, to resume from `checkpoint` a run it cannot continue: one of another batch size (the
    batches it skips and draws next are another run's), or one whose `total_steps` (None: unknown, a stream) the
    checkpoint has already passed (nothing would train, and its weights would be exported as this run's: a re-run
    of a changed recipe into the same OUT did that). A longer schedule than the checkpoint's continues.
    `train_batch_size` None: not checked (`--auto_find_batch_size` resumes with the checkpoint's)."""
    state = json.loads((Path(checkpoint) / TRAINER_STATE_NAME).read_text(encoding="utf-8"))
    hint = "pass another --output_dir, or the settings of the run that saved it"
    saved_batch = state.get("train_batch_size")
    if None not in (saved_batch, train_batch_size) and saved_batch != train_batch_size:
        raise HfSslError(f"cannot resume from {checkpoint}: it trained batches of {saved_batch} per device, this run "
                         f"has {train_batch_size}; {hint}")
    if total_steps is not None and state["global_step"] > total_steps:
        raise HfSslError(f"cannot resume from {checkpoint}: it has trained {state['global_step']} steps, more than "
                         f"this run's {total_steps}; {hint}")


class OutputLock:
    """An exclusive lock on OUT for the length of a run: a second run into the same OUT is refused with one line
    instead of both writing the same checkpoints. A POSIX record lock (`lockf`) belongs to the process, so the kernel
    releases a crashed (even SIGKILLed) run's lock: no stale lock is ever left to delete by hand. Not `flock`: its
    lock belongs to the open file, which forked DataLoader workers share, and a worker outliving its killed run by
    the seconds it takes to notice kept OUT locked against the re-run. The file stays in OUT (empty,
    hidden, in OUT/checkpoints, which is never pushed); unlinking it on exit would let a third run lock a new inode
    while a second still holds the old one."""

    def __init__(self, out_dir: str | os.PathLike):
        self.out_dir = Path(out_dir)
        self.path = self.out_dir / CHECKPOINTS_SUBDIR / LOCK_FILE
        self._file = None

    def __enter__(self) -> "OutputLock":
        self._created_out_dir = not self.out_dir.exists()
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as e:  # checked before training, not when the first checkpoint is due
            raise HfSslError(f"cannot create --output_dir {self.out_dir}: {e.strerror}") from None
        self._file = open(self.path, "a+")
        try:
            fcntl.lockf(self._file, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as e:
            self._file.close()
            self._file = None
            if e.errno in (errno.EAGAIN, errno.EACCES):
                raise HfSslError(f"another run is writing {self.out_dir} (it holds {self.path}): wait for it to "
                                 "finish, or choose another --output_dir") from None
            raise
        return self

    def __exit__(self, *exc_info) -> None:
        if self._file is None:
            return
        # A run that ends before writing anything (bad input found in the first batch) leaves no OUT behind: the
        # lock was its only file. Removed while still locked, so no other run can have taken it meanwhile.
        if self._created_out_dir and [p for p in self.out_dir.rglob("*") if p.is_file()] == [self.path]:
            shutil.rmtree(self.out_dir, ignore_errors=True)
        fcntl.lockf(self._file, fcntl.LOCK_UN)
        self._file.close()
        self._file = None
