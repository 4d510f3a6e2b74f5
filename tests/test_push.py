"""Publishing end to end: `hf-ssl push` and `hf-ssl pretrain --push_to_hub` upload OUT (without checkpoints/) with the
real huggingface_hub client over HTTP to a Hub test double on 127.0.0.1 (tests/hub_server.py), and plain
transformers loads the model back from it by repo id in a process where hf_ssl cannot be imported."""

import hashlib
import json
import os
import shutil
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from conftest import BLOCK_HF_SSL
from hub_server import HubServer, Repo

TOKEN = "hf_test_write_token"
# Files every published MAE folder has (the rest of the comparison is "OUT minus checkpoints/ and hidden files").
KEY_FILES = {"config.json", "model.safetensors", "preprocessor_config.json", "README.md", "eval_results.json",
             "ssl/config.json", "ssl/model.safetensors", "ssl/modeling_mae.py", "ssl/training_info.json"}
# The card's plots (binary files; matplotlib comes with the `test` extra).
PLOT_FILES = {"plots/loss.png", "plots/projection.png", "plots/reconstruction.png"}


@pytest.fixture(scope="module")
def hub():
    with HubServer(tokens={TOKEN: "tester"}) as server:
        yield server


def hub_env(hub_url: str, home: Path, token: str | None = TOKEN) -> dict:
    """The environment of a process that talks to the test Hub: online, an empty HF_HOME (no cache, no stored
    token), and HF_TOKEN only when given. HF_ENDPOINT reaches the child before it imports huggingface_hub."""
    env = {k: v for k, v in os.environ.items()
           if k not in ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN", "HF_TOKEN_PATH", "HF_HUB_CACHE", "TRANSFORMERS_CACHE")}
    env.update(HF_ENDPOINT=hub_url, HF_HUB_OFFLINE="0", HF_HOME=str(home))
    if token:
        env["HF_TOKEN"] = token
    return env


def run(args: list[str], env: dict, timeout: int = 600) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, *args], capture_output=True, text=True, timeout=timeout, env=env)


def run_loader(code: str, env: dict) -> subprocess.CompletedProcess:
    """A fresh process without hf_ssl (as on a user's machine) that downloads from the test Hub."""
    result = run(["-c", BLOCK_HF_SSL + textwrap.dedent(code)], env, timeout=300)
    assert result.returncode == 0, f"{result.stdout[-3000:]}\n{result.stderr[-5000:]}"
    return result


def local_files(folder: Path) -> dict[str, bytes]:
    """What publishing `folder` must put on the Hub: every file except checkpoints/ and hidden ones."""
    files = {}
    for path in sorted(folder.rglob("*")):
        relative = path.relative_to(folder).as_posix()
        if path.is_file() and not relative.startswith("checkpoints/") and not any(
                part.startswith(".") for part in relative.split("/")):
            files[relative] = path.read_bytes()
    return files


@pytest.fixture(scope="module")
def pushed_run(hub, tmp_path_factory):
    """One tiny MAE pretraining that pushes OUT at the end (checkpoint every step, so a Trainer that pushed
    checkpoints would have committed more than once; a loss logged every step, so the card has its loss plot)."""
    root = tmp_path_factory.mktemp("push")
    out = root / "mae"
    first_request = len(hub.requests)
    result = run(["-m", "hf_ssl.cli", "pretrain", "--method", "mae", "--preset", "tiny", "--max_steps", "2",
                  "--save_steps", "1", "--seed", "0", "--logging_steps", "1", "--output_dir", str(out), "--push_to_hub",
                  "--hub_model_id", "org/trained", "--hub_private_repo", "true"], hub_env(hub.url, root / "home"))
    assert result.returncode == 0, result.stderr[-5000:]
    return out, result, hub.requests[first_request:]


def published_copy(out: Path, tmp_path: Path) -> Path:
    """A copy of OUT for one push test (pushing re-renders the card with the repo id), with the leftovers a
    crash can leave (export staging folder, atomic-write temporary) that must not be published."""
    copy = tmp_path / "mae-digits"
    shutil.copytree(out, copy)
    (copy / ".export-leftover").mkdir()
    (copy / ".export-leftover" / "config.json").write_text("{}")
    (copy / "ssl" / ".training_info.json.tmp").write_text("{}")
    return copy


def test_pretrain_push_to_hub_publishes_out_once_at_the_end(hub, pushed_run):
    out, result, requests = pushed_run
    assert "Pushed" in result.stdout and "org/trained" in result.stdout
    assert (out / "checkpoints" / "checkpoint-1").is_dir() and (out / "checkpoints" / "checkpoint-2").is_dir()
    published = hub.files("org/trained")
    assert KEY_FILES | PLOT_FILES <= set(published)
    assert published == local_files(out)
    assert not [p for p in published if p.startswith("checkpoints")]
    # Trainer did not push (it would create the repo at init and commit at every save): one repo creation and
    # one upload commit, made after training.
    assert hub.commit_messages("org/trained") == ["initial commit", "Upload mae with hf-ssl"]
    assert [r for r in requests if r[0] == "POST" and "/commit/" in r[1]] == [("POST", "/api/models/org/trained/commit/main")]
    assert requests.count(("POST", "/api/repos/create")) == 1
    assert hub.repos["org/trained"].private  # --hub_private_repo reached the push
    assert 'AutoModel.from_pretrained("org/trained")' in published["README.md"].decode()


def test_push_then_load_by_repo_id_without_hf_ssl(hub, pushed_run, tmp_path):
    out, _, _ = pushed_run
    folder = published_copy(out, tmp_path)
    result = run(["-m", "hf_ssl.cli", "push", str(folder), "--repo_id", "org/tiny-mae"], hub_env(hub.url, tmp_path / "h1"))
    assert result.returncode == 0, result.stderr[-5000:]
    assert f"{hub.url}/org/tiny-mae/commit/" in result.stdout
    assert "Traceback" not in result.stderr

    published = hub.files("org/tiny-mae")
    assert KEY_FILES <= set(published)
    assert published == local_files(folder)  # same paths, same bytes; no checkpoints/, no hidden leftovers
    assert not hub.repos["org/tiny-mae"].private
    # the card now names the repo it lives in, on the Hub and in OUT
    assert 'AutoModel.from_pretrained("org/tiny-mae")' in published["README.md"].decode()
    assert json.loads(published["ssl/training_info.json"])["repo_id"] == "org/tiny-mae"

    # A user's machine: no hf_ssl, no token (public repo), an empty cache, so everything comes over HTTP.
    downloads_before = len(hub.requests)
    run_loader(f"""
        import torch
        from transformers import AutoImageProcessor, AutoModel
        model = AutoModel.from_pretrained("org/tiny-mae")
        processor = AutoImageProcessor.from_pretrained("org/tiny-mae")
        local = AutoModel.from_pretrained({str(folder)!r})
        assert type(model).__name__ == "ViTModel", type(model)
        assert processor.size == {{"height": 16, "width": 16}}, processor.size
        weights, expected = model.state_dict(), local.state_dict()
        shared = [n for n in expected if not n.startswith("pooler.")]  # AutoModel adds a freshly initialised pooler
        assert len(shared) > 10 and set(weights) == set(expected)
        for name in shared:
            assert torch.equal(weights[name], expected[name]), name
        print("loaded", type(model).__name__)
    """, hub_env(hub.url, tmp_path / "user-home", token=None))
    fetched = {path for method, path in hub.requests[downloads_before:] if method == "GET" and "/resolve/" in path}
    assert {p.rsplit("/", 1)[-1] for p in fetched} >= {"config.json", "model.safetensors", "preprocessor_config.json"}


def test_push_to_a_branch_of_a_private_repo(hub, pushed_run, tmp_path):
    out, _, _ = pushed_run
    folder = published_copy(out, tmp_path)
    result = run(["-m", "hf_ssl.cli", "push", str(folder), "--repo_id", "org/secret-mae", "--private",
                  "--revision", "dev", "--commit_message", "first draft"], hub_env(hub.url, tmp_path / "h1"))
    assert result.returncode == 0, result.stderr[-5000:]
    assert "branch dev" in result.stdout
    repo = hub.repos["org/secret-mae"]
    assert repo.private
    assert hub.files("org/secret-mae", "dev") == local_files(folder)
    assert hub.files("org/secret-mae", "main") == {}  # the branch, not main
    assert hub.commit_messages("org/secret-mae") == ["initial commit", "first draft"]

    expected = sorted(local_files(folder))
    assert PLOT_FILES <= set(expected)
    plot_hashes = {name: hashlib.sha256((folder / name).read_bytes()).hexdigest() for name in sorted(PLOT_FILES)}
    run_loader(f"""
        import hashlib
        import os
        from pathlib import Path
        from huggingface_hub import HfApi, hf_hub_download, snapshot_download
        from huggingface_hub.errors import RemoteEntryNotFoundError, RepositoryNotFoundError
        from transformers import AutoModel
        token = os.environ.pop("HF_TOKEN")
        try:   # without the token, the private repo does not exist
            hf_hub_download("org/secret-mae", "config.json", revision="dev")
            raise AssertionError("private repo readable without a token")
        except RepositoryNotFoundError:
            pass
        try:
            AutoModel.from_pretrained("org/secret-mae", revision="dev")
            raise AssertionError("private model loaded without a token")
        except OSError:
            pass
        try:   # main has no files: the push went to the branch
            hf_hub_download("org/secret-mae", "config.json", token=token)
            raise AssertionError("config.json on main")
        except RemoteEntryNotFoundError:
            pass
        model = AutoModel.from_pretrained("org/secret-mae", revision="dev", token=token)
        assert type(model).__name__ == "ViTModel"
        # the whole branch, as `snapshot_download` lists it (model info at the revision, then its tree)
        snapshot = Path(snapshot_download("org/secret-mae", revision="dev", token=token))
        files = sorted(p.relative_to(snapshot).as_posix() for p in snapshot.rglob("*") if p.is_file())
        assert files == {expected!r}, files
        # binary files come back byte for byte (the PNGs the card links)
        downloaded = {{n: hashlib.sha256((snapshot / n).read_bytes()).hexdigest() for n in {sorted(PLOT_FILES)!r}}}
        assert downloaded == {plot_hashes!r}, downloaded
        assert HfApi().whoami(token=token)["name"] == "tester"
    """, hub_env(hub.url, tmp_path / "user-home"))


def _not_from_pretrain(tmp_path: Path) -> Path:
    folder = tmp_path / "some_model"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps({"model_type": "vit"}))
    return folder


@pytest.mark.parametrize("case, args, expected", [
    ("missing folder", ["push", "{tmp}/nowhere", "--repo_id", "org/x"], "is not a folder"),
    ("not from hf-ssl", ["push", "{not_ours}", "--repo_id", "org/x"], "was not written by `hf-ssl pretrain` (no README.md)"),
    ("repo id without org", ["push", "{out}", "--repo_id", "tiny-mae"], "invalid repo id 'tiny-mae': expected ORG/NAME"),
    ("repo id with a space", ["push", "{out}", "--repo_id", "org/tiny mae"], "invalid repo id 'org/tiny mae'"),
    ("repo id the Hub refuses", ["push", "{out}", "--repo_id", "org/tiny--mae"], "invalid repo id 'org/tiny--mae'"),
    ("no repo id", ["push", "{out}"], "the following arguments are required: --repo_id"),
    ("push_to_hub without repo", ["pretrain", "--method", "mae", "--preset", "tiny", "--max_steps", "1", "--output_dir", "{tmp}/run",
                                  "--push_to_hub"], "--push_to_hub needs --hub_model_id ORG/NAME"),
    ("push_to_hub with a bad repo", ["pretrain", "--method", "mae", "--preset", "tiny", "--max_steps", "1", "--output_dir", "{tmp}/run",
                                     "--push_to_hub", "--hub_model_id", "nope"], "invalid repo id 'nope'"),
])
def test_bad_push_input_is_one_line_before_any_network(case, args, expected, pushed_run, tmp_path, capsys):
    from hf_ssl.cli import main

    out, _, _ = pushed_run
    values = dict(tmp=tmp_path, out=out, not_ours=_not_from_pretrain(tmp_path))
    with pytest.raises(SystemExit) as exit_info:
        main([a.format(**values) for a in args])  # this process is offline: any network call would fail differently
    assert exit_info.value.code == 2
    lines = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("hf-ssl: error:"), lines
    assert expected in lines[0]
    assert not (tmp_path / "run").exists()  # pretrain refused before touching OUT


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.parametrize("case", ["unreachable", "wrong token", "private into a public repo"])
def test_push_failure_is_one_line(case, hub, pushed_run, tmp_path):
    out, _, _ = pushed_run
    repo_id, flags, env = f"org/{case.replace(' ', '-')}", [], hub_env(hub.url, tmp_path / "h")
    if case == "unreachable":
        env, expected = hub_env(f"http://127.0.0.1:{_closed_port()}", tmp_path / "h"), "failed: cannot reach http://127.0.0.1:"
    elif case == "wrong token":
        env["HF_TOKEN"], expected = "hf_wrong", "failed: not authorised by"
    else:
        hub.repos[repo_id] = Repo(private=False)
        hub.repos[repo_id].commit("main", "initial commit", {})
        flags, expected = ["--private"], f"{repo_id} already exists and is public"
    result = run(["-m", "hf_ssl.cli", "push", str(shutil.copytree(out, tmp_path / "copy")), "--repo_id", repo_id,
                  *flags], env)
    assert result.returncode == 2
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("hf-ssl: error: "), result.stderr
    assert expected in lines[0]
    assert repo_id not in hub.repos or hub.commit_messages(repo_id) == ["initial commit"]  # nothing uploaded
