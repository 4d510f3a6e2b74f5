"""Multi-process training with real processes: `torchrun --nproc_per_node 2` (gloo on CPU)."""

import json
import os
import shutil
import subprocess
import sys

import pytest

pytestmark = pytest.mark.distributed


def test_torchrun_two_processes_train_and_export_once(tmp_path):
    out = tmp_path / "ddp"
    torchrun = [shutil.which("torchrun") or "", "--standalone", "--nproc_per_node", "2"]
    if not torchrun[0]:
        torchrun = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2"]
    result = subprocess.run(
        [*torchrun, "-m", "hf_ssl.cli", "pretrain", "--preset", "tiny", "--max_steps", "3", "--logging_steps", "1",
         "--per_device_train_batch_size", "8", "--output_dir", str(out)],
        capture_output=True, text=True, timeout=600, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert result.returncode == 0, result.stderr[-4000:]
    # Trainer saw a world of 2: each optimizer step consumed 2 x 8 examples.
    state = json.loads((out / "checkpoints" / "checkpoint-3" / "trainer_state.json").read_text())
    assert state["global_step"] == 3
    run_info = json.loads((out / "ssl" / "training_info.json").read_text())
    assert run_info["effective_batch_size"] == 16 and run_info["hardware"].startswith("2 x")
    # only the main process exported and printed the summary
    assert result.stdout.count("Exported to") == 1
    assert (out / "model.safetensors").is_file() and (out / "eval_results.json").is_file()
