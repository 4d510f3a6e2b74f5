"""`hf-ssl push`: upload a Hub-ready folder written by `hf-ssl pretrain` with `huggingface_hub`.

What is published is OUT as users load it (the encoder, its processor, the card, `ssl/`), never
`checkpoints/` (optimizer states, for resuming only) nor hidden staging/temporary files. The endpoint
and the token come from huggingface_hub's own settings (`HF_ENDPOINT`, `HF_TOKEN`, `hf auth login`), so
a mirror or a private Hub works without any hf-ssl option.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from ..errors import HfSslError, first_line

# Matched by fnmatch against paths relative to OUT, where "*" also crosses "/":
IGNORE_PATTERNS = [
    "checkpoints/*",            # Trainer checkpoints (training/pretrain.py CHECKPOINTS_SUBDIR)
    ".*", "*/.*",               # hidden files and folders at any depth: export staging, atomic-write temporaries
    "*__pycache__*", "*.pyc",   # left behind when someone imported the remote code in ssl/
]
REQUIRED_FILES = ("config.json", "README.md")   # what every `hf-ssl pretrain` export has at its root
_REPO_ID = re.compile(r"[A-Za-z0-9][\w.-]*/[A-Za-z0-9][\w.-]*")


def validate_repo_id(repo_id: str | None) -> str:
    """`ORG/NAME` as the Hub accepts it, or an HfSslError; called before training so that a typo does not
    surface only after hours of pretraining."""
    from huggingface_hub.utils import HFValidationError
    from huggingface_hub.utils import validate_repo_id as hub_validate

    if not repo_id or not _REPO_ID.fullmatch(repo_id):
        raise HfSslError(f"invalid repo id '{repo_id}': expected ORG/NAME (letters, digits, '-', '_', '.')")
    try:
        hub_validate(repo_id)  # the Hub's own rules: no '--' or '..', at most 96 characters, ...
    except HFValidationError as e:
        raise HfSslError(f"invalid repo id '{repo_id}': {first_line(e)}") from None
    return repo_id


def validate_folder(folder: str | os.PathLike) -> Path:
    folder = Path(folder)
    if not folder.is_dir():
        raise HfSslError(f"{folder} is not a folder (expected the --output_dir of `hf-ssl pretrain`)")
    missing = [name for name in REQUIRED_FILES if not (folder / name).is_file()]
    if missing:
        raise HfSslError(f"{folder} was not written by `hf-ssl pretrain` (no {' or '.join(missing)})")
    return folder


def push_folder(
    folder: str | os.PathLike, repo_id: str, *, private: bool = False, revision: str | None = None,
    token: str | None = None, commit_message: str | None = None,
) -> str:
    """Create `repo_id` if needed (and the branch `revision`), upload `folder` minus `checkpoints/` and hidden
    files in one commit, and return the commit's URL. Any Hub or network failure is an HfSslError of one line."""
    folder = validate_folder(folder)
    validate_repo_id(repo_id)
    from huggingface_hub import HfApi

    api = HfApi(token=token)  # None: HF_TOKEN or the stored login, as everywhere in huggingface_hub
    try:
        # private=None, not False: without --private an existing repo keeps its visibility and a new one
        # follows the organisation's default, as with the Hub's own tools.
        api.create_repo(repo_id, private=True if private else None, exist_ok=True)
        # create_repo ignores `private` for an existing repo: never publish into a public one what the user
        # asked to keep private.
        if private and not api.repo_info(repo_id).private:
            raise HfSslError(f"{repo_id} already exists and is public; --private does not change the visibility of "
                             "an existing repo (change it in the repo's settings, or push to another repo)")
        if revision:
            api.create_branch(repo_id, branch=revision, exist_ok=True)
    except _network_errors() as e:
        raise HfSslError(f"push to {repo_id} failed: {_describe(e, api.endpoint)}") from None
    _name_repo_in_card(folder, repo_id)  # once the repo is known to accept the push
    try:
        commit = api.upload_folder(
            repo_id=repo_id, folder_path=folder, revision=revision, ignore_patterns=list(IGNORE_PATTERNS),
            commit_message=commit_message or f"Upload {folder.resolve().name} with hf-ssl",
        )
    except _network_errors() as e:
        raise HfSslError(f"push to {repo_id} failed: {_describe(e, api.endpoint)}") from None
    return commit.commit_url


def _name_repo_in_card(folder: Path, repo_id: str) -> None:
    """Re-render the card so that its loading code names `repo_id` instead of the ORG/NAME placeholder (only for
    folders with hf-ssl's training record; the folder then says what the Hub will hold)."""
    from .card import EVAL_RESULTS_FILE, RUN_INFO_FILE, read_json, write_model_card
    from ..modeling.method_model import SSL_SUBDIR
    from .export import write_json_atomic

    run_info = read_json(folder / SSL_SUBDIR / RUN_INFO_FILE)
    if run_info and run_info.get("repo_id") != repo_id:
        run_info["repo_id"] = repo_id
        write_json_atomic(folder / SSL_SUBDIR / RUN_INFO_FILE, run_info)
        write_model_card(folder, run_info, read_json(folder / EVAL_RESULTS_FILE))


def _network_errors() -> tuple[type[BaseException], ...]:
    # huggingface_hub 2.x talks HTTP through httpx2, 1.x through httpx; HfHubHTTPError derives from that
    # library's HTTPError, which also covers refused connections and timeouts. ValueError: the Hub rejected
    # the card's metadata (validate-yaml) or answered something the client could not parse.
    try:
        from httpx2 import HTTPError
    except ImportError:
        from httpx import HTTPError
    return HTTPError, OSError, ValueError


def _describe(error: BaseException, endpoint: str) -> str:
    response = getattr(error, "response", None)
    status = getattr(response, "status_code", None) if response is not None else None
    if status in (401, 403):
        return f"not authorised by {endpoint} (HTTP {status}); set HF_TOKEN to a token with write access"
    if status is None and not isinstance(error, ValueError):  # no answer at all
        return f"cannot reach {endpoint} ({first_line(error)})"
    return first_line(error)
