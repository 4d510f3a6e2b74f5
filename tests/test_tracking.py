"""Experiment tracking: `--report_to tensorboard` as in any Trainer script, the event file holding what hf-ssl logs
beside Trainer's own scalars (the collapse monitor's signals, the share of time spent waiting for data)."""

import pytest

from conftest import run_cli


def test_tensorboard_event_file_holds_the_logged_scalars(tmp_path):
    pytest.importorskip("tensorboard", reason="the test extras install tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    out = tmp_path / "out"
    result = run_cli("pretrain", "--method", "simclr", "--preset", "tiny", "--backbone", "resnet-test", "--max_steps",
                     "3", "--logging_steps", "1", "--report_to", "tensorboard",
                     "--save_strategy", "no", "--eval_protocols", "none", "--output_dir", str(out))
    assert result.returncode == 0, result.stderr[-3000:]
    # where Trainer puts them (its output_dir is OUT/checkpoints): OUT/checkpoints/runs/<date>_<host>/
    event_files = list((out / "checkpoints" / "runs").rglob("events.out.tfevents.*"))
    assert len(event_files) == 1, event_files
    events = EventAccumulator(str(event_files[0]))
    events.Reload()
    tags = set(events.Tags()["scalars"])
    for name in ("loss", "learning_rate", "grad_norm", "embedding_std", "embedding_rankme", "data_wait_share"):
        assert f"train/{name}" in tags, sorted(tags)
    assert [event.step for event in events.Scalars("train/loss")] == [1, 2, 3]
    shares = [event.value for event in events.Scalars("train/data_wait_share")]
    assert all(0.0 < share < 1.0 for share in shares), shares  # some waiting, never all of the time
