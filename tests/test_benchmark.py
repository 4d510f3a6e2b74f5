"""`hf-ssl benchmark`: one run measures the method's step beside its reference implementation, its data pipeline,
`hf-ssl pretrain` end to end and peak memory; the two implementations of MAE count the same FLOPs."""

import json

from conftest import run_cli


def test_benchmark_measures_mae_beside_its_reference():
    result = run_cli("benchmark", "--method", "mae", "--preset", "tiny", "--steps", "2", "--e2e_steps", "2",
                     "--reference", "--json")
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(result.stdout[result.stdout.index("{"):])
    ours, reference = report["model_step"]
    assert ours["name"] == "hf-ssl MAE" and reference["name"] == "ViTMAEForPreTraining"
    # the same architecture and weights: the same work per step, counted independently of either implementation
    assert ours["flops_per_step"] == reference["flops_per_step"] > 0
    for timing in (ours, reference):
        assert timing["seconds_per_step"] > 0 and 0 < timing["mfu"] < 1.5
        assert abs(timing["examples_per_second"] * timing["seconds_per_step"] - report["batch_size"]) < 1e-6
    assert 0 < report["data"]["share_if_not_overlapped"] < 1
    assert report["end_to_end"]["examples_per_second"] > 0 and 0 <= report["end_to_end"]["data_wait_share"] <= 1
    assert report["peak_memory_mb"] > 0 and report["matmul_peak_flops"] > 1e8


def test_benchmark_without_a_reference_is_one_line():
    result = run_cli("benchmark", "--method", "simclr", "--preset", "tiny", "--reference")
    assert result.returncode == 2
    expected = "hf-ssl: error: simclr has no reference implementation to compare with (--reference)"
    assert result.stderr.strip() == expected
