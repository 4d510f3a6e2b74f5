"""The package's shape, checked on its source: no import cycle, shared code calls the method contract instead of
probing models, and model code imports only what `OUT/ssl` can carry (torch/transformers-only hf_ssl modules)."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import hf_ssl

PACKAGE = Path(hf_ssl.__file__).parent
SHARED = ("training", "hub", "evaluation", "modalities")  # code that must know no method
MODEL_CODE = ("modeling", "nn", "losses")  # what hub.remote_code may copy into OUT/ssl


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports(path: Path, top_level_only: bool) -> set[str]:
    """The hf_ssl modules a file imports (with `if TYPE_CHECKING:` blocks, which are cycles for readers too)."""
    name, package = module_name(path), path.name == "__init__.py"
    tree = ast.parse(path.read_text(encoding="utf-8"))
    nodes = []
    for node in tree.body if top_level_only else ast.walk(tree):
        nodes.extend(node.body if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test) else [node])
    found = set()
    for node in nodes:
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = name.split(".") if package else name.split(".")[:-1]
                base = base[: len(base) - node.level + 1]
                if node.module:
                    found.add(".".join(base + [node.module]))
                else:  # from . import a, b: the submodules
                    found |= {".".join(base + [alias.name]) for alias in node.names}
            elif (node.module or "").startswith("hf_ssl"):
                found.add(node.module)
        elif isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names if alias.name.startswith("hf_ssl")}
    return found


def source_files(*folders: str) -> list[Path]:
    return sorted(p for folder in folders for p in (PACKAGE / folder).rglob("*.py"))


def test_no_import_cycle():
    graph = {module_name(p): imports(p, top_level_only=True) for p in PACKAGE.rglob("*.py")}
    state: dict[str, int] = {}  # 1: on the current path, 2: done

    def visit(module: str, path: list[str]) -> None:
        state[module] = 1
        for target in sorted(graph.get(module, ())):
            if target not in graph:
                continue
            assert state.get(target) != 1, "import cycle: " + " -> ".join(path[path.index(target):] + [target])
            if target not in state:
                visit(target, path + [target])
        state[module] = 2

    for module in sorted(graph):
        if module not in state:
            visit(module, [module])


def test_shared_code_calls_the_contract_instead_of_probing_models():
    probe = re.compile(r"(getattr|hasattr)\((model|unwrap_model\(|self\.model|trainer\.model|encoder|loaded)\b")
    hits = [f"{p.relative_to(PACKAGE)}:{i}" for p in source_files(*SHARED)
            for i, line in enumerate(p.read_text(encoding="utf-8").splitlines(), 1) if probe.search(line)]
    assert not hits, hits


def test_shared_code_never_branches_on_a_method_name():
    branch = re.compile(r"(method|method_name|method\.name)\s*(==|!=|in)\s*[\"'(\[]")
    hits = [f"{p.relative_to(PACKAGE)}:{i}" for p in source_files(*SHARED)
            for i, line in enumerate(p.read_text(encoding="utf-8").splitlines(), 1) if branch.search(line)]
    assert not hits, hits


def test_model_code_imports_only_model_code():
    """Everything `OUT/ssl` may carry imports, from hf_ssl, only other model code and `errors`: no data pipeline,
    no training, no hub (augmentation a model runs in its own forward lives in `nn/`). The methods' `__init__.py` (presets, collators, registration) are not model code."""
    allowed = tuple(f"hf_ssl.{folder}" for folder in MODEL_CODE) + ("hf_ssl.errors",)
    wrong = {}
    for path in source_files(*MODEL_CODE):
        if path.name == "__init__.py":
            continue
        bad = [m for m in imports(path, top_level_only=False) if not m.startswith(allowed)]
        if bad:
            wrong[str(path.relative_to(PACKAGE))] = bad
    assert not wrong, wrong


def test_a_plain_transformers_folder_belongs_to_exactly_one_modality():
    """`hf-ssl evaluate` on a folder hf-ssl did not make picks the modality that recognizes its config."""
    from transformers import BertConfig, CLIPConfig, ConvNextConfig, GPT2Config, ResNetConfig, ViTConfig

    from hf_ssl.modalities import MODALITIES
    from hf_ssl.modeling.word2vec import Word2VecConfig

    expected = {BertConfig: "text", GPT2Config: "text", ViTConfig: "image", ResNetConfig: "image",
                ConvNextConfig: "image", CLIPConfig: "image-text", Word2VecConfig: "words"}
    for config_class, modality in expected.items():
        claims = [m.name for m in MODALITIES.values() if m.recognizes(config_class())]
        assert claims == [modality], (config_class.__name__, claims)
