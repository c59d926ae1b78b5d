"""A small Hugging Face hub on 127.0.0.1 for the download tests, and a hand-built hub cache.

:class:`FakeHub` serves what huggingface_hub's ``hf_hub_download`` and ``HfApi.model_info`` request
(read from huggingface_hub/file_download.py, hf_api.py and utils/_http.py):

- ``GET /api/models/{repo_id}[/revision/{quoted revision}]``: JSON with ``id``, ``sha`` (the commit)
  and ``siblings`` (``[{"rfilename": ...}]``).
- ``HEAD`` / ``GET /{repo_id}/resolve/{quoted revision}/{file}``: ``X-Repo-Commit`` (required: the
  commit the revision names), ``ETag`` (required: the blob's name in the cache) and ``Content-Length``.
  Small files are served directly with their git blob sha1 as ETag, as the hub does. Weights
  (``.safetensors``, ``.bin``) are LFS files: a 302 to a second server on another port (the CDN,
  another origin, whose redirect huggingface_hub does not follow on HEAD) with ``X-Linked-Etag`` (the
  sha256) and ``X-Linked-Size``; the GET then goes to the CDN.
- Errors as the hub gives them: 404 with ``X-Error-Code: RepoNotFound`` / ``RevisionNotFound`` /
  ``EntryNotFound`` (the last with ``X-Repo-Commit``), which huggingface_hub turns into its
  RepositoryNotFoundError / RevisionNotFoundError / RemoteEntryNotFoundError.

Every request is logged in ``requests`` as (server, method, unquoted path). HTTP/1.0: one request per
connection, so no keep-alive connection outlives a test.

:func:`write_cache` lays files out as huggingface_hub's cache does (``models--o--n/blobs/<etag>``,
``snapshots/<commit>/<file>`` relative symlinks to the blobs, ``refs/<revision>`` holding the commit).
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote, urlsplit

LFS_SUFFIXES = (".safetensors", ".bin")


def git_blob_sha1(data: bytes) -> str:
    """The hub's ETag of a file stored in git (not LFS): git's blob hash."""
    return hashlib.sha1(b"blob %d\x00" % len(data) + data).hexdigest()


def etag(name: str, data: bytes) -> str:
    """The blob name huggingface_hub uses: the sha256 of an LFS file, else the git blob sha1."""
    return hashlib.sha256(data).hexdigest() if name.endswith(LFS_SUFFIXES) else git_blob_sha1(data)


def commit_hash(files: dict[str, bytes], salt: str = "") -> str:
    h = hashlib.sha1(salt.encode())
    for name in sorted(files):
        h.update(name.encode() + b"\x00" + hashlib.sha256(files[name]).digest())
    return h.hexdigest()


def folder_files(folder: Path) -> dict[str, bytes]:
    """The files of a model folder (what save_pretrained wrote), by name."""
    return {p.name: p.read_bytes() for p in sorted(Path(folder).iterdir()) if p.is_file()}


def write_cache(cache: Path, repo_id: str, commits: dict[str, dict[str, bytes]], refs: dict[str, str]) -> Path:
    """Lay ``commits`` ({commit: {file: bytes}}) and ``refs`` ({revision: commit}) out as the hub cache."""
    repo = Path(cache) / ("models--" + repo_id.replace("/", "--"))
    for commit, files in commits.items():
        snapshot = repo / "snapshots" / commit
        snapshot.mkdir(parents=True, exist_ok=True)
        for name, data in files.items():
            blob = repo / "blobs" / etag(name, data)
            blob.parent.mkdir(parents=True, exist_ok=True)
            blob.write_bytes(data)
            (snapshot / name).symlink_to(os.path.relpath(blob, snapshot))
    for revision, commit in refs.items():
        ref = repo / "refs" / revision
        ref.parent.mkdir(parents=True, exist_ok=True)
        ref.write_text(commit)  # no newline: as huggingface_hub writes it
    return repo


class Repo:
    def __init__(self, commits: dict[str, dict[str, bytes]], refs: dict[str, str]) -> None:
        self.commits, self.refs = commits, refs

    def commit(self, revision: str) -> str | None:
        if revision in self.refs:
            return self.refs[revision]
        return revision if revision in self.commits else None


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.0"

    def log_message(self, *args) -> None:  # quiet
        pass

    def do_HEAD(self) -> None:
        self._serve(body=False)

    def do_GET(self) -> None:
        self._serve(body=True)

    def _send(self, status: int, headers: dict[str, str], data: bytes = b"", body: bool = True) -> None:
        self.send_response(status)
        for k, v in {**headers, "Content-Length": str(len(data))}.items():
            self.send_header(k, v)
        self.end_headers()
        if body and data:
            self.wfile.write(data)

    def _error(self, code: str, body: bool, **headers: str) -> None:
        self._send(
            404,
            {"X-Error-Code": code, "Content-Type": "application/json", **headers},
            json.dumps({"error": code}).encode(),
            body,
        )

    def _serve(self, body: bool) -> None:
        hub: FakeHub = self.server.hub  # type: ignore[attr-defined]
        raw = urlsplit(self.path).path
        hub.requests.append((self.server.role, self.command, unquote(raw)))  # type: ignore[attr-defined]
        if self.server.role == "cdn":  # type: ignore[attr-defined]
            data = hub.blobs.get(raw.removeprefix("/cdn/"))
            if data is None:
                return self._send(404, {}, b"", body)
            return self._send(200, {"Content-Type": "application/octet-stream", "ETag": f'"{raw[5:]}"'}, data, body)
        if raw.startswith("/api/models/"):
            rest = raw.removeprefix("/api/models/")
            repo_id, _, rev = rest.partition("/revision/")
            repo_id, rev = unquote(repo_id), unquote(rev) or "main"
            repo = hub.repos.get(repo_id)
            if repo is None:
                return self._error("RepoNotFound", body)
            commit = repo.commit(rev)
            if commit is None:
                return self._error("RevisionNotFound", body)
            info = {
                "id": repo_id,
                "modelId": repo_id,
                "sha": commit,
                "private": False,
                "siblings": [{"rfilename": n} for n in sorted(repo.commits[commit])],
            }
            return self._send(200, {"Content-Type": "application/json"}, json.dumps(info).encode(), body)
        left, sep, right = raw.partition("/resolve/")
        if not sep:
            return self._send(404, {}, b"", body)
        repo = hub.repos.get(unquote(left.lstrip("/")))
        if repo is None:
            return self._error("RepoNotFound", body)
        rev, _, name = right.partition("/")
        commit = repo.commit(unquote(rev))
        if commit is None:
            return self._error("RevisionNotFound", body)
        name = unquote(name)
        data = repo.commits[commit].get(name)
        if data is None:
            return self._error("EntryNotFound", body, **{"X-Repo-Commit": commit})
        tag = etag(name, data)
        if name.endswith(LFS_SUFFIXES):
            hub.blobs[tag] = data
            pointer = f"version https://git-lfs.github.com/spec/v1\noid sha256:{tag}\nsize {len(data)}\n".encode()
            headers = {
                "Location": f"{hub.cdn_url}/cdn/{tag}",
                "X-Repo-Commit": commit,
                "ETag": f'"{git_blob_sha1(pointer)}"',
                "X-Linked-Etag": f'"{tag}"',
                "X-Linked-Size": str(len(data)),
            }
            return self._send(302, headers, b"", body)
        headers = {"X-Repo-Commit": commit, "ETag": f'"{tag}"', "Content-Type": "application/octet-stream"}
        return self._send(200, headers, data, body)


class FakeHub:
    """The hub (``url``, for HF_ENDPOINT) and its CDN on two ports of 127.0.0.1; a context manager."""

    def __init__(self) -> None:
        self.repos: dict[str, Repo] = {}
        self.blobs: dict[str, bytes] = {}
        self.requests: list[tuple[str, str, str]] = []
        self._servers = []
        for role in ("hub", "cdn"):
            server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
            server.daemon_threads = True
            server.hub, server.role = self, role  # type: ignore[attr-defined]
            self._servers.append(server)
        self.url = f"http://127.0.0.1:{self._servers[0].server_address[1]}"
        self.cdn_url = f"http://127.0.0.1:{self._servers[1].server_address[1]}"
        self._threads = [threading.Thread(target=s.serve_forever, daemon=True) for s in self._servers]

    def add_repo(self, repo_id: str, commits: dict[str, dict[str, bytes]], refs: dict[str, str]) -> None:
        self.repos[repo_id] = Repo(commits, refs)

    def __enter__(self) -> FakeHub:
        for t in self._threads:
            t.start()
        return self

    def __exit__(self, *exc) -> None:
        for s in self._servers:
            s.shutdown()
            s.server_close()
