import os
import subprocess
import sys
import textwrap

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

# Put at the top of a script run in a fresh process: hf_ssl cannot be imported there, as on the machine
# of a user who only has transformers.
BLOCK_HF_SSL = "import sys\nsys.modules['hf_ssl'] = None\n"


def run_python(code: str, timeout: int = 300, block_hf_ssl: bool = True) -> subprocess.CompletedProcess:
    script = (BLOCK_HF_SSL if block_hf_ssl else "") + textwrap.dedent(code)
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=timeout)
    assert result.returncode == 0, f"fresh process failed:\n{result.stdout[-3000:]}\n{result.stderr[-5000:]}"
    return result


def run_cli(*args: str, timeout: int = 600, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "hf_ssl.cli", *args], capture_output=True, text=True,
                          timeout=timeout, env={**os.environ, **(env or {})})


@pytest.fixture(scope="session")
def pretrained_out(tmp_path_factory):
    """One tiny MAE pretraining on digits shared by the export tests (6 steps, checkpoint every 3)."""
    out = tmp_path_factory.mktemp("runs") / "mae-digits"
    result = run_cli("pretrain", "--preset", "tiny", "--max_steps", "6", "--save_steps", "3", "--seed", "0",
                     "--logging_steps", "1", "--output_dir", str(out))
    assert result.returncode == 0, result.stderr[-5000:]
    return out, result
