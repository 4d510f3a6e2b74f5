"""The code a saved hf-ssl model carries, so that `trust_remote_code=True` loads it where hf_ssl is not installed.

transformers loads remote code from one flat folder: it copies the module named in `auto_map` and, recursively, the
files of its single-dot relative imports (`from .x import y`, `dynamic_module_utils.get_relative_imports`), and
`check_imports` refuses any absolute import that is not installed. hf_ssl's model code is a package
(`modeling/mae/modeling_mae.py` imports `..image_method`, `...nn.masking`, ...), so it cannot be copied as it is
(transformers' own `custom_object_save` would copy `modeling_mae.py` alone, or fail on `from ..x import`).

`write_model_code` writes the model's and its config's modules and, transitively, every hf_ssl module they import,
each under a flat name (`hf_ssl/nn/masking.py` -> `nn_masking.py`; a method's own files keep theirs, the names
`auto_map` uses), with those imports rewritten to the flat names, and points `auto_map` at them. The modules must
import nothing from hf_ssl beyond model code (`modeling/`, `nn/`, `losses/`: no data pipeline, no training): the
contract test loads every method's `OUT/ssl` in a process where `import hf_ssl` fails. Their third-party imports are
torch and transformers, and kornia for the methods that augment inside `forward` on the training device (FixMatch's
and Noisy Student's strong views, `nn/rand_augment.py`): loading those methods' `OUT/ssl` needs kornia installed. The
model at OUT's root, the one users load, is a native transformers class and needs neither.
"""

from __future__ import annotations

import ast
import functools
import importlib
import json
from pathlib import Path
from typing import Sequence

PACKAGE = __name__.split(".")[0]  # "hf_ssl"
METHOD_FOLDERS = "modeling"  # hf_ssl.modeling.<method>.<file>: a method's own modules keep their file names


def flat_module_name(module: str) -> str:
    """`hf_ssl.nn.masking` -> `nn_masking`; `hf_ssl.modeling.mae.modeling_mae` -> `modeling_mae`."""
    parts = module.split(".")[1:]
    if len(parts) == 3 and parts[0] == METHOD_FOLDERS:
        return parts[2]
    return "_".join(parts)


def _imported_module(node: ast.ImportFrom, module: str) -> str | None:
    """The hf_ssl module an `from X import ...` statement of `module` names, or None for other packages."""
    if node.level == 0:
        name = node.module or ""
        return name if name == PACKAGE or name.startswith(PACKAGE + ".") else None
    package = module.split(".")[: -node.level]
    return ".".join(package + ([node.module] if node.module else []))


@functools.lru_cache(maxsize=None)
def _flat_source(module: str) -> tuple[str, tuple[str, ...]]:
    """The source of an hf_ssl module with its hf_ssl imports rewritten to flat single-dot imports, and the hf_ssl
    modules it imports."""
    path = Path(importlib.import_module(module).__file__)
    if path.name == "__init__.py":
        raise ValueError(f"{module} is a package: model code must import names from module files")
    source = path.read_text(encoding="utf-8")
    lines = source.splitlines(keepends=True)
    edits, dependencies = [], []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import) and any(alias.name.split(".")[0] == PACKAGE for alias in node.names):
            raise ValueError(f"{module} line {node.lineno}: use `from {PACKAGE}.x import name` (or a relative import)")
        if not isinstance(node, ast.ImportFrom):
            continue
        target = _imported_module(node, module)
        if target is None:
            continue
        if hasattr(importlib.import_module(target), "__path__"):
            raise ValueError(f"{module} line {node.lineno}: imports from the package {target}; import from its modules")
        names = ", ".join(alias.name + (f" as {alias.asname}" if alias.asname else "") for alias in node.names)
        indent = lines[node.lineno - 1][: node.col_offset]
        edits.append((node.lineno, node.end_lineno, f"{indent}from .{flat_module_name(target)} import {names}\n"))
        dependencies.append(target)
    for start, end, text in sorted(edits, reverse=True):
        lines[start - 1 : end] = [text]
    return "".join(lines), tuple(dependencies)


def model_code_files(modules: Sequence[str]) -> dict[str, str]:
    """`{file name: source}` of `modules` and every hf_ssl module they import, transitively, flattened."""
    files: dict[str, str] = {}
    origin: dict[str, str] = {}
    pending = list(modules)
    while pending:
        module = pending.pop()
        name = flat_module_name(module) + ".py"
        if name in origin:
            if origin[name] != module:
                raise ValueError(f"{module} and {origin[name]} would both be written as {name}")
            continue
        source, dependencies = _flat_source(module)
        files[name], origin[name] = source, module
        pending.extend(dependencies)
    return files


def write_model_code(model_class: type, folder: str | Path, auto_classes: Sequence[str]) -> list[Path]:
    """Write the code of `model_class` and its config class into `folder` (where `save_pretrained` wrote
    `config.json`) and set `auto_map` there: `AutoConfig` and each of `auto_classes` (e.g. `AutoModel`)."""
    folder = Path(folder)
    config_class = model_class.config_class
    written = []
    for name, source in model_code_files([model_class.__module__, config_class.__module__]).items():
        (folder / name).write_text(source, encoding="utf-8")
        written.append(folder / name)
    config_path = folder / "config.json"
    config = json.loads(config_path.read_text(encoding="utf-8"))
    config["auto_map"] = {
        "AutoConfig": f"{flat_module_name(config_class.__module__)}.{config_class.__name__}",
        **{auto: f"{flat_module_name(model_class.__module__)}.{model_class.__name__}" for auto in auto_classes},
    }
    config_path.write_text(json.dumps(config, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    return written


__all__ = ["flat_module_name", "model_code_files", "write_model_code"]
