"""Reliability: the same seed gives the same weights, a checkpoint interrupted while being written is skipped, a
diverging run stops before exporting anything, one run writes an OUT at a time, and exported files respect the
umask."""

import json
import os
import signal
import subprocess
import sys
import tempfile
import textwrap

import pytest
import torch
from safetensors.torch import load_file

from conftest import run_cli


def ssl_weights(out) -> dict[str, torch.Tensor]:
    return load_file(str(out / "ssl" / "model.safetensors"))


def assert_identical(first: dict[str, torch.Tensor], second: dict[str, torch.Tensor]) -> None:
    assert first.keys() == second.keys()
    different = [name for name in first if not torch.equal(first[name], second[name])]
    assert not different, f"{len(different)} tensors differ, e.g. {different[:3]}"


@pytest.fixture(scope="module")
def tokenizers(tmp_path_factory):
    """A WordPiece and a CLIP BPE tokenizer saved once: training one is not reproducible across processes
    (`tokenizers` numbers the continuing-subword pieces in hash-map order, huggingface/tokenizers#1794), so the text
    methods' determinism is tested with a given tokenizer, which is also what a resumed run reuses."""
    from hf_ssl.data.tokenizers import train_clip_bpe, train_wordpiece

    root = tmp_path_factory.mktemp("tokenizers")
    texts = [f"{word} number {i} of the small test corpus, a yellow smiling face" for i, word in
             enumerate(["alpha", "beta", "gamma", "delta", "epsilon", "zeta", "eta", "theta"] * 4)]
    train_wordpiece(texts, 120).save_pretrained(root / "wordpiece")
    train_clip_bpe(texts, 400).save_pretrained(root / "clip")
    return root


# One method of each family: masked image (MAE, the shared run), joint embedding with a queue (MoCo v2), image-text
# (CLIP), masked language modelling, word2vec (vocabulary built by the run, negative sampling).
SAME_SEED_RUNS = {
    "moco": ["--method", "moco", "--version", "2", "--backbone", "resnet-test"],
    "clip": ["--method", "clip", "--tokenizer", "{tokenizers}/clip"],
    "mlm": ["--method", "mlm", "--tokenizer", "{tokenizers}/wordpiece"],
    "word2vec": ["--method", "word2vec"],
}


@pytest.mark.parametrize("family", sorted(SAME_SEED_RUNS))
def test_the_same_seed_gives_bit_identical_weights_killed_and_rerun_or_not(family, tmp_path, tokenizers):
    """Two runs of one command with one seed; the second is killed with SIGKILL once its checkpoint-2 is complete
    and re-run, so that it resumes (the queue, the vocabulary, the generators' states from the checkpoint)."""
    flags = [flag.format(tokenizers=tokenizers) for flag in SAME_SEED_RUNS[family]]
    first, second = tmp_path / "run1", tmp_path / "run2"
    command = lambda out: ["pretrain", *flags, "--preset", "tiny", "--max_steps", "4", "--save_steps", "2",  # noqa
                           "--seed", "5", "--eval_protocols", "none", "--output_dir", str(out)]
    result = run_cli(*command(first))
    assert result.returncode == 0, result.stderr[-3000:]
    from hf_ssl.training.checkpoints import is_complete_checkpoint

    # complete: its trainer_state.json parses (killed while that file is written, the run would restart from 0)
    complete = lambda: is_complete_checkpoint(second / "checkpoints" / "checkpoint-2")  # noqa: E731
    assert run_and_kill(command(second), complete) == -signal.SIGKILL
    result = run_cli(*command(second))
    assert result.returncode == 0, result.stderr[-3000:]
    assert "Resuming from" in result.stdout
    assert_identical(ssl_weights(first), ssl_weights(second))


def test_the_same_seed_gives_bit_identical_mae_weights(pretrained_out, tmp_path):
    """The shared MAE run again, in another process: before the model was built under the seed, two such runs
    differed by up to 0.6 after 12 steps. This one augments in the training step (`--augment_on_device true`, what a
    GPU run does), not in the data loader: the same seeded draws, so the same weights."""
    out, _ = pretrained_out
    again = tmp_path / "again"
    result = run_cli("pretrain", "--method", "mae", "--preset", "tiny", "--max_steps", "6", "--save_steps", "3", "--seed", "0",
                     "--logging_steps", "1", "--augment_on_device", "true", "--output_dir", str(again))
    assert result.returncode == 0, result.stderr[-3000:]
    assert_identical(ssl_weights(out), ssl_weights(again))


def test_exported_files_and_checkpoints_respect_the_umask(pretrained_out):
    """transformers writes model.safetensors with mode 0600 whatever the umask: a team's shared OUT would hold
    weights only their owner can read. The test process's umask is the run's."""
    out, _ = pretrained_out
    mask = os.umask(0o022)
    os.umask(mask)
    files = [f for f in out.rglob("*") if f.is_file()]
    assert any(f.name == "model.safetensors" and "checkpoints" in f.parts for f in files)
    wrong = {str(f.relative_to(out)): oct(f.stat().st_mode & 0o777) for f in files
             if f.stat().st_mode & 0o777 != 0o666 & ~mask}
    assert not wrong, wrong


def test_an_incomplete_checkpoint_is_skipped_and_removed(tmp_path, capsys):
    from hf_ssl.training.checkpoints import last_complete_checkpoint

    for step, state in [(2, '{"global_step": 2}'), (4, '{"global_st'), (6, None), (10, '{"global_step": 10}')]:
        folder = tmp_path / f"checkpoint-{step}"
        folder.mkdir()
        (folder / "model.safetensors").write_bytes(b"\0" * 8)
        if state is not None:
            (folder / "trainer_state.json").write_text(state)
    assert last_complete_checkpoint(tmp_path) == str(tmp_path / "checkpoint-10")  # by step, not by name
    (tmp_path / "checkpoint-10" / "trainer_state.json").unlink()
    assert last_complete_checkpoint(tmp_path) == str(tmp_path / "checkpoint-2")
    skipped = [line for line in capsys.readouterr().out.splitlines() if line.startswith("Skipping")]
    assert len(skipped) == 3 and all("incomplete" in line for line in skipped), skipped
    assert sorted(p.name for p in tmp_path.iterdir()) == ["checkpoint-2"]
    assert last_complete_checkpoint(tmp_path / "missing") is None


def test_a_run_killed_while_writing_a_checkpoint_resumes_from_the_previous_one(tmp_path):
    """What SIGKILL during Trainer's write of checkpoint-4 leaves (weights written, trainer_state.json not yet):
    Trainer's own resume ends in "Can't find a valid checkpoint"; the re-run resumes from checkpoint-2."""
    out = tmp_path / "out"
    common = ["pretrain", "--method", "mae", "--preset", "tiny", "--save_steps", "2", "--eval_protocols", "none", "--logging_steps", "1",
              "--output_dir", str(out)]
    first = run_cli(*common, "--max_steps", "4")
    assert first.returncode == 0, first.stderr[-3000:]
    state_file = out / "checkpoints" / "checkpoint-4" / "trainer_state.json"
    state_file.unlink()
    second = run_cli(*common, "--max_steps", "4")
    assert second.returncode == 0, second.stderr[-3000:]
    assert "checkpoint-4: incomplete" in second.stdout and "Resuming from" in second.stdout
    assert "checkpoint-2" in second.stdout.split("Resuming from")[1].splitlines()[0]
    state = json.loads(state_file.read_text())
    assert state["global_step"] == 4
    # a changed recipe into the same OUT is refused, not resumed from the other run's checkpoint
    changed = run_cli(*common, "--max_steps", "4", "--per_device_train_batch_size", "16")
    assert changed.returncode != 0 and len(changed.stderr.strip().splitlines()) == 1, changed.stderr[-3000:]
    assert "batches of 32 per device, this run has 16" in changed.stderr
    assert json.loads(state_file.read_text()) == state  # nothing trained or written


def test_resuming_is_refused_for_another_batch_size_or_a_schedule_the_checkpoint_has_passed(tmp_path):
    from hf_ssl.errors import HfSslError
    from hf_ssl.training.checkpoints import check_resumable

    (tmp_path / "trainer_state.json").write_text('{"global_step": 2158, "train_batch_size": 128}')
    check_resumable(tmp_path, 128, 2158)  # the same run, finished: re-exported and evaluated again
    check_resumable(tmp_path, 128, 3000)  # a longer schedule continues
    check_resumable(tmp_path, 128, None)  # a stream: its length is unknown
    check_resumable(tmp_path, None, 2158)  # --auto_find_batch_size takes the checkpoint's batch
    with pytest.raises(HfSslError, match="trained 2158 steps, more than this run's 1407"):
        check_resumable(tmp_path, 128, 1407)
    with pytest.raises(HfSslError, match="batches of 128 per device, this run has 256"):
        check_resumable(tmp_path, 256, 2158)


def test_all_finite_is_exact_on_huge_values_nan_inf_and_sparse_values():
    from hf_ssl.training.callbacks import all_finite

    huge = torch.tensor([[3e38, -3e38], [1e34, 0.0]])  # finite; squared they would overflow a 2-norm
    assert bool(all_finite([huge, torch.zeros(0), torch.ones(3, dtype=torch.bfloat16)]))
    for bad in (float("nan"), float("inf"), float("-inf")):
        values = torch.ones(3, 2)
        values[1, 0] = bad
        sparse = torch.sparse_coo_tensor(torch.tensor([[0, 4, 0]]), values, (6, 2))  # a row twice: not coalesced
        assert not bool(all_finite([huge, sparse]))
    assert bool(all_finite([]))


def test_non_finite_gradients_stop_or_skip_the_step():
    """stop raises before the optimizer step; skip leaves every parameter and AdamW's moments as they were."""
    from transformers import TrainerControl, TrainerState, TrainingArguments

    from hf_ssl.training.callbacks import DivergenceError, NonFiniteGuardCallback

    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.Linear(4, 2))
    optimizer = torch.optim.AdamW(model.parameters(), lr=0.1)
    args, state, control = TrainingArguments(output_dir="unused", report_to="none"), TrainerState(), TrainerControl()

    def backward(poison: bool) -> None:
        optimizer.zero_grad()
        loss = model(torch.randn(5, 3)).square().mean()
        (loss * float("nan") if poison else loss).backward()

    backward(poison=False)
    guard = NonFiniteGuardCallback("skip")
    guard.on_pre_optimizer_step(args, state, control, model=model)
    assert all(p.grad is not None for p in model.parameters())  # finite: untouched
    optimizer.step()
    before = [p.detach().clone() for p in model.parameters()]
    moments = [optimizer.state[p]["exp_avg"].clone() for p in model.parameters()]
    backward(poison=True)
    state.global_step = 1
    guard.on_pre_optimizer_step(args, state, control, model=model)
    optimizer.step()
    assert guard.skipped == 1
    for p, b, m in zip(model.parameters(), before, moments):
        assert torch.equal(p, b) and torch.equal(optimizer.state[p]["exp_avg"], m)
    logs = {"loss": 1.0}
    guard.on_log(args, state, control, logs=logs)
    assert logs["nonfinite_steps_skipped"] == 1
    # the count goes into a checkpoint's trainer_state.json and comes back from it (Trainer's stateful callbacks)
    with tempfile.TemporaryDirectory() as folder:
        TrainerState(stateful_callbacks=[guard]).save_to_json(f"{folder}/trainer_state.json")
        saved = TrainerState.load_from_json(f"{folder}/trainer_state.json").stateful_callbacks
    assert NonFiniteGuardCallback.from_state(saved["NonFiniteGuardCallback"]).skipped == 1

    # stop: the step's end names it, whether its gradients or (after a finite step) its state went non-finite
    stop = NonFiniteGuardCallback("stop")
    backward(poison=True)
    stop.on_pre_optimizer_step(args, state, control, model=model)
    state.global_step = 2
    with pytest.raises(DivergenceError, match="non-finite gradients at step 2"):
        stop.on_step_end(args, state, control, model=model)
    backward(poison=False)
    stop.on_pre_optimizer_step(args, state, control, model=model)
    stop.on_step_end(args, state, control, model=model)  # finite: passes
    model[0].register_buffer("running_var", torch.full((4,), 3e38) * 10)  # a BatchNorm statistic that overflowed
    stop.on_step_end(args, state, control, model=model)  # weights are read only before they are recorded:
    control.should_save = True  # a checkpoint (or a log, an evaluation, the end) follows this step
    with pytest.raises(DivergenceError, match="non-finite weights or buffers after step 2"):
        stop.on_step_end(args, state, control, model=model)
    with pytest.raises(DivergenceError, match="non-finite weights or buffers after step 2"):
        stop.on_epoch_end(args, state, TrainerControl(), model=model)  # an epoch's end may save too
    model[0].running_var.fill_(1e34)  # large but finite: the max-norm does not overflow where the 2-norm would
    stop.on_step_end(args, state, control, model=model)


def test_a_diverging_run_stops_with_one_line_and_exports_nothing(tmp_path):
    out = tmp_path / "out"
    result = run_cli("pretrain", "--method", "simclr", "--preset", "tiny", "--backbone", "resnet-test",
                     "--learning_rate", "1e8", "--max_steps", "20", "--save_steps", "1", "--eval_protocols", "none",
                     "--output_dir", str(out))
    assert result.returncode == 2, result.stdout[-2000:] + result.stderr[-2000:]
    errors = [line for line in result.stderr.splitlines() if line.startswith("hf-ssl: error:")]
    assert len(errors) == 1, result.stderr[-2000:]
    message = errors[0]
    assert "training diverged: non-finite" in message and "nothing exported" in message, message
    assert "The last good checkpoint is" in message and "checkpoint-" in message
    assert not (out / "model.safetensors").exists() and not (out / "ssl").exists()
    good = message.split("The last good checkpoint is ")[1].split(" ")[0]
    weights = load_file(os.path.join(good, "model.safetensors"))
    assert all(bool(torch.isfinite(w).all()) for w in weights.values() if w.is_floating_point())


def test_a_second_run_into_a_locked_out_is_refused_and_a_killed_holder_leaves_no_stale_lock(tmp_path):
    out = tmp_path / "out"
    holder = subprocess.Popen([sys.executable, "-c", textwrap.dedent(f"""
        import time
        from hf_ssl.training.checkpoints import OutputLock
        with OutputLock({str(out)!r}):
            print("locked", flush=True)
            time.sleep(120)
    """)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        result = run_cli("pretrain", "--method", "mae", "--preset", "tiny", "--max_steps", "1", "--eval_protocols", "none",
                         "--output_dir", str(out))
        assert result.returncode == 2
        assert result.stderr.strip().count("\n") == 0 and "another run is writing" in result.stderr, result.stderr
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    from hf_ssl.training.checkpoints import OutputLock

    with OutputLock(out):  # the kernel released the killed holder's lock
        pass


def run_and_kill(args: list[str], until, timeout: float = 300) -> int:
    """Start `hf-ssl ARGS`, SIGKILL it as soon as `until()` holds (polled every 10 ms) or let it finish; its exit code."""
    import time

    process = subprocess.Popen([sys.executable, "-m", "hf_ssl.cli", *args], stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + timeout
    while process.poll() is None and time.monotonic() < deadline:
        if until():
            process.send_signal(signal.SIGKILL)
            break
        time.sleep(0.01)
    return process.wait()


def test_a_run_killed_at_any_moment_and_rerun_ends_with_the_uninterrupted_weights(pretrained_out):
    """The shared MAE run's command (6 steps, a checkpoint every 3), killed twice with SIGKILL: once as soon as
    checkpoint-3 is complete (during step 4), then again as soon as checkpoint-6's folder appears (while Trainer
    writes it, or just after); the third run completes from checkpoint-3 or -6. Its weights must equal the uninterrupted run's bit for bit: the weights (ViT's
    legacy names on disk), optimizer, schedule and generator states restored, and the batches' draws independent of
    the data loader's read-ahead."""
    out, _ = pretrained_out
    again = out.parent / "killed-twice"
    command = ["pretrain", "--method", "mae", "--preset", "tiny", "--max_steps", "6", "--save_steps", "3", "--seed", "0",
               "--logging_steps", "1", "--output_dir", str(again)]
    checkpoints = again / "checkpoints"
    assert run_and_kill(command, lambda: (checkpoints / "checkpoint-3" / "trainer_state.json").exists()) \
        == -signal.SIGKILL
    assert run_and_kill(command, lambda: (checkpoints / "checkpoint-6").exists()) == -signal.SIGKILL
    result = run_cli(*command)
    assert result.returncode == 0, result.stderr[-3000:]
    assert_identical(ssl_weights(out), ssl_weights(again))
    # the callbacks' state came back from the checkpoint and went on into the next one
    state = json.loads((checkpoints / "checkpoint-6" / "trainer_state.json").read_text())
    assert state["stateful_callbacks"]["NonFiniteGuardCallback"] == {"args": {"mode": "stop"},
                                                                      "attributes": {"skipped": 0}}
