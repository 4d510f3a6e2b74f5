"""Model cards: YAML front matter valid for the Hub (`model-index` with measured results) + a body from
the Jinja template `hf_ssl.model_cards/encoder.md.j2`."""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

from huggingface_hub import EvalResult, ModelCard, ModelCardData

from ..data.datasets import hub_dataset_id
from .plots import plot_entries

if TYPE_CHECKING:
    from transformers import PreTrainedModel

RUN_INFO_FILE = "training_info.json"   # in OUT/ssl/: everything the card says about training
EVAL_RESULTS_FILE = "eval_results.json"  # in OUT/: {protocol: {dataset, split, value, ...}}

PROTOCOL_NAMES = {
    "knn": "kNN (cosine, k={k}, weighted)", "linear": "linear probe (logistic regression)",
    "few-shot": "few-shot linear probe ({shots} labels per class, mean of {episodes} episodes)",
    "finetune": "fine-tuned end to end ({epochs:g} epochs)",
    "zero-shot": "zero-shot top-1 ({num_templates} held-out prompt templates)",
    "retrieval": "retrieval, mean of image-text recall@1/5 both ways",
    "fill-mask": "masked-token top-1 accuracy ({mask_probability:.0%} of tokens masked)",
    "fill-mask-unigram-baseline": "baseline: always the most frequent training token",
    "perplexity": "held-out perplexity", "perplexity-unigram-baseline": "baseline: unigram perplexity",
    "next-token": "next-token top-1 accuracy",
    "accuracy": "top-1 accuracy ({labels_used})",  # a classifier (semi-supervised): with how many labels it learned
}


def protocol_display_name(key: str, entry: dict[str, Any]) -> str:
    template = PROTOCOL_NAMES.get(entry.get("protocol", key), key)
    return template.format(**entry.get("params", {}))


def write_model_card(out_dir: str | Path, run_info: dict[str, Any], eval_results: dict[str, dict[str, Any]]) -> Path:
    """Render `OUT/README.md` from the training record and the evaluation results."""
    out_dir = Path(out_dir)
    results = [
        dict(protocol_name=protocol_display_name(key, entry), dataset=entry["dataset"], split=entry["split"],
             value=entry["value"], metric=entry.get("metric", "accuracy"),
             spread=entry.get("params", {}).get("std"),  # over few-shot episodes
             params=entry.get("params", {}),  # protocol details a template may show (a classifier's per-class accuracy)
             baselines=entry.get("baselines", {}))  # the same protocol on raw pixels, a random-init twin
        for key, entry in sorted(eval_results.items())
    ]
    card_data = ModelCardData(
        library_name="transformers",
        pipeline_tag=run_info.get("pipeline_tag", "image-feature-extraction"),
        license="apache-2.0",
        tags=["self-supervised", "hf-ssl", run_info["method"], *run_info.get("tags", [])],
        datasets=[hub_dataset_id(run_info["dataset"])] if hub_dataset_id(run_info["dataset"]) else None,
        base_model=run_info.get("base_model"),
        model_name=run_info["model_name"],
        eval_results=[
            EvalResult(task_type=run_info.get("task_type", "image-classification"), dataset_type=hub_dataset_id(entry["dataset"]) or entry["dataset"], dataset_name=entry["dataset"],
                       dataset_split=entry["split"], metric_type=entry.get("metric", "accuracy"), metric_value=round(entry["value"], 4),
                       metric_name=protocol_display_name(key, entry))
            for key, entry in sorted(eval_results.items())
        ] or None,
    )
    template = card_template(run_info.get("card_template", "encoder.md.j2"))
    # the repo the card's loading code names: the one it is pushed to once known (`hf-ssl push`), else a placeholder
    repo_id = run_info.get("repo_id") or "ORG/" + run_info["model_name"]
    card = ModelCard.from_template(card_data, template_str=template, results=results,
                                   **{**run_info, "repo_id": repo_id, "plots_section": plots_section(out_dir)})
    path = out_dir / "README.md"
    card.save(path)
    return path


def card_template(name: str) -> str:
    """The text of the card template `name`: from the source checkout this module is imported from when there is one
    (`model_cards/` next to `src/`), so that a checkout or git worktree run with `PYTHONPATH=src` uses its own templates
    rather than those of another checkout installed in editable mode; else the installed `hf_ssl.model_cards`."""
    checkout = Path(__file__).resolve().parents[3] / "model_cards" / name
    if checkout.is_file():
        return checkout.read_text(encoding="utf-8")
    return resources.files("hf_ssl.model_cards").joinpath(name).read_text(encoding="utf-8")


def plots_section(out_dir: Path) -> str:
    """The card's "Plots" section (markdown), linking the PNGs that `OUT/plots` holds now (after `hf-ssl evaluate`
    too, which re-renders the card without drawing); empty without plots. One block shared by every template."""
    entries = plot_entries(out_dir)
    if not entries:
        return ""
    lines = ["## Plots", ""]
    for entry in entries:
        lines += [f"**{entry['title']}.** {entry['caption']}".rstrip(), "", f"![{entry['title']}]({entry['path']})", ""]
    return "\n".join(lines).rstrip() + "\n"


def describe_backbone(backbone: PreTrainedModel) -> str:
    """A short human description for model cards, e.g. "ViT (192 wide, 6 layers, patch 4, 2.7M parameters)"."""
    config = backbone.config
    parts = []
    if getattr(config, "hidden_sizes", None):
        parts.append("widths " + "-".join(str(w) for w in config.hidden_sizes))
    elif getattr(config, "hidden_size", None):
        parts.append(f"{config.hidden_size} wide")
    if getattr(config, "num_hidden_layers", None):
        parts.append(f"{config.num_hidden_layers} layers")
    elif getattr(config, "depths", None):
        parts.append("depths " + "-".join(str(d) for d in config.depths))
    if getattr(config, "patch_size", None):
        parts.append(f"patch {config.patch_size}")
    count = sum(p.numel() for p in backbone.parameters())
    parts.append(f"{count / 1e6:.1f}M parameters" if count >= 1e6 else f"{count / 1e3:.0f}K parameters")
    return f"{type(backbone).__name__.removesuffix('Model')} ({', '.join(parts)})"


def read_json(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}
