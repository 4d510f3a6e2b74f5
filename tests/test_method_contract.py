"""The method contract, checked for every registered method (a method added later is covered without editing this
file; it adds only the tests of its own formulas).

Each method's `tiny` preset is trained for one step by the real `hf-ssl pretrain` (its prerequisites first: BEiT's
visual tokenizer), on its modality's default data. Then, for each:
- the config round-trips through save_pretrained / from_pretrained;
- a forward pass on a batch of the method's own data pipeline gives a finite loss, and one gradient step changes
  trainable weights; the per-step hook runs and records the position in training;
- save and reload give the same weights and buffers;
- in a process where `import hf_ssl` fails: the export at OUT's root loads with plain transformers, and `OUT/ssl`
  loads with `trust_remote_code=True` and gives the same loss as hf-ssl's own classes for the same random draws.
"""

from __future__ import annotations

import json
import math
import random
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file
from torch.utils._pytree import tree_flatten
from transformers.utils import ModelOutput

from conftest import run_python
from hf_ssl.modalities import DataSpec, StartingPoint, get_modality
from hf_ssl.modeling.method_model import SSL_SUBDIR, MethodModel
from hf_ssl.registry import METHODS

NAMES = sorted(METHODS)
BATCH = 4


def training_order() -> list[str]:
    """Every method after the methods its prerequisites name."""
    order: list[str] = []

    def visit(name: str) -> None:
        for dependency in METHODS[name].prerequisites.values():
            visit(dependency)
        if name not in order:
            order.append(name)

    for name in NAMES:
        visit(name)
    return order


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict[str, Path]:
    """name -> OUT of a one-step tiny run of every registered method."""
    from hf_ssl.cli import main

    root = tmp_path_factory.mktemp("contract")
    outs: dict[str, Path] = {}
    for name in training_order():
        method = METHODS[name]
        assert "tiny" in method.presets, f"{name} has no tiny preset (the contract's test size)"
        flags = [arg for flag, dependency in method.prerequisites.items() for arg in (f"--{flag}", str(outs[dependency]))]
        outs[name] = root / name
        main(["pretrain", "--method", name, "--preset", "tiny", "--max_steps", "1", "--logging_steps", "1",
              "--eval_protocols", "none", "--seed", "0", "--output_dir", str(outs[name]), *flags])
    return outs


def pipeline_batch(name: str, out: Path) -> dict[str, torch.Tensor]:
    """A batch of the method's own data pipeline: its modality's data, prepared as for training (the tokenizer or
    vocabulary the run cached is reused), through the method's collator."""
    from transformers import AutoConfig

    method = METHODS[name]
    config = AutoConfig.from_pretrained(out / SSL_SUBDIR)
    modality = get_modality(method.modality)
    run_info = json.loads((out / SSL_SUBDIR / "training_info.json").read_text())
    dataset = modality.load_dataset(DataSpec(run_info["dataset"]))
    prepared = modality.prepare(config, dataset, StartingPoint(), str(out / "checkpoints"))
    torch.manual_seed(0)
    return method.make_collator(config)([prepared.train_dataset[i] for i in range(BATCH)])


def seeded_output(model: torch.nn.Module, batch: dict[str, torch.Tensor]) -> ModelOutput:
    torch.manual_seed(0)
    random.seed(0)
    return model(**batch)


def seeded_loss(model: torch.nn.Module, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    return seeded_output(model, batch).loss


@pytest.fixture(scope="module")
def batches(runs) -> dict[str, dict[str, torch.Tensor]]:
    return {name: pipeline_batch(name, out) for name, out in runs.items()}


@pytest.mark.parametrize("name", NAMES)
def test_config_round_trip(name, runs, tmp_path):
    from transformers import AutoConfig

    config = AutoConfig.from_pretrained(runs[name] / SSL_SUBDIR)
    assert isinstance(config, METHODS[name].config_class)
    config.save_pretrained(tmp_path)
    again = AutoConfig.from_pretrained(tmp_path)
    saved, loaded = config.to_dict(), again.to_dict()
    for entry in (saved, loaded):
        entry.pop("_name_or_path")  # where each was loaded from
    assert loaded == saved


@pytest.mark.parametrize("name", NAMES)
def test_forward_loss_gradient_step_hook_and_reload(name, runs, batches, tmp_path):
    model = METHODS[name].model_class.from_pretrained(runs[name] / SSL_SUBDIR)
    assert isinstance(model, MethodModel)
    assert int(model.num_optimizer_steps) == 1 and model.progress.item() == 1.0  # the run's one step, recorded
    model.train()
    output = seeded_output(model, batches[name])
    # The output flattens as the pytree of a dict (FLOP counting, torch.compile): no field hides a dict method
    leaves, _ = tree_flatten(output)
    assert any(leaf is output.loss for leaf in leaves)
    loss = output.loss
    assert loss.ndim == 0 and math.isfinite(loss.item()), loss
    loss.backward()
    trainable = {n: p.detach().clone() for n, p in model.named_parameters() if p.requires_grad}
    assert trainable and any(p.grad is not None and p.grad.abs().sum() > 0 for p in model.parameters())
    torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.1).step()
    model.optimizer_step_done(2, 1.0)
    changed = [n for n, p in model.named_parameters() if p.requires_grad and not torch.equal(p, trainable[n])]
    assert changed, "one gradient step changed no weight"
    assert int(model.num_optimizer_steps) == 2

    model.save_pretrained(tmp_path)
    reloaded = METHODS[name].model_class.from_pretrained(tmp_path)
    state, loaded = model.state_dict(), reloaded.state_dict()
    assert state.keys() == loaded.keys()
    different = [k for k in state if not torch.equal(state[k], loaded[k])]
    assert not different, different


def test_exports_load_and_give_the_same_loss_where_hf_ssl_is_blocked(runs, batches, tmp_path):
    expected = {}
    for name, out in runs.items():
        model = METHODS[name].model_class.from_pretrained(out / SSL_SUBDIR).train()
        with torch.no_grad():
            expected[name] = seeded_loss(model, batches[name]).item()
        save_file({k: v.contiguous() for k, v in batches[name].items()}, tmp_path / f"{name}.safetensors")
    (tmp_path / "expected.json").write_text(json.dumps({n: str(o) for n, o in runs.items()}))
    result = run_python(f"""
        import json, random
        import torch
        from safetensors.torch import load_file
        from transformers import AutoModel
        runs = json.load(open({str(tmp_path / "expected.json")!r}))
        losses = {{}}
        for name, out in runs.items():
            # what users load at the root: the native encoder / LM (word2vec: its own class, with its code); only
            # the pooler AutoModel adds to a ViT is new
            root, info = AutoModel.from_pretrained(out, trust_remote_code=True, output_loading_info=True)
            assert not [k for k in info["missing_keys"] if "pooler" not in k], (name, info["missing_keys"])
            ssl = AutoModel.from_pretrained(out + "/ssl", trust_remote_code=True).train()
            assert "hf_ssl" not in type(ssl).__module__, type(ssl).__module__
            batch = load_file({str(tmp_path)!r} + f"/{{name}}.safetensors")
            torch.manual_seed(0)
            random.seed(0)
            with torch.no_grad():
                losses[name] = ssl(**batch).loss.item()
        print(json.dumps(losses))
    """, timeout=600)
    losses = json.loads(result.stdout.strip().splitlines()[-1])
    assert losses.keys() == expected.keys()
    for name in expected:
        assert losses[name] == pytest.approx(expected[name], rel=1e-5, abs=1e-6), name
