"""Hugging Face hub IDs -> local model folders, resolved as transformers resolves them.

:func:`resolve_model` is the one function the loaders call. A local path that exists is returned as
it is. A hub ID (``"owner/name"``) is looked up first in the local Hugging Face cache (the layout
huggingface_hub writes and transformers reads: ``models--owner--name/{refs,snapshots,blobs}``), so a
model that transformers already downloaded loads with no network. Otherwise, if huggingface_hub is
installed (the ``hub`` extra) and offline mode is off, the files vitc needs are downloaded into that
cache with huggingface_hub: config.json, preprocessor_config.json if the repo has one, and the weights
(the first of model.safetensors, its sharded index + shards, pytorch_model.bin, its index + shards).

huggingface_hub is imported only to download: ``import vitc`` never imports it. This module reads
no weights (see checkpoint.py, convert.py).
"""

from __future__ import annotations

import os
import re
import warnings
from pathlib import Path

from vitc.files import file_kind, open_regular, read_json_file, short_repr
from vitc.io.checkpoint import SAFETENSORS_FILE, SAFETENSORS_INDEX, TORCH_FILE, TORCH_INDEX

__all__ = ["ModelNotFoundError", "hub_cache_dir", "is_hub_id", "is_offline", "resolve_model"]

CONFIG_FILE = "config.json"
PREPROCESSOR_FILE = "preprocessor_config.json"
# In the order checkpoint.load_state_dict picks them from a folder.
WEIGHTS_FILES = (SAFETENSORS_FILE, SAFETENSORS_INDEX, TORCH_FILE, TORCH_INDEX)
DEFAULT_REVISION = "main"
DEFAULT_ENDPOINT = "https://huggingface.co"
INSTALL_HINT = "pip install 'vitc[hub]' (or pip install huggingface_hub)"

# huggingface_hub's rules (utils/_validators.py validate_repo_id): "name" or "namespace/name", each
# 1-96 of [A-Za-z0-9_.-] starting and ending with a word character; no "--" or ".."; no ".git" end.
_REPO_ID = re.compile(r"(\b[\w\-.]{1,96}\b/)?\b[\w\-.]{1,96}\b", re.ASCII)
# What a ref file in the cache holds: a full commit hash (huggingface_hub writes nothing else).
_COMMIT = re.compile(r"[0-9a-f]{40}")
# huggingface_hub's constants._is_true
_TRUE = {"1", "ON", "YES", "TRUE"}


class ModelNotFoundError(FileNotFoundError):
    """A model name that is neither an existing path nor a hub ID that could be resolved.

    ``name`` is what was asked for; ``detail`` says what was tried, ``"; "``-separated.
    """

    def __init__(self, name: str, tried: list[str]) -> None:
        self.name = name
        self.detail = "; ".join(tried)
        super().__init__(f"model not found: {name}: {self.detail}")

    def __reduce__(self):  # picklable (Ray workers, multiprocessing) despite the custom __init__
        return type(self), (self.name, self.detail.split("; "))


def is_hub_id(name: str) -> bool:
    """True if ``name`` is a valid Hugging Face repo ID (``"name"`` or ``"owner/name"``)."""
    return _REPO_ID.fullmatch(name) is not None and "--" not in name and ".." not in name and not name.endswith(".git")


def hub_cache_dir() -> Path:
    """The Hugging Face hub cache, read from the environment as huggingface_hub reads it.

    ``HF_HUB_CACHE``, else ``HUGGINGFACE_HUB_CACHE`` (its legacy name), else ``HF_HOME/hub``, with
    ``HF_HOME`` defaulting to ``$XDG_CACHE_HOME/huggingface`` or ``~/.cache/huggingface``. Read at
    every call, so a changed environment takes effect (huggingface_hub reads it once, at import).
    """
    home = os.environ.get("HF_HOME", os.path.join(os.environ.get("XDG_CACHE_HOME", "~/.cache"), "huggingface"))
    home = os.path.expandvars(os.path.expanduser(home))
    cache = os.environ.get("HF_HUB_CACHE", os.environ.get("HUGGINGFACE_HUB_CACHE", os.path.join(home, "hub")))
    return Path(os.path.expandvars(os.path.expanduser(cache)))


def is_offline() -> bool:
    """True if ``HF_HUB_OFFLINE`` (or, when that is unset or empty, ``TRANSFORMERS_OFFLINE``) is 1/ON/YES/TRUE."""
    value = os.environ.get("HF_HUB_OFFLINE") or os.environ.get("TRANSFORMERS_OFFLINE")
    return value is not None and value.upper() in _TRUE


def _check_revision(revision: object) -> str:
    """A branch, tag, ``refs/pr/N`` or commit hash: also a relative path under the cache's refs/."""
    parts = revision.split("/") if isinstance(revision, str) else []
    if (
        not parts
        or len(revision) > 256
        or any(p in ("", ".", "..") for p in parts)
        or "\\" in revision
        or "\x00" in revision
    ):
        raise ValueError(
            f"revision: expected a branch, tag or commit hash (e.g. 'main', 'v1.0', 'refs/pr/2'), "
            f"got {short_repr(revision)}"
        )
    return revision


def _shard_names(index: Path) -> list[str]:
    """The shard files a ``*.index.json`` names: plain file names, each once."""
    data = read_json_file(index, "index")
    weight_map = data.get("weight_map") if isinstance(data, dict) else None
    if not isinstance(weight_map, dict):
        raise ValueError(f"{index}: expected a 'weight_map' object, found {short_repr(weight_map)}")
    names = list(dict.fromkeys(weight_map.values()))
    bad = [n for n in names if not isinstance(n, str) or n in ("", ".", "..") or any(c in n for c in "/\\\x00")]
    if bad:
        raise ValueError(f"{index}: expected shard file names, found {short_repr(bad[0])}")
    return names


def _missing_files(folder: Path) -> list[str]:
    """What a model folder lacks to load: [] when config.json and complete weights are there."""
    missing = [] if (folder / CONFIG_FILE).is_file() else [CONFIG_FILE]
    weights = next((w for w in WEIGHTS_FILES if (folder / w).is_file()), None)
    if weights is None:
        return [*missing, " or ".join(WEIGHTS_FILES)]
    if weights.endswith(".index.json"):
        missing += [s for s in _shard_names(folder / weights) if not (folder / s).is_file()]
    return missing


def _repo_folder(cache: Path, repo_id: str) -> Path:
    return cache / ("models--" + repo_id.replace("/", "--"))


def _cached_snapshot(repo_id: str, revision: str, cache: Path) -> tuple[Path | None, str]:
    """(snapshot folder, "") if the cache holds a loadable snapshot of the revision, else (None, why not).

    Mirrors huggingface_hub's try_to_load_from_cache: ``refs/<revision>`` names the commit (a branch,
    a tag, ``refs/pr/2``), else a snapshot folder named as the revision (a commit hash).
    """
    repo = _repo_folder(cache, repo_id)
    if not repo.is_dir():
        return None, f"not in the Hugging Face cache at {cache} (no {repo.name} folder)"
    ref = repo / "refs" / revision
    if ref.is_file():
        with open_regular(ref, "cache ref") as f:
            commit = f.read(100).decode("ascii", "replace").strip()
        if _COMMIT.fullmatch(commit) is None:
            return None, f"{ref}: expected a commit hash, found {short_repr(commit)}"
    elif "/" not in revision and (repo / "snapshots" / revision).is_dir():
        commit = revision
    else:
        return None, f"revision {revision!r} is not in the Hugging Face cache at {repo} (no refs/{revision})"
    snapshot = repo / "snapshots" / commit
    if not snapshot.is_dir():
        return None, f"{ref} names commit {commit}, whose snapshot is not in the cache"
    missing = _missing_files(snapshot)
    if missing:
        return None, f"the cached snapshot {snapshot} lacks {', '.join(missing)}"
    if not (snapshot / PREPROCESSOR_FILE).is_file() and not (repo / ".no_exist" / commit / PREPROCESSOR_FILE).exists():
        warnings.warn(
            f"{repo_id}: the Hugging Face cache has no {PREPROCESSOR_FILE} for commit {commit}: images are "
            "preprocessed with the defaults at the config's image_size. Download it (e.g. with "
            "transformers' AutoImageProcessor.from_pretrained) to use the checkpoint's own settings",
            stacklevel=3,
        )
    return snapshot, ""


def _hub_errors() -> dict[str, tuple[type[BaseException], ...]]:
    """huggingface_hub's error classes by role (their module moved between versions)."""
    try:
        from huggingface_hub import errors
    except ImportError:  # huggingface_hub < 0.23
        from huggingface_hub import utils as errors

    def get(*names: str) -> tuple[type[BaseException], ...]:
        return tuple(getattr(errors, n) for n in names if hasattr(errors, n))

    return {
        "gated": get("GatedRepoError"),
        "repo": get("RepositoryNotFoundError"),
        "revision": get("RevisionNotFoundError"),
        # LocalEntryNotFoundError (no connection, not cached) subclasses EntryNotFoundError: test it first.
        "local": get("LocalEntryNotFoundError"),
        "entry": get("RemoteEntryNotFoundError", "EntryNotFoundError"),
    }


def _causes(exc: BaseException) -> str:
    """'Type: first line' of an error and of its cause (huggingface_hub wraps connection errors)."""
    chain = [exc] + ([exc.__cause__] if exc.__cause__ is not None else [])
    return "; ".join(f"{type(e).__name__}: {(str(e).strip().splitlines() or [''])[0][:200]}" for e in chain)


class _HubFailure(Exception):
    """Why a download did not happen, in words for ModelNotFoundError."""


def _download(repo_id: str, revision: str, cache: Path, endpoint: str) -> Path:
    """Download what vitc needs of ``repo_id`` at ``revision`` into ``cache``; its snapshot folder."""
    from huggingface_hub import HfApi, hf_hub_download

    from vitc.runtime import __version__

    errors = _hub_errors()

    def hub(call, what: str, rev: str):  # one huggingface_hub call; its failures become _HubFailure
        try:
            return call()
        except errors["gated"] as exc:
            why = f"{repo_id} is gated on {endpoint}: accept its terms on the hub and log in (hf auth login)"
            raise _HubFailure(why) from exc
        except errors["revision"] as exc:
            raise _HubFailure(f"revision {rev!r} not found on {endpoint}") from exc
        except errors["repo"] as exc:
            raise _HubFailure(f"repo not found on {endpoint} (a private repo needs a login: hf auth login)") from exc
        except errors["local"] as exc:
            raise _HubFailure(f"downloading {what} from {endpoint} failed ({_causes(exc)})") from exc
        except errors["entry"] as exc:
            not_a_model = ": not a transformers model" if what == CONFIG_FILE else ""
            raise _HubFailure(f"the repo on {endpoint} has no {what}{not_a_model}") from exc
        except Exception as exc:  # noqa: BLE001 - the network layer's errors: connection, HTTP status, disk
            raise _HubFailure(f"downloading {what} from {endpoint} failed ({_causes(exc)})") from exc

    def get(filename: str, rev: str) -> Path:
        def call() -> str:
            return hf_hub_download(
                repo_id,
                filename,
                revision=rev,
                cache_dir=cache,
                endpoint=endpoint,
                library_name="vitc",
                library_version=__version__,
            )

        return Path(hub(call, filename, rev))

    # config.json first, at the revision asked for: huggingface_hub records refs/<revision> -> commit,
    # and every other file is then taken from that same commit.
    snapshot = get(CONFIG_FILE, revision).parent
    commit = snapshot.name
    api = HfApi(endpoint=endpoint, library_name="vitc", library_version=__version__)
    info = hub(lambda: api.model_info(repo_id, revision=commit), "the file list", commit)
    files = {s.rfilename for s in info.siblings or ()}
    weights = next((w for w in WEIGHTS_FILES if w in files), None)
    if weights is None:
        raise _HubFailure(
            f"the repo on {endpoint} has no weights vitc reads (expected one of {', '.join(WEIGHTS_FILES)}; "
            f"found {short_repr(sorted(files))})"
        )
    try:
        get(PREPROCESSOR_FILE, commit)
    except _HubFailure:
        # Asked for even when the listing lacks it: the hub's 404 makes huggingface_hub record the
        # absence (.no_exist/<commit>/), so later loads from the cache know the defaults are right.
        if PREPROCESSOR_FILE in files:
            raise
    index = get(weights, commit)
    if weights.endswith(".index.json"):
        for shard in _shard_names(index):  # a malformed index is a ValueError naming it
            get(shard, commit)
    return snapshot


def resolve_model(
    name_or_path: str | os.PathLike[str],
    revision: str | None = None,
    *,
    cache_dir: str | os.PathLike[str] | None = None,
    local_files_only: bool = False,
) -> Path:
    """A local path for a model name: an existing path as given, or a hub ID's folder in the HF cache.

    Parameters
    ----------
    name_or_path : str or PathLike
        A ``.vitc`` file, a Hugging Face model folder or weights file, or a hub ID such as
        ``"kakaobrain/vit-large-patch16-512"``. A path that exists always wins over a hub ID; a
        name that cannot be a hub ID (``/abs/path``, ``a/b/c``) is returned as a path, for the
        loaders to report missing.
    revision : str, optional
        For hub IDs: a branch or tag (resolved through the cache's ``refs/<revision>``), a
        ``refs/pr/N`` reference, or a commit hash. Default ``"main"``. Ignored for local paths, as
        transformers ignores it.
    cache_dir : str or PathLike, optional
        The hub cache (default: :func:`hub_cache_dir`, from ``HF_HUB_CACHE`` / ``HF_HOME``).
    local_files_only : bool, optional
        Never download, as if ``HF_HUB_OFFLINE=1``.

    Returns
    -------
    pathlib.Path
        The path as given, or the cache's snapshot folder of the hub ID's revision (config.json,
        preprocessor_config.json if the repo has one, and the weights).

    Raises
    ------
    ModelNotFoundError
        (a FileNotFoundError) For a hub ID that is not cached and could not be downloaded; the message
        lists what was tried: the local path, the cache, and why there was no download (offline,
        huggingface_hub not installed, repo / revision not found on the hub, no weights, no network).
    ValueError
        For a malformed revision or a malformed cached index.
    """
    path = Path(name_or_path)
    name = os.fspath(name_or_path)
    # file_kind: an existing FIFO or device is returned for the loaders to refuse by name; a path this
    # user may not look up is a PermissionError saying so.
    if not isinstance(name, str) or not is_hub_id(name) or file_kind(path, "model path") is not None:
        return path
    rev = DEFAULT_REVISION if revision is None else _check_revision(revision)
    cache = hub_cache_dir() if cache_dir is None else Path(cache_dir)
    label = name if revision is None else f"{name} (revision {rev})"
    try:
        snapshot, why = _cached_snapshot(name, rev, cache)
    except PermissionError as exc:  # a cache folder this user may not read
        raise PermissionError(f"{label}: cannot read the Hugging Face cache at {cache}: {exc}") from None
    if snapshot is not None:
        return snapshot
    tried = [f"no file or folder {name!r} in {Path.cwd()}", why]
    if local_files_only or is_offline():
        setting = "local_files_only=True" if local_files_only else "offline mode (HF_HUB_OFFLINE/TRANSFORMERS_OFFLINE)"
        raise ModelNotFoundError(label, [*tried, f"not downloaded: {setting} is on"])
    try:
        import huggingface_hub  # noqa: F401
    except ImportError:
        raise ModelNotFoundError(
            label, [*tried, f"not downloaded: huggingface_hub is not installed ({INSTALL_HINT})"]
        ) from None
    endpoint = os.environ.get("HF_ENDPOINT", DEFAULT_ENDPOINT).rstrip("/")
    try:
        snapshot = _download(name, rev, cache, endpoint)
    except _HubFailure as exc:
        raise ModelNotFoundError(label, [*tried, str(exc)]) from exc.__cause__
    missing = _missing_files(snapshot)
    if missing:  # only if the hub served something other than what its listing said
        raise ModelNotFoundError(label, [*tried, f"downloaded to {snapshot}, which still lacks {', '.join(missing)}"])
    return snapshot
