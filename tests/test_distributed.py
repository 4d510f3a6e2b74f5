"""Multi-process training with real processes: `torchrun --nproc_per_node 2` (gloo on CPU)."""

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from safetensors.torch import load_file

pytestmark = pytest.mark.distributed

# --standalone picks a free port: another torchrun job on this machine may hold the default 29500
LAUNCHER = [shutil.which("torchrun")] if shutil.which("torchrun") else [sys.executable, "-m", "torch.distributed.run"]
TORCHRUN = [*LAUNCHER, "--standalone", "--nproc_per_node", "2"]
ENV = {**os.environ, "OMP_NUM_THREADS": "1"}


def pretrain_command(out: Path, *extra: str) -> list[str]:
    """4 steps of the tiny MAE on 2 processes, a checkpoint every 2."""
    return [*TORCHRUN, "-m", "hf_ssl.cli", "pretrain", "--method", "mae", "--preset", "tiny", "--max_steps", "4", "--save_steps", "2",
            "--logging_steps", "1", "--seed", "0", "--per_device_train_batch_size", "8", "--output_dir", str(out),
            *extra]


@pytest.fixture(scope="module")
def ddp_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("ddp") / "out"
    result = subprocess.run(pretrain_command(out), capture_output=True, text=True, timeout=600, env=ENV)
    assert result.returncode == 0, result.stderr[-4000:]
    return out, result


def test_torchrun_two_processes_train_and_export_once(ddp_run):
    out, result = ddp_run
    # Trainer saw a world of 2: each optimizer step consumed 2 x 8 examples.
    state = json.loads((out / "checkpoints" / "checkpoint-4" / "trainer_state.json").read_text())
    assert state["global_step"] == 4
    run_info = json.loads((out / "ssl" / "training_info.json").read_text())
    assert run_info["effective_batch_size"] == 16 and run_info["hardware"].startswith("2 x")
    # only the main process exported and printed the summary
    assert result.stdout.count("Exported to") == 1
    assert (out / "model.safetensors").is_file() and (out / "eval_results.json").is_file()


def descendants(pid: int) -> list[int]:
    """Every process below `pid` (torchrun starts each worker in a session of its own: a process group kill misses
    them), from /proc."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:  # the process ended meanwhile
            continue
        children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    below = lambda parent: [p for child in children.get(parent, []) for p in (child, *below(child))]  # noqa: E731
    return below(pid)


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="finds torchrun's workers through /proc (Linux)")
def test_a_two_process_run_killed_and_rerun_ends_with_the_uninterrupted_weights(ddp_run):
    """The whole job (torchrun and both workers) killed with SIGKILL as soon as checkpoint-2 is complete, as a
    machine that loses power; the same command re-run resumes from it on 2 processes and ends with the weights of
    the uninterrupted run, bit for bit (each process's batches and draws come from (seed, process, epoch, batch))."""
    from hf_ssl.training.checkpoints import is_complete_checkpoint

    reference, _ = ddp_run
    out = reference.parent / "killed"
    command = pretrain_command(out, "--eval_protocols", "none")
    job = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=ENV)
    deadline = time.monotonic() + 300
    while job.poll() is None and time.monotonic() < deadline:
        if is_complete_checkpoint(out / "checkpoints" / "checkpoint-2"):  # its trainer_state.json parses
            for pid in [job.pid, *descendants(job.pid)]:
                os.kill(pid, signal.SIGKILL)
            break
        time.sleep(0.01)
    assert job.wait() == -signal.SIGKILL
    assert not (out / "ssl").exists()  # killed before the end
    result = subprocess.run(command, capture_output=True, text=True, timeout=600, env=ENV)
    assert result.returncode == 0, result.stderr[-4000:]
    assert "Resuming from" in result.stdout and "checkpoint-2" in result.stdout.split("Resuming from")[1].split("\n")[0]
    expected = load_file(str(reference / "ssl" / "model.safetensors"))
    resumed = load_file(str(out / "ssl" / "model.safetensors"))
    assert expected.keys() == resumed.keys()
    assert [name for name in expected if not expected[name].equal(resumed[name])] == []


def free_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_two_nodes_of_one_process_train_the_weights_of_one_node_of_two(ddp_run, tmp_path):
    """Multi-node is Trainer's and torch's: two `torchrun --nnodes 2 --nproc_per_node 1` launches meeting at a c10d
    rendezvous on 127.0.0.1 (as two machines would at HOST:PORT) form one job of 2 processes, sharing OUT as nodes
    share a network file system. Every draw depends on the global rank alone, so whichever node becomes rank 0, the
    weights are those of 1 node x 2 processes, bit for bit."""
    reference, _ = ddp_run
    out = tmp_path / "two-nodes"
    launcher = [*LAUNCHER, "--nnodes", "2", "--nproc_per_node", "1", "--rdzv_backend", "c10d",
                "--rdzv_endpoint", f"127.0.0.1:{free_port()}", "--rdzv_id", "hf-ssl-test"]
    command = pretrain_command(out, "--eval_protocols", "none")[len(TORCHRUN):]
    nodes = [subprocess.Popen([*launcher, *command], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                              env=ENV) for _ in range(2)]
    outputs = [node.communicate(timeout=600) for node in nodes]
    for node, (_, stderr) in zip(nodes, outputs):
        assert node.returncode == 0, stderr[-4000:]
    assert sum(stdout.count("Exported to") for stdout, _ in outputs) == 1  # one node exports
    assert json.loads((out / "ssl" / "training_info.json").read_text())["effective_batch_size"] == 16  # 2 x 8
    expected = load_file(str(reference / "ssl" / "model.safetensors"))
    weights = load_file(str(out / "ssl" / "model.safetensors"))
    assert [name for name in expected if not expected[name].equal(weights[name])] == []


# Run under torchrun by the tests below: `hf-ssl pretrain`, with every image a DataLoader worker decodes recorded as
# "RANK LEVEL" (its first pixel: the test images are uniform gray levels) in RECORD_DIR/PID.txt; what training decodes,
# not the first-batch check before it.
RECORDING_PRETRAIN = """
import os, sys
from torch.utils.data import get_worker_info
from hf_ssl.cli import main
from hf_ssl.data import images

decode = images.decode_image

def recorded(*args, **kwargs):
    pixels = decode(*args, **kwargs)
    if get_worker_info() is not None:
        with open(os.path.join(os.environ["RECORD_DIR"], f"{os.getpid()}.txt"), "a") as record:
            record.write(f"{os.environ['RANK']} {int(pixels.flatten()[0])}\\n")
    return pixels

images.decode_image = recorded
main(sys.argv[1:])
"""


def decoded_by_each_process(tmp_path: Path, dataset: str, *extra: str) -> dict[str, list[int]]:
    """2 processes x batches of 4 on `dataset` (gray levels), one DataLoader worker each: the levels each decoded."""
    (tmp_path / "records").mkdir(parents=True)
    script = tmp_path / "recording_pretrain.py"
    script.write_text(RECORDING_PRETRAIN)
    command = [*TORCHRUN, str(script), "pretrain", "--method", "simclr", "--preset", "tiny", "--dataset", dataset,
               "--image_size", "8", "--per_device_train_batch_size", "4", "--dataloader_num_workers", "1",
               "--eval_protocols", "none", "--output_dir", str(tmp_path / "out"), *extra]
    result = subprocess.run(command, capture_output=True, text=True, timeout=600,
                            env={**ENV, "RECORD_DIR": str(tmp_path / "records")})
    assert result.returncode == 0, result.stderr[-4000:]
    decoded = {"0": [], "1": []}
    for record in (tmp_path / "records").iterdir():
        for rank, level in (line.split() for line in record.read_text().splitlines()):
            decoded[rank].append(int(level))
    return decoded


def test_two_processes_each_decode_their_own_share_of_an_image_folder_or_a_stream(tmp_path):
    """One epoch of 2 processes, each with a DataLoader worker: each decodes its own images, and together they decode
    every image exactly once (24 images, a multiple of the global batch, 2 x 4). An image folder (a distributed
    sampler over its files), then a stream of 4 Parquet shards (`--streaming`: each process reads 2 of them)."""
    from PIL import Image

    from conftest import gray_level_shards

    folder = tmp_path / "images" / "all"
    folder.mkdir(parents=True)
    for i in range(24):
        Image.new("L", (8, 8), 10 * i).save(folder / f"{i:02d}.png")
    every_image = [10 * i for i in range(24)]
    runs = {
        "folder": decoded_by_each_process(tmp_path / "folder", f"imagefolder:{tmp_path / 'images'}",
                                          "--num_train_epochs", "1"),
        "stream": decoded_by_each_process(tmp_path / "stream", str(gray_level_shards(tmp_path / "shards", 24, 4)),
                                          "--streaming", "--max_steps", "3"),
    }
    for name, decoded in runs.items():
        assert len(decoded["0"]) == len(decoded["1"]) == 12, name  # 3 steps of 4 each
        assert not set(decoded["0"]) & set(decoded["1"]), name
        assert sorted(decoded["0"] + decoded["1"]) == every_image, name
