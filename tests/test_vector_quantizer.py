"""The cosine-codebook vector quantizer: lookup, straight-through gradients, EMA and loss-based codebook updates,
k-means initialisation, dead-code restarts, usage statistics and checkpointed state."""

import math

import pytest
import torch
import torch.nn.functional as F

from hf_ssl.nn.vector_quantizer import VectorQuantizer, perplexity


def quantizer(update="ema", num_codes=16, code_dim=4, **kwargs) -> VectorQuantizer:
    torch.manual_seed(0)
    defaults = dict(kmeans_init_iterations=0, restart_dead_codes=False)
    return VectorQuantizer(num_codes, code_dim, update=update, **{**defaults, **kwargs})


@pytest.mark.parametrize("update", ["ema", "loss"])
def test_lookup_is_the_cosine_argmax(update):
    vq = quantizer(update, num_codes=37, code_dim=5)
    if update == "loss":   # a trained raw codebook has arbitrary norms: the lookup must ignore them
        with torch.no_grad():
            vq.codebook.mul_(torch.rand(37, 1) * 10 + 0.1)
    vectors = torch.randn(6, 11, 5) * 3
    ids = vq.lookup(vectors)
    codebook = vq.codebook.detach().double()
    for b in range(6):
        for n in range(11):
            v = vectors[b, n].double()
            cosines = [float(v @ codebook[k] / (v.norm() * codebook[k].norm())) for k in range(37)]
            assert ids[b, n].item() == max(range(37), key=cosines.__getitem__)
    assert torch.equal(vq(vectors).ids, ids)


def test_straight_through_estimator():
    """Forward: the code itself. Backward: the gradient of the output reaches the input as if quantization were
    the identity on the normalised input."""
    vq = quantizer(commitment_weight=0.0)
    vectors = torch.randn(3, 7, 4, requires_grad=True)
    weights = torch.randn(3, 7, 4)
    output = vq(vectors)
    torch.testing.assert_close(output.quantized, vq.normalized_codebook()[output.ids])
    (output.quantized * weights).sum().backward()
    expected_input = vectors.detach().clone().requires_grad_(True)
    (F.normalize(expected_input, dim=-1) * weights).sum().backward()
    torch.testing.assert_close(vectors.grad, expected_input.grad)
    assert vectors.grad.abs().sum() > 0


def test_ema_codebook_gets_no_gradient_and_commitment_pulls_inputs_to_their_codes():
    vq = quantizer("ema")
    assert "codebook" in dict(vq.named_buffers()) and not list(vq.parameters())
    vectors = torch.randn(2, 5, 4, requires_grad=True)
    output = vq(vectors)
    output.loss.backward()
    normalised = F.normalize(vectors.detach(), dim=-1)
    codes = vq.normalized_codebook()[output.ids]
    assert output.loss.item() == pytest.approx((normalised - codes).pow(2).sum(-1).mean().item(), rel=1e-5)
    assert vectors.grad.abs().sum() > 0


def test_loss_codebook_learns_only_from_its_own_term():
    """With codebook_update="loss", the codebook's gradient is that of ||sg[z] - e||^2 alone: a loss on the
    quantized output (the decoder's) passes straight through to the input and never reaches the codebook."""
    vq = quantizer("loss", commitment_weight=0.25)
    vectors = torch.randn(2, 9, 4, requires_grad=True)
    output = vq(vectors)
    downstream = (output.quantized * torch.randn_like(output.quantized)).sum()
    (downstream + output.loss).backward()
    codebook = vq.codebook.detach().clone().requires_grad_(True)
    codes = F.normalize(codebook, dim=-1)[output.ids]
    (F.normalize(vectors.detach(), dim=-1) - codes).pow(2).sum(-1).mean().backward()
    torch.testing.assert_close(vq.codebook.grad, codebook.grad)


def test_ema_update_matches_the_formula_by_hand():
    decay = 0.9
    vq = quantizer(decay=decay, num_codes=6, code_dim=3)
    before = vq.codebook.clone().double()
    batches = [torch.randn(5, 3), torch.randn(4, 3)]   # two micro-batches of one optimizer step (accumulation)
    ids = [vq(batch).ids for batch in batches]
    vq.update()
    inputs = torch.cat([F.normalize(b, dim=-1) for b in batches]).double()
    ids = torch.cat(ids)
    for k in range(6):
        assigned = [inputs[i] for i in range(len(ids)) if ids[i] == k]
        if not assigned:
            expected = before[k]                                        # unused codes do not move
        else:
            mean = sum(assigned) / len(assigned)
            moved = decay * before[k] + (1 - decay) * mean / mean.norm()
            expected = moved / moved.norm()
        torch.testing.assert_close(vq.codebook[k].double(), expected, atol=1e-6, rtol=1e-6)
    assert int(vq.num_updates) == 1


def test_staging_happens_only_in_training_with_gradients_and_update_without_staging_is_a_no_op():
    vq = quantizer()
    before = vq.codebook.clone()
    vq.eval()
    vq(torch.randn(4, 4))
    with torch.no_grad():
        vq.train()(torch.randn(4, 4))
    assert vq.update() == {} and torch.equal(vq.codebook, before) and int(vq.num_updates) == 0


def test_dead_code_restart_replaces_only_dead_codes_with_recent_inputs():
    vq = quantizer(num_codes=8, code_dim=3, restart_dead_codes=True, usage_window=3)
    with torch.no_grad():   # two codes along +x and +y take every input; the other six are never used
        vq.codebook.copy_(F.normalize(torch.cat([torch.eye(3)[:2], -torch.ones(6, 3) + 0.1 * torch.randn(6, 3)]), dim=-1))
    inputs = torch.cat([torch.rand(10, 1) + 1, torch.rand(10, 2) * 0.1], 1)   # near +x
    inputs = torch.cat([inputs, inputs[:, [1, 0, 2]]])                        # and near +y
    for step in range(1, 4):
        before = vq.codebook.clone()
        vq(inputs)
        stats = vq.update()
        changed = torch.nonzero((vq.codebook - before).abs().sum(1) > 0).flatten().tolist()
        if step < 3:
            assert stats["codebook_restarts"] == 0 and set(changed) <= {0, 1}   # only the EMA of the used codes
        else:
            assert stats["codebook_restarts"] == 6
            assert set(changed) >= set(range(2, 8))
            staged = F.normalize(inputs, dim=-1)
            for k in range(2, 8):   # each restarted code is one of the step's (normalised) inputs
                assert (staged - vq.codebook[k]).abs().sum(1).min() < 1e-6
    assert stats["codebook_live_share"] == pytest.approx(2 / 8)
    # restarted codes get a fresh window: they are not restarted again at once
    vq(inputs)
    assert vq.update()["codebook_restarts"] == 0


def test_kmeans_initialisation_runs_spherical_kmeans_on_the_first_steps_inputs():
    vq = quantizer(num_codes=6, code_dim=3, kmeans_init_iterations=20, num_staged_samples=1000)   # all inputs
    random_codebook = vq.codebook.clone()
    centres = F.normalize(torch.tensor([[1.0, 0, 0], [0, 1.0, 0], [0, 0, 1.0], [-1.0, -1.0, -1.0]]), dim=-1)
    inputs = F.normalize(centres.repeat(50, 1) + 0.05 * torch.randn(200, 3), dim=-1)
    vq(inputs)
    stats = vq.update()
    assert not bool(vq.needs_init) and stats["codebook_restarts"] == 0
    codebook = vq.codebook
    torch.testing.assert_close(codebook.norm(dim=-1), torch.ones(6))
    # converged: every code that has inputs is the normalised mean of the inputs nearest to it
    nearest = (inputs @ codebook.T).argmax(1)
    for k in nearest.unique().tolist():
        torch.testing.assert_close(codebook[k], F.normalize(inputs[nearest == k].mean(0), dim=0), atol=1e-5, rtol=0)
    fit = (inputs @ codebook.T).max(1).values.mean()
    assert fit > 0.95 and fit > (inputs @ random_codebook.T).max(1).values.mean()


def test_usage_statistics():
    assert perplexity(torch.tensor([5.0, 5.0, 5.0, 5.0])) == pytest.approx(4.0)
    assert perplexity(torch.tensor([7.0, 0.0, 0.0])) == pytest.approx(1.0)
    assert perplexity(torch.tensor([1.0, 3.0])) == pytest.approx(math.exp(-(0.25 * math.log(0.25) + 0.75 * math.log(0.75))))
    vq = quantizer(num_codes=8, code_dim=3)
    with torch.no_grad():
        vq.codebook.copy_(F.normalize(torch.randn(8, 3), dim=-1))
    inputs = vq.codebook[[0, 0, 1, 2]] * 2.0        # exactly on codes 0, 0, 1, 2
    vq(inputs)
    stats = vq.update()
    assert stats["codebook_live_share"] == pytest.approx(3 / 8)
    assert stats["codebook_perplexity"] == pytest.approx(perplexity(torch.tensor([2.0, 1.0, 1.0])))


def test_state_is_in_buffers_and_survives_a_state_dict_round_trip():
    vq = quantizer(num_codes=8, code_dim=3, restart_dead_codes=True, usage_window=2, kmeans_init_iterations=3)
    for _ in range(3):
        vq(torch.randn(16, 3))
        vq.update()
    state = vq.state_dict()
    assert {"codebook", "num_updates", "last_used", "last_restarted", "needs_init"} <= set(state)
    fresh = VectorQuantizer(8, 3, restart_dead_codes=True, usage_window=2, kmeans_init_iterations=3)
    fresh.load_state_dict(state)
    for name, value in state.items():
        assert torch.equal(fresh.state_dict()[name], value), name
    assert not bool(fresh.needs_init)     # a reloaded codebook is not re-initialised
