"""LazyAdam (`hf_ssl.nn.lazy_adam`), word2vec's optimizer: over steps that touch different rows, with a row
repeated within a gradient, every touched row follows Adam computed here in float64 (moments of that row only,
bias correction by the parameter's step count, eps added to the uncorrected root); untouched rows and their
moments stay bit-identical."""

import math

import torch

from hf_ssl.nn.lazy_adam import LazyAdam


def test_lazy_adam_is_adam_on_the_touched_rows_and_leaves_the_others_bit_identical():
    torch.manual_seed(0)
    lr, beta1, beta2, eps = 0.1, 0.9, 0.99, 1e-3
    weight = torch.nn.Parameter(torch.randn(6, 3))
    optimizer = LazyAdam([weight], lr=lr, betas=(beta1, beta2), eps=eps)
    initial = weight.detach().clone()
    expected = initial.double()
    m, v = torch.zeros(6, 3, dtype=torch.float64), torch.zeros(6, 3, dtype=torch.float64)
    for t, rows in enumerate([[1, 4, 1], [2, 4], [1, 1, 5, 2]], start=1):  # row 1 twice, then untouched, ...
        values = torch.randn(len(rows), 3)
        before = weight.detach().clone()
        state_before = {k: v_.clone() for k, v_ in optimizer.state[weight].items() if torch.is_tensor(v_)}
        weight.grad = torch.sparse_coo_tensor(torch.tensor([rows]), values, (6, 3))  # uncoalesced
        optimizer.step()
        touched = sorted(set(rows))
        for row in touched:
            g = sum(values[i].double() for i, r in enumerate(rows) if r == row)
            for d in range(3):
                m[row, d] = beta1 * m[row, d] + (1 - beta1) * g[d]
                v[row, d] = beta2 * v[row, d] + (1 - beta2) * g[d] ** 2
                step = lr * math.sqrt(1 - beta2**t) / (1 - beta1**t)
                expected[row, d] -= step * m[row, d] / (math.sqrt(v[row, d]) + eps)
        torch.testing.assert_close(weight.detach()[touched].double(), expected[touched], rtol=0, atol=1e-6)
        torch.testing.assert_close(optimizer.state[weight]["exp_avg"][touched].double(), m[touched], rtol=0, atol=1e-6)
        untouched = [r for r in range(6) if r not in touched]
        assert torch.equal(weight.detach()[untouched], before[untouched])
        for name, tensor in state_before.items():
            assert torch.equal(optimizer.state[weight][name][untouched], tensor[untouched])
    assert optimizer.state[weight]["step"] == 3
    assert torch.equal(weight.detach()[[0, 3]], initial[[0, 3]])  # never touched
