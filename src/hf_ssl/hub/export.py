"""Writing OUT, the Hub-ready folder: the encoder in its native transformers class at the root (what
users load without hf-ssl), its image processor, and the full pretraining model in `ssl/`.

Everything is written into a hidden staging folder first and moved into place at the end, so a
failure never leaves a half-written OUT.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any, Sequence


from ..modeling.method_model import SSL_SUBDIR, MethodModel
from ..registry import Method
from .card import RUN_INFO_FILE
from .remote_code import write_model_code

# JSON files of OUT that hold vocabularies, not settings: never paths, and too large to walk for nothing
LARGE_JSON_FILES = {"tokenizer.json", "vocab.json"}


def image_processor_for(image_size: int, image_mean: Sequence[float], image_std: Sequence[float]):
    """The processor that reproduces hf-ssl's input pipeline with plain transformers: convert to RGB (L,
    RGBA, P all work), bilinear resize to a square, rescale to [0, 1], normalise (a `ViTImageProcessor`)."""
    # imported here: importing the class logs a torchvision warning, which the CLI filters only once it runs
    from transformers import ViTImageProcessor

    return ViTImageProcessor(
        do_convert_rgb=True, do_resize=True, size={"height": image_size, "width": image_size}, resample=2,
        do_rescale=True, rescale_factor=1 / 255, do_normalize=True, image_mean=list(image_mean),
        image_std=list(image_std),
    )


def export_pretrained(
    model: MethodModel, method: Method, out_dir: str | os.PathLike, run_info: dict[str, Any], processor: Any,
) -> None:
    """Write the exported model (root) with its processor (an image processor, a tokenizer, a CLIP processor),
    and the pretraining model + run record (`ssl/`) into OUT. `ssl/` carries its code (`hub.remote_code`), and so
    does the root when the exported model is hf-ssl's own class (word2vec, which has no native transformers class)."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".export-", dir=out_dir))
    try:
        exported = model.exported_model()
        exported.save_pretrained(staging)
        if isinstance(exported, MethodModel):
            write_model_code(type(exported), staging, method.auto_classes[:1])
        processor.save_pretrained(staging)
        # files a method adds next to its export (word2vec: vectors.txt in the word2vec text format)
        model.export_extra_files(staging, processor)
        model.save_pretrained(staging / SSL_SUBDIR)
        write_model_code(type(model), staging / SSL_SUBDIR, method.auto_classes)
        (staging / SSL_SUBDIR / RUN_INFO_FILE).write_text(json.dumps(run_info, indent=2), encoding="utf-8")
        for config_file in staging.rglob("*.json"):
            if config_file.name not in LARGE_JSON_FILES:
                _strip_local_paths(config_file)
        apply_umask(staging)
        for entry in staging.iterdir():
            target = out_dir / entry.name
            if target.is_dir():
                shutil.rmtree(target)
            os.replace(entry, target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def current_umask() -> int:
    """The process's umask (read from /proc where it is, so that it is never changed, even for a moment)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except OSError:
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def apply_umask(root: str | os.PathLike) -> None:
    """Give every file and folder under `root` the permissions a plain `open`/`mkdir` gives under the umask.
    transformers' `save_pretrained` writes `model.safetensors` through a temporary file, mode 0600 whatever the
    umask (checked in 5.25), so an OUT shared by a team would hold weights only their owner can read."""
    mask = current_umask()
    for path in Path(root).rglob("*"):
        if not path.is_symlink():
            os.chmod(path, (0o777 if path.is_dir() else 0o666) & ~mask)


def portable_value(value: Any) -> Any:
    """A setting as OUT may hold it: a local path (a tokenizer, a teacher, a checkpoint the run started from) by its
    last component only. A published folder must not leak the training machine's layout, and the path would mean
    nothing on the user's machine; what the path pointed to is saved inside OUT (the tokenizer's and the teacher's
    weights are part of the pretraining model)."""
    if isinstance(value, str) and len(value) > 1 and (os.path.isabs(value) or os.sep in value and os.path.exists(value)):
        return Path(value).name or value
    return value


def _strip_local_paths(json_file: Path) -> None:
    def portable(node: Any) -> Any:
        if isinstance(node, dict):
            return {key: portable(item) for key, item in node.items()}
        if isinstance(node, list):
            return [portable(item) for item in node]
        return portable_value(node)

    data = json.loads(json_file.read_text(encoding="utf-8"))
    cleaned = portable(data)
    if cleaned != data:
        json_file.write_text(json.dumps(cleaned, indent=2, sort_keys=True) + "\n", encoding="utf-8")


def write_json_atomic(path: Path, data: Any) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(data, indent=2), encoding="utf-8")
    os.replace(tmp, path)
