"""CLIP's loss against the notes' pseudocode computed with loops in float64, against transformers' CLIPModel
loss on the same similarities, a gradient check, and the learned temperature's clipping."""

import math

import pytest
import torch
from transformers.models.clip.modeling_clip import image_text_contrastive_loss as transformers_clip_loss

from hf_ssl.losses.clip import INITIAL_LOG_LOGIT_SCALE, MAX_LOGIT_SCALE, clip_logit_scale, clip_loss


def pseudocode_loss(images: torch.Tensor, texts: torch.Tensor, scale: float) -> float:
    """The notes' (seeds/004) pseudocode, one element at a time: I_e, T_e l2-normalised rows;
    logits = I_e T_e^T exp(t); loss = (CE over axis 0 + CE over axis 1) / 2 with labels arange(n)."""
    n = images.shape[0]
    norm = lambda v: [x / math.sqrt(sum(y * y for y in v)) for x in v]  # noqa: E731
    i_e = [norm(images[i].tolist()) for i in range(n)]
    t_e = [norm(texts[i].tolist()) for i in range(n)]
    logits = [[scale * sum(a * b for a, b in zip(i_e[i], t_e[j])) for j in range(n)] for i in range(n)]
    # axis=1: for image i, a softmax over the texts j; axis=0: for text j, a softmax over the images i
    loss_rows = sum(-logits[i][i] + math.log(sum(math.exp(logits[i][j]) for j in range(n))) for i in range(n)) / n
    loss_cols = sum(-logits[j][j] + math.log(sum(math.exp(logits[i][j]) for i in range(n))) for j in range(n)) / n
    return (loss_rows + loss_cols) / 2


def pairs(n=6, d=5, seed=0):
    g = torch.Generator().manual_seed(seed)
    images = torch.randn(n, d, generator=g, dtype=torch.float64)
    texts = images + 0.8 * torch.randn(n, d, generator=g, dtype=torch.float64)  # related pairs, unnormalised
    return images * 3, texts


@pytest.mark.parametrize("scale", [1.0, 1 / 0.07, 100.0])
def test_loss_matches_the_pseudocode_in_float64(scale):
    images, texts = pairs()
    assert clip_loss(images, texts, scale).item() == pytest.approx(pseudocode_loss(images, texts, scale), rel=1e-10)


def test_loss_matches_transformers_clip_model_loss():
    images, texts = pairs(n=8)
    scale = 1 / 0.07
    i_e, t_e = torch.nn.functional.normalize(images, dim=1), torch.nn.functional.normalize(texts, dim=1)
    # CLIPModel: logits_per_text = t_e @ i_e^T * scale; loss = image_text_contrastive_loss(logits_per_text)
    expected = transformers_clip_loss(scale * t_e @ i_e.T)
    torch.testing.assert_close(clip_loss(images, texts, scale), expected)


def test_pairing_and_scale_matter():
    images, texts = pairs()
    loss = clip_loss(images, texts, 10.0).item()
    assert clip_loss(images, texts.roll(1, 0), 10.0).item() > loss + 0.5  # wrong pairs cost more
    assert clip_loss(images, texts, 20.0).item() != pytest.approx(loss, rel=1e-3)


def test_gradients_match_finite_differences():
    images, texts = pairs(n=4, d=3)
    images.requires_grad_()
    texts.requires_grad_()
    scale = torch.tensor(5.0, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda i, t, s: clip_loss(i, t, s), (images, texts, scale))


def test_temperature_starts_at_0_07_and_its_scale_is_clipped_at_100():
    assert math.exp(INITIAL_LOG_LOGIT_SCALE) == pytest.approx(1 / 0.07)
    t = torch.tensor(INITIAL_LOG_LOGIT_SCALE, requires_grad=True)
    scale = clip_logit_scale(t)
    scale.backward()
    assert scale.item() == pytest.approx(1 / 0.07) and t.grad.item() == pytest.approx(1 / 0.07)  # d exp(t)/dt
    big = torch.tensor(math.log(500.0), requires_grad=True)
    clipped = clip_logit_scale(big)
    clipped.backward()
    assert clipped.item() == MAX_LOGIT_SCALE and big.grad.item() == 0.0  # no push beyond the clip
