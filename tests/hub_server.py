"""A test double of the Hugging Face Hub's HTTP protocol, served on 127.0.0.1.

No public Hub is reachable from the test machines, yet publishing must be tested with the real
`huggingface_hub` client over real HTTP. Point `HF_ENDPOINT` at `HubServer.url` (before `huggingface_hub`
or `transformers` is imported) and `create_repo`, `create_branch`, `upload_folder`, `hf_hub_download`,
`snapshot_download` and `from_pretrained` work against it. It implements what the client of
huggingface_hub 1.x/2.x calls, no more:

    GET  /api/whoami-v2                                   who the bearer token belongs to
    POST /api/repos/create                                {name, organization, visibility|private}
    POST /api/validate-yaml                               README.md front matter (parsed with PyYAML)
    POST /api/models/{repo}/branch/{branch}               {startingPoint}
    POST /api/models/{repo}/preupload/{rev}               every file "regular" (inline base64, so no LFS/Xet)
    POST /api/models/{repo}/commit/{rev}                  NDJSON: header, file (base64), deletedFile/Folder
    GET  /api/models/{repo}[/revision/{rev}]              model info: sha, private, siblings
    GET  /api/models/{repo}/tree/{rev}[/{path}]           files and folders (?recursive=true)
    HEAD/GET /{repo}/resolve/{rev}/{path}                 content + ETag, X-Repo-Commit, Content-Length

Anything else is a 404 (the client's best-effort `GET /api/agent-harnesses` among them, which it ignores).
Repos live in memory: each branch points to a commit, each commit is an immutable {path: bytes} snapshot,
so a revision is a branch name or a 40-hex commit id, as on the Hub. Writes need a known token
(`Authorization: Bearer ...`); a private repo is invisible (404 RepoNotFound, as on the Hub) without one.
Errors carry the `X-Error-Code` header the client maps to its exception types. Every request is recorded
in `requests` so tests can assert what the client did (or did not) call.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, unquote, urlsplit

import yaml


def git_blob_sha(content: bytes) -> str:
    """The git object id of a file, which the Hub uses as a regular file's oid and ETag."""
    return hashlib.sha1(b"blob %d\0" % len(content) + content).hexdigest()


@dataclass
class Commit:
    oid: str
    message: str
    files: dict[str, bytes]


@dataclass
class Repo:
    private: bool
    branches: dict[str, str] = field(default_factory=dict)   # branch -> commit oid
    commits: dict[str, Commit] = field(default_factory=dict)

    def resolve(self, revision: str) -> Commit | None:
        oid = self.branches.get(revision, revision)
        return self.commits.get(oid)

    def commit(self, branch: str, message: str, files: dict[str, bytes]) -> Commit:
        # A fresh 40-hex id, as git's (which hashes a timestamp too): no two commits share one.
        commit = Commit(hashlib.sha1(os.urandom(20)).hexdigest(), message, files)
        self.commits[commit.oid] = commit
        self.branches[branch] = commit.oid
        return commit


class HubError(Exception):
    def __init__(self, status: int, message: str, code: str | None = None, commit: str | None = None, **extra):
        super().__init__(message)
        self.status, self.message, self.code, self.commit, self.extra = status, message, code, commit, extra


class HubServer:
    """`with HubServer(tokens={"hf_secret": "alice"}) as hub: ... hub.url ... hub.repos["org/name"]`."""

    def __init__(self, tokens: dict[str, str] | None = None):
        self.tokens = dict(tokens or {})          # bearer token -> user name
        self.repos: dict[str, Repo] = {}
        self.requests: list[tuple[str, str]] = []  # (method, path) of every request, in order
        self._lock = threading.Lock()               # the handler threads share the repos
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), _make_handler(self))
        self._httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._httpd.server_address[1]}"
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)

    def __enter__(self) -> "HubServer":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()

    def files(self, repo_id: str, revision: str = "main") -> dict[str, bytes]:
        return dict(self.repos[repo_id].resolve(revision).files)

    def commit_messages(self, repo_id: str) -> list[str]:
        return [c.message for c in self.repos[repo_id].commits.values()]

    # -- request handling -------------------------------------------------------------------------------

    def handle(self, method: str, raw_path: str, headers, body: bytes) -> tuple[int, dict, bytes]:
        url = urlsplit(raw_path)
        self.requests.append((method, unquote(url.path)))
        # Split before unquoting: a revision like "my/branch" arrives as one segment, "my%2Fbranch".
        parts = url.path.strip("/").split("/")
        query = {k: v[-1] for k, v in parse_qs(url.query).items()}
        user = self.tokens.get(headers.get("Authorization", "").removeprefix("Bearer ").strip())
        try:
            with self._lock:
                return self._route(method, parts, query, user, body)
        except HubError as e:
            error_headers = {"X-Error-Message": e.message}
            if e.code:
                error_headers["X-Error-Code"] = e.code
            if e.commit:
                error_headers["X-Repo-Commit"] = e.commit
            return e.status, error_headers, json.dumps({"error": e.message, **e.extra}).encode()

    def _route(self, method: str, parts: list[str], query: dict, user: str | None, body: bytes):
        if parts[:2] == ["api", "whoami-v2"]:
            if user is None:
                raise HubError(401, "Invalid credentials in Authorization header")
            return _json({"type": "user", "name": user, "orgs": []})
        if parts[:3] == ["api", "repos", "create"] and method == "POST":
            return self._create_repo(json.loads(body), user)
        if parts[:2] == ["api", "validate-yaml"] and method == "POST":
            return self._validate_yaml(json.loads(body)["content"])
        if parts[:2] == ["api", "models"] and len(parts) >= 4:
            repo_id, action, rest = "/".join(parts[2:4]), parts[4] if len(parts) > 4 else None, parts[5:]
            repo = self._readable_repo(repo_id, user)
            if action is None or action == "revision":
                return self._model_info(repo_id, repo, unquote(rest[0]) if rest else "main")
            if action == "tree" and method == "GET":
                return self._tree(repo, unquote(rest[0]), unquote("/".join(rest[1:])), query.get("recursive") == "true")
            if user is None:  # everything below writes
                raise HubError(401, "You must be authenticated to write to this repo")
            if action == "branch" and method == "POST":
                return self._create_branch(repo, unquote(rest[0]), json.loads(body or b"{}"))
            if action == "preupload" and method == "POST":
                return self._preupload(repo, unquote(rest[0]), json.loads(body))
            if action == "commit" and method == "POST":
                return self._commit(repo_id, repo, unquote(rest[0]), body)
        if len(parts) >= 5 and parts[2] == "resolve" and method in ("GET", "HEAD"):
            repo = self._readable_repo("/".join(parts[:2]), user)
            return self._resolve(repo, unquote(parts[3]), unquote("/".join(parts[4:])), method)
        raise HubError(404, f"{method} /{'/'.join(parts)} is not implemented by the test Hub")

    def _readable_repo(self, repo_id: str, user: str | None) -> Repo:
        repo = self.repos.get(repo_id)
        if repo is None or (repo.private and user is None):  # the Hub does not reveal that a private repo exists
            raise HubError(401 if user is None else 404, "Repository not found", "RepoNotFound")
        return repo

    def _create_repo(self, payload: dict, user: str | None):
        if user is None:
            raise HubError(401, "You must be authenticated to create a repo")
        repo_id = f"{payload.get('organization') or user}/{payload['name']}"
        if repo_id in self.repos:
            raise HubError(409, "You already created this model repo", url=f"{self.url}/{repo_id}")
        private = payload.get("visibility", "private" if payload.get("private") else "public") == "private"
        self.repos[repo_id] = repo = Repo(private=private)
        repo.commit("main", "initial commit", {})
        return _json({"url": f"{self.url}/{repo_id}", "name": repo_id, "id": repo_id})

    def _validate_yaml(self, content: str):
        if content.startswith("---"):
            try:
                yaml.safe_load(content.split("---", 2)[1])
            except (yaml.YAMLError, IndexError) as e:
                return 400, {}, json.dumps({"errors": [{"message": str(e)}], "warnings": []}).encode()
        return _json({"errors": [], "warnings": []})

    def _create_branch(self, repo: Repo, branch: str, payload: dict):
        if branch in repo.branches:
            raise HubError(409, f"Reference already exists: refs/heads/{branch}")
        start = repo.resolve(payload.get("startingPoint") or "main")
        if start is None:
            raise HubError(404, "Invalid rev id", "RevisionNotFound")
        repo.branches[branch] = start.oid
        return _json({})

    def _preupload(self, repo: Repo, revision: str, payload: dict):
        # "regular" for every file: the commit then carries the content inline (base64), so neither LFS nor
        # Xet storage is needed. The oid of an unchanged file lets the client skip it, as on the Hub.
        current = repo.resolve(revision)
        files = current.files if current else {}
        return _json({"files": [
            {"path": f["path"], "uploadMode": "regular", "shouldIgnore": False,
             "oid": git_blob_sha(files[f["path"]]) if f["path"] in files else None}
            for f in payload["files"]]})

    def _commit(self, repo_id: str, repo: Repo, revision: str, body: bytes):
        if revision not in repo.branches:
            raise HubError(404, f"Invalid rev id: {revision}", "RevisionNotFound")
        lines = [json.loads(line) for line in body.decode().splitlines() if line.strip()]
        header = next(line["value"] for line in lines if line["key"] == "header")
        if header.get("parentCommit") and header["parentCommit"] != repo.branches[revision]:
            raise HubError(412, "A commit has happened since. Please refresh and try again.")
        files = dict(repo.resolve(revision).files)
        for line in lines:
            key, value = line["key"], line["value"]
            if key == "file":
                files[value["path"]] = base64.b64decode(value["content"])
            elif key == "deletedFile":
                files.pop(value["path"], None)
            elif key == "deletedFolder":
                files = {p: c for p, c in files.items() if not p.startswith(value["path"].rstrip("/") + "/")}
            elif key != "header":  # lfsFile / xet: never requested, since preupload says "regular"
                raise HubError(400, f"commit operation '{key}' is not supported by the test Hub")
        commit = repo.commit(revision, header["summary"], files)
        return _json({"commitUrl": f"{self.url}/{repo_id}/commit/{commit.oid}", "commitOid": commit.oid,
                      "pullRequestUrl": None})

    def _model_info(self, repo_id: str, repo: Repo, revision: str):
        commit = self._commit_at(repo, revision)
        return _json({"id": repo_id, "modelId": repo_id, "sha": commit.oid, "private": repo.private,
                      "siblings": [{"rfilename": path} for path in sorted(commit.files)], "tags": []})

    def _tree(self, repo: Repo, revision: str, folder: str, recursive: bool):
        commit = self._commit_at(repo, revision)
        prefix = f"{folder.strip('/')}/" if folder.strip("/") else ""
        entries: dict[str, dict] = {}
        for path, content in sorted(commit.files.items()):
            if not path.startswith(prefix):
                continue
            segments = path[len(prefix):].split("/")
            for depth in range(1, len(segments)):  # the folders on the way
                sub = prefix + "/".join(segments[:depth])
                entries.setdefault(sub, {"type": "directory", "path": sub, "oid": hashlib.sha1(sub.encode()).hexdigest()})
                if not recursive:
                    break
            if recursive or len(segments) == 1:
                entries[path] = {"type": "file", "path": path, "size": len(content), "oid": git_blob_sha(content)}
        if prefix and not entries:
            raise HubError(404, f"{folder} does not exist at {revision}", "EntryNotFound")
        return _json(list(entries.values()))

    def _resolve(self, repo: Repo, revision: str, path: str, method: str):
        commit = self._commit_at(repo, revision)
        if path not in commit.files:
            raise HubError(404, f"Entry not found: {path}", "EntryNotFound", commit=commit.oid)
        content = commit.files[path]
        headers = {"ETag": f'"{git_blob_sha(content)}"', "X-Repo-Commit": commit.oid,
                   "Content-Type": "application/octet-stream"}
        return 200, headers, content  # for a HEAD the handler sends the headers (with Content-Length) only

    def _commit_at(self, repo: Repo, revision: str) -> Commit:
        commit = repo.resolve(revision)
        if commit is None:
            raise HubError(404, f"Invalid rev id: {revision}", "RevisionNotFound")
        return commit


def _json(data) -> tuple[int, dict, bytes]:
    return 200, {"Content-Type": "application/json"}, json.dumps(data).encode()


def _make_handler(hub: HubServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive, as the client's connection pool expects

        def _serve(self) -> None:
            if "chunked" in self.headers.get("Transfer-Encoding", ""):
                body = b""
                while size := int(self.rfile.readline().split(b";")[0], 16):
                    body += self.rfile.read(size)
                    self.rfile.readline()  # the CRLF after each chunk
                self.rfile.readline()      # the CRLF after the last (empty) chunk
            else:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            status, headers, payload = hub.handle(self.command, self.path, self.headers, body)
            self.send_response(status)
            for name, value in headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(payload)))  # a HEAD announces the size it does not send
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(payload)

        do_GET = do_HEAD = do_POST = do_PUT = do_DELETE = _serve

        def log_message(self, format, *args) -> None:  # requests are recorded in hub.requests instead
            pass

    return Handler
