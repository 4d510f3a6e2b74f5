"""`hf-ssl list | pretrain | evaluate | embed | benchmark | push`.

User errors end as one line on stderr (`hf-ssl: error: ...`) and exit code 2, never a traceback.
"""

from __future__ import annotations

import argparse
import dataclasses
import errno
import json
import os
import re
import shlex
import sys
import typing
from pathlib import Path
from typing import Optional

from safetensors import SafetensorError

from .errors import HfSslError, first_line, user_message
from .training.allocator import keep_freed_memory


STORAGE_ERRORS = {errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EROFS, errno.EACCES, errno.EPERM, errno.ENOTDIR}


def _os_error_code(message: str) -> int | None:
    """The errno in a Rust I/O error's message ("... (os error 28)")."""
    found = re.search(r"\(os error (\d+)\)", message)
    return int(found.group(1)) if found else None


def main(argv: list[str] | None = None) -> None:
    argv = list(sys.argv[1:] if argv is None else argv)
    _quiet_known_warnings()
    # Before any tensor exists: glibc's malloc keeps freed memory mapped, so that a CPU training step does not map
    # (and zero) its activations' pages anew every step (10-15% of MAE's step on a CPU; training/allocator.py)
    keep_freed_memory()
    try:
        if not argv or argv[0].startswith("-") and argv[0] not in ("-h", "--help"):
            argv = ["pretrain", *argv]
        command, rest = argv[0], argv[1:]
        if command in ("-h", "--help"):
            print(__doc__.strip() + "\n\nRun `hf-ssl COMMAND --help` for a command's options.")
            return
        commands = {"list": list_methods, "pretrain": pretrain, "evaluate": evaluate, "embed": embed,
                    "benchmark": benchmark, "push": push}
        if command not in commands:
            raise HfSslError(f"unknown command '{command}' (commands: {', '.join(commands)})")
        commands[command](rest)
    except HfSslError as error:
        print(f"hf-ssl: error: {user_message(error)}", file=sys.stderr)
        sys.exit(2)
    except (OSError, SafetensorError) as error:
        # A full disk or quota, a file-size limit, a read-only or unwritable place: the user's storage, not a bug.
        # No half-written export is left: it is staged in OUT/.export-* and moved into place when complete; a
        # half-written checkpoint is skipped on resume. safetensors' writer reports such failures as
        # "SafetensorError: Error while serializing: I/O error: File too large (os error 27)".
        code = error.errno if isinstance(error, OSError) else _os_error_code(str(error))
        if code not in STORAGE_ERRORS:
            raise
        where = f" {error.filename}" if isinstance(error, OSError) and error.filename else ""
        print(f"hf-ssl: error: cannot write{where}: {os.strerror(code)}", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt:
        print("hf-ssl: interrupted", file=sys.stderr)
        sys.exit(130)


def list_methods(argv: list[str]) -> None:
    from .registry import METHODS
    from .data.datasets import BUILTIN_DATASETS
    import hf_ssl  # noqa: F401  (registers the methods)

    _parser("hf-ssl list", "Print the methods, their presets and the built-in datasets.").parse_args(argv)
    width = max(len(name) for name in METHODS) + 2
    for method in METHODS.values():
        print(f"{method.name:<{width}} {method.summary}")
        for name, preset in method.presets.items():
            print(f"{'':<{width + 2}}--preset {name}: {preset.description}")
    print("\nbuilt-in datasets: " + ", ".join(BUILTIN_DATASETS) + " (or imagefolder:PATH, a Hub dataset id)")
    from .data.text import BUILTIN_TEXT_CORPORA

    print("built-in text corpora: " + ", ".join(BUILTIN_TEXT_CORPORA) + " (or text:GLOB, a Hub dataset id)")


def pretrain(argv: list[str]) -> None:
    from transformers import HfArgumentParser, TrainingArguments

    from .registry import get_method
    from .training.pretrain import AUTO_LOADER_WORKERS, PretrainArguments, bf16_by_default, build_config, run_pretraining
    import hf_ssl  # noqa: F401

    # Stage 1: which method and preset, so stage 2 can offer that method's flags and recipe defaults.
    first = argparse.ArgumentParser(add_help=False)
    first.add_argument("--method", default=PretrainArguments.method)
    first.add_argument("--preset", default=None)
    first.add_argument("--dataset", default=PretrainArguments.dataset)
    known, _ = first.parse_known_args(argv)
    method = get_method(known.method)
    preset = known.preset or method.default_preset
    if preset not in method.presets:
        raise HfSslError(f"unknown preset '{preset}' for {method.name} (available: {', '.join(method.presets)})")

    method_arguments = method_arguments_dataclass(method)
    parser = HfArgumentParser((PretrainArguments, method_arguments, TrainingArguments), prog="hf-ssl pretrain",
                              description=f"Pretrain with Trainer. Method flags are {method.config_class.__name__} fields.")
    _one_line_errors(parser)
    from .modalities import get_modality

    known.dataset = known.dataset or get_modality(method.modality).default_dataset
    dataset_slug = known.dataset.split(":")[-1].rstrip("/").split("/")[-1] or "data"
    import torch

    parser.set_defaults(
        output_dir=os.path.join("outputs", f"{method.name}-{dataset_slug}"), logging_steps=10, save_steps=500,
        save_total_limit=2, report_to="none", ddp_find_unused_parameters=False,
        dataloader_num_workers=AUTO_LOADER_WORKERS,  # the cores less one (`loader_workers`)
        # Without a GPU, say so: TrainingArguments then accepts --bf16 (CPU autocast) instead of refusing it.
        use_cpu=not torch.cuda.is_available(),
        **method.presets[preset].training,
    )
    try:
        *parsed, remaining = parser.parse_args_into_dataclasses(args=argv, return_remaining_strings=True)
    except ValueError as e:  # TrainingArguments' own validation (incompatible flags)
        raise HfSslError(f"invalid training arguments: {first_line(e)}") from None
    if remaining:
        raise HfSslError(f"unrecognized arguments: {' '.join(remaining)} (see `hf-ssl pretrain --help`)")
    args, method_flags, training_args, *unused = parsed
    if training_args.eval_steps is not None and training_args.eval_strategy == "no":
        # `--eval_steps N` alone means evaluating every N steps (TrainingArguments would ignore it)
        training_args = dataclasses.replace(training_args, eval_strategy="steps")
    if training_args.max_steps == 0:
        raise HfSslError("--max_steps 0 trains nothing: give a positive number of steps (or -1 to train for "
                         "--num_train_epochs)")
    if unused:  # a preset's recipe names a key TrainingArguments does not have: a bug in the preset
        raise RuntimeError(f"preset {preset} sets unknown TrainingArguments: {sorted(vars(unused[0]))}")
    overrides = {k: v for k, v in dataclasses.asdict(method_flags).items() if v is not None}
    if not any(arg == "--bf16" or arg.startswith("--bf16=") for arg in argv):
        # Precision follows the hardware, the preset and the backbone (`bf16_by_default`); the card's hardware line
        # says which.
        config, _ = build_config(method, args, overrides)
        training_args = dataclasses.replace(training_args, bf16=bf16_by_default(config, method.presets[preset]))
    results = run_pretraining(method, args, training_args, overrides, portable_command(["hf-ssl", "pretrain", *argv]))
    # Every process tears its process group down itself, once nothing collective is left (the other processes
    # return right after training, the main one after the export): left to interpreter shutdown, gloo's threads
    # aborted a finished process now and then ("terminate called without an active exception", exit -6).
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        torch.distributed.destroy_process_group()
    if results is not None and training_args.process_index == 0:
        print(f"\nExported to {training_args.output_dir} (native transformers; full {method.display_name} model in ssl/)")
        for name, entry in results.items():
            value = entry["value"]
            shown = f"{100 * value:.2f}%" if entry.get("metric", "accuracy") == "accuracy" else f"{value:.4g}"
            compared = ", ".join(f"{baseline} {100 * v:.2f}%" for baseline, v in entry.get("baselines", {}).items())
            print(f"{name} {entry.get('metric', 'accuracy')} on {entry['dataset']} {entry['split']}: {shown}"
                  + (f" (same protocol on {compared})" if compared else ""))


def evaluate(argv: list[str]) -> None:
    from .evaluation.few_shot import DEFAULT_EPISODES, DEFAULT_SHOTS
    from .evaluation.finetune import FinetuneSettings

    parser = _parser("hf-ssl evaluate", "Evaluate an exported model on a labelled dataset; prints JSON. The protocols "
                     "are those of the folder's modality (recorded by `hf-ssl pretrain`, or read from its config).")
    parser.add_argument("--model", required=True, help="folder written by `hf-ssl pretrain` (or any transformers model "
                        "folder or Hub id: vision encoder, text encoder or LM, CLIP; or a word2vec text file)")
    parser.add_argument("--dataset", default=None, help="default: digits (images), python-docs (language models; "
                        "austen for finetune)")
    parser.add_argument("--data_dir", default=None)
    parser.add_argument("--image_column", default=None)
    parser.add_argument("--label_column", default=None)
    parser.add_argument("--text_column", default=None, help="captions (retrieval)")
    parser.add_argument("--protocol", default="knn", help="comma-separated: knn, linear, few-shot (k labels per class, "
                        "mean/std over episodes), finetune (end to end with Trainer; also text encoders, on a dataset "
                        "with text and label columns: default austen); image-text models also "
                        "zero-shot (prompt-ensembled class names, top-1/top-5) and retrieval (recall@1/5 both ways); masked "
                        "language models fill-mask, causal ones perplexity (held-out, next to a unigram baseline); word2vec "
                        "word-similarity (Spearman) and analogy (3CosAdd accuracy)")
    parser.add_argument("--k", type=int, default=20, help="kNN neighbours")
    parser.add_argument("--temperature", type=float, default=0.07, help="kNN vote temperature (<=0: majority vote)")
    parser.add_argument("--pooling", default=None, choices=["auto", "cls", "mean"],
                        help="features of a ViT-like encoder: the [CLS] token or the mean of the patch tokens (default: "
                             "what its method trained with, recorded in OUT; else the mean)")
    parser.add_argument("--batch_size", type=int, default=256)
    parser.add_argument("--baselines", action="store_true", help="image encoders: also run the frozen-feature "
                        "protocols on raw pixels and on a randomly initialised twin of the encoder")
    parser.add_argument("--shots", type=int, default=DEFAULT_SHOTS, help="few-shot: labelled examples per class")
    parser.add_argument("--episodes", type=int, default=DEFAULT_EPISODES, help="few-shot: seeded draws averaged")
    parser.add_argument("--epochs", type=float, default=FinetuneSettings.epochs, help="finetune: training epochs")
    parser.add_argument("--learning_rate", type=float, default=FinetuneSettings.learning_rate,
                        help="finetune: peak AdamW learning rate (linear warmup over 10%% of the steps, then cosine)")
    parser.add_argument("--finetune_batch_size", type=int, default=FinetuneSettings.batch_size,
                        help="finetune: training batch size")
    parser.add_argument("--pairs", default=None, help="word-similarity: word1,word2,score file (default: gensim's "
                        "WordSim-353)")
    parser.add_argument("--questions", default=None, help="analogy: Google analogy style file (default: gensim's "
                        "questions-words.txt)")
    args = parser.parse_args(argv)

    from .modalities import DataSpec, EvaluationSpec, modality_of_folder

    import hf_ssl  # noqa: F401  (registers the methods: an OUT/ssl config names their model types)

    spec = EvaluationSpec(
        protocols=tuple(p.strip() for p in args.protocol.split(",") if p.strip()),
        data=DataSpec(args.dataset, args.data_dir, args.image_column, args.label_column, args.text_column),
        k=args.k, temperature=args.temperature if args.temperature > 0 else None, pooling=args.pooling,
        batch_size=args.batch_size, baselines=args.baselines, shots=args.shots, episodes=args.episodes,
        finetune=FinetuneSettings(epochs=args.epochs, learning_rate=args.learning_rate,
                                  batch_size=args.finetune_batch_size),
        pairs=args.pairs, questions=args.questions)
    modality = modality_of_folder(args.model)
    modality.check_protocols(spec.protocols)  # before the model or the data load
    _record_evaluation(Path(args.model), modality.evaluate(args.model, spec))


def embed(argv: list[str]) -> None:
    from .embeddings import EmbeddingsFile, check_output_path
    from .modalities import DataSpec, modality_of_folder

    parser = _parser("hf-ssl embed", "Write an exported encoder's features of every example of a dataset to a Parquet "
                     "(id, split, label, embedding) or .npy file, pooled as its evaluation pools them.")
    parser.add_argument("--model", required=True, help="folder written by `hf-ssl pretrain`, or a transformers vision "
                        "encoder folder or Hub id")
    parser.add_argument("--dataset", default=None, help="default: digits")
    parser.add_argument("--data_dir", default=None)
    parser.add_argument("--image_column", default=None)
    parser.add_argument("--label_column", default=None)
    parser.add_argument("--split", default=None, help="comma-separated splits (default: all)")
    parser.add_argument("--output", required=True, help="FILE.parquet, or FILE.npy (ids in FILE.npy.ids.txt)")
    parser.add_argument("--pooling", default=None, choices=["auto", "cls", "mean"],
                        help="ViT-like encoders: the [CLS] token or the mean of the patch tokens (default: what its "
                             "method trained with, recorded in OUT)")
    parser.add_argument("--batch_size", type=int, default=256)
    args = parser.parse_args(argv)
    check_output_path(args.output)  # before minutes of loading

    import hf_ssl  # noqa: F401  (registers the methods: an OUT/ssl config names their model types)

    modality = modality_of_folder(args.model)
    splits = [s.strip() for s in args.split.split(",") if s.strip()] if args.split else None
    data = DataSpec(args.dataset or modality.default_dataset, args.data_dir, args.image_column,
                    args.label_column)
    total, batches = modality.embeddings(args.model, data, splits, args.pooling, args.batch_size)
    with EmbeddingsFile(args.output, total) as output:
        for batch in batches:
            output.write(batch)
    print(f"Wrote {total} embeddings to {args.output}")


def benchmark(argv: list[str]) -> None:
    parser = _parser("hf-ssl benchmark", "How fast a method trains here: the model's step (time, FLOP/s, MFU against "
                     "the measured matmul peak), its data pipeline, `hf-ssl pretrain` end to end (with the share of "
                     "time waiting for data) and peak memory; --reference times the method's reference "
                     "implementation beside it.")
    parser.add_argument("--method", default="mae")
    parser.add_argument("--preset", default=None)
    parser.add_argument("--dataset", default=None, help="default: the method's (digits for image methods)")
    parser.add_argument("--steps", type=int, default=10, help="timed model steps (after 2 warm-up steps)")
    parser.add_argument("--e2e_steps", type=int, default=20, help="optimizer steps of the end-to-end run (0: skip)")
    parser.add_argument("--reference", action="store_true", help="also time the reference implementation")
    parser.add_argument("--reference_threads", type=int, default=2,
                        help="threads of a reference that trains end to end (word2vec: gensim's workers)")
    parser.add_argument("--bf16", action=argparse.BooleanOptionalAction, default=None,
                        help="bf16 autocast, both implementations (default: what `hf-ssl pretrain` picks on this "
                             "hardware for the method's backbone; with --reference in bf16 the reference is also "
                             "timed in fp32)")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    args = parser.parse_args(argv)

    import hf_ssl  # noqa: F401  (registers the methods)
    from .benchmark import format_table, run_benchmark
    from .registry import get_method

    method = get_method(args.method)
    if args.preset is not None and args.preset not in method.presets:
        raise HfSslError(f"unknown preset '{args.preset}' for {method.name} (available: {', '.join(method.presets)})")
    result = run_benchmark(method, args.preset, args.dataset, args.steps, args.e2e_steps, args.reference, args.bf16,
                           args.reference_threads)
    print(json.dumps(result, indent=2) if args.json else format_table(result))


def _record_evaluation(model_dir: Path, results: dict) -> None:
    """Print the results as JSON; in a writable model folder, merge them into eval_results.json and the card."""
    from .hub.card import EVAL_RESULTS_FILE, RUN_INFO_FILE, read_json, write_model_card
    from .hub.export import write_json_atomic
    from .modeling.method_model import SSL_SUBDIR

    print(json.dumps(results, indent=2))
    if model_dir.is_dir() and os.access(model_dir, os.W_OK):
        all_results = {**read_json(model_dir / EVAL_RESULTS_FILE), **results}
        write_json_atomic(model_dir / EVAL_RESULTS_FILE, all_results)
        run_info = read_json(model_dir / SSL_SUBDIR / RUN_INFO_FILE)
        if run_info:
            write_model_card(model_dir, run_info, all_results)


def push(argv: list[str]) -> None:
    parser = _parser("hf-ssl push", "Upload a folder written by `hf-ssl pretrain` to the Hub (without checkpoints/). "
                     "The Hub and the token come from HF_ENDPOINT and HF_TOKEN (or `hf auth login`).")
    parser.add_argument("folder", help="the --output_dir of `hf-ssl pretrain`")
    parser.add_argument("--repo_id", required=True, help="ORG/NAME; the repo is created if it does not exist")
    parser.add_argument("--private", action="store_true", help="create the repo private (refused for an existing public repo)")
    parser.add_argument("--revision", default=None, help="branch to push to, created from main if missing (default: main)")
    parser.add_argument("--commit_message", default=None)
    args = parser.parse_args(argv)

    from .hub.push import push_folder

    commit_url = push_folder(args.folder, args.repo_id, private=args.private, revision=args.revision,
                             commit_message=args.commit_message)
    print(f"Pushed {args.folder} to {args.repo_id}" + (f" (branch {args.revision})" if args.revision else "")
          + f": {commit_url}")


def method_arguments_dataclass(method) -> type:
    """A dataclass with one optional flag per hyperparameter the method's config declares (`--mask_ratio`...);
    None means "keep the preset's value"."""
    from .modeling.image_method import method_config_fields
    from .training.pretrain import PretrainArguments

    run_flags = {f.name for f in dataclasses.fields(PretrainArguments)}  # already flags; they reach the config too
    fields = []
    for name in method_config_fields(method.config_class):
        if name in run_flags:
            continue
        owner = next(c for c in method.config_class.__mro__ if name in c.__dict__.get("__annotations__", {}))
        hint = owner.__annotations__[name]
        if isinstance(hint, str):  # postponed annotations: resolve in the declaring module
            hint = eval(hint, vars(sys.modules[owner.__module__]))  # noqa: S307 (our own source code)
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        base = args[0] if args else hint
        default = getattr(method.config_class, name, None)
        fields.append((name, Optional[base], dataclasses.field(
            default=None, metadata={"help": f"{method.config_class.__name__}.{name} (paper default: {default})"})))
    return dataclasses.make_dataclass(f"{method.config_class.__name__}Arguments", fields)


def portable_command(argv: list[str]) -> str:
    """The command line for a model card, with local paths reduced to their last component."""
    from .hub.export import portable_value

    def portable(token: str) -> str:
        located = token.startswith(("imagefolder:", "webdataset:", "text:"))
        prefix, sep, value = token.partition(":") if located else ("", "", token)
        return f"{prefix}{sep}{portable_value(value)}"

    return shlex.join(portable(t) for t in argv)


def _quiet_known_warnings() -> None:
    # Without torchvision, transformers warns on every image-processor load that it falls back to PIL;
    # hf-ssl never uses torchvision (it has no CPU wheel), so the warning is noise.
    from transformers.utils import logging as hf_logging

    for handler in hf_logging._get_library_root_logger().handlers:
        handler.addFilter(lambda record: "requires torchvision" not in record.getMessage())
    # datasets' "Generating train split" bars for local files are noise next to Trainer's progress bar
    # (downloads keep huggingface_hub's own bars).
    import datasets

    datasets.disable_progress_bars()


def _parser(prog: str, description: str) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=prog, description=description)
    _one_line_errors(parser)
    return parser


def _one_line_errors(parser: argparse.ArgumentParser) -> None:
    def error(message: str) -> typing.NoReturn:
        raise HfSslError(f"{parser.prog}: {message}")

    parser.error = error  # type: ignore[method-assign]


if __name__ == "__main__":
    main()
