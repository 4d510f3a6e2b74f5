"""`--streaming`: an image dataset read as training iterates it (Parquet shards here, as the Hub lays them out): a
resumed run ends with the uninterrupted run's weights, and what streaming cannot do is refused in one line before
training. (Each process reading its own shards: tests/test_distributed.py.)"""

import shutil

import pytest
from safetensors.torch import load_file

from conftest import gray_level_shards, run_cli


@pytest.fixture(scope="module")
def shards(tmp_path_factory):
    return gray_level_shards(tmp_path_factory.mktemp("stream") / "shards", 24, 4, test_count=6)


def stream_command(shards, out, *extra: str) -> list[str]:
    return ["pretrain", "--method", "simclr", "--preset", "tiny", "--dataset", str(shards), "--streaming",
            "--image_size", "8", "--per_device_train_batch_size", "4", "--max_steps", "4", "--save_steps", "2",
            "--seed", "3", "--output_dir", str(out), *extra]


def test_a_streamed_run_resumed_from_its_checkpoint_ends_with_the_uninterrupted_weights(shards, tmp_path):
    first = tmp_path / "first"
    result = run_cli(*stream_command(shards, first))
    assert result.returncode == 0, result.stderr[-3000:]
    assert "Not evaluated after training" in result.stdout  # the protocols read whole splits
    assert "streamed" in (first / "README.md").read_text()
    # a run that stopped after its checkpoint-2: the same command resumes from it, re-reading the stream's first
    # batches (accelerate skips them), and draws what the uninterrupted run drew
    second = tmp_path / "second"
    shutil.copytree(first / "checkpoints" / "checkpoint-2", second / "checkpoints" / "checkpoint-2")
    result = run_cli(*stream_command(shards, second))
    assert result.returncode == 0, result.stderr[-3000:]
    assert "Resuming from" in result.stdout
    expected, weights = load_file(str(first / "ssl" / "model.safetensors")), load_file(str(second / "ssl" /
                                                                                           "model.safetensors"))
    assert [name for name in expected if not expected[name].equal(weights[name])] == []


@pytest.mark.parametrize("change, message", [
    (["--max_steps", "-1"], "--streaming needs --max_steps"),
    (["--eval_protocols", "knn"], "cannot evaluate knn with --streaming"),
    (["--dataset", "digits"], "--streaming reads Hub datasets, local dataset folders and WebDataset shards"),
    (["--method", "word2vec"], "streaming is for the image SSL methods"),
])
def test_what_streaming_cannot_do_is_one_line_before_training(shards, tmp_path, change, message):
    result = run_cli(*stream_command(shards, tmp_path / "out", *change))
    assert result.returncode == 2 and message in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "out").exists()
