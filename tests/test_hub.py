"""Hub IDs: resolved from the Hugging Face cache first, then downloaded with huggingface_hub.

The cache is built by the tests from transformers' save_pretrained output (tests/fake_hub.py
write_cache) and checked to be a real cache by loading it with transformers itself, offline. Downloads
go to tests/fake_hub.py's FakeHub on 127.0.0.1 (HF_ENDPOINT); a guard fails any test that tries to
reach another host or resolve a host name. Logits are compared with transformers on the same files.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from eval_factory import write_image_folder
from factories import PREPROCESSOR, hf_forward, make_checkpoint
from fake_hub import FakeHub, commit_hash, folder_files, write_cache
from safetensors.torch import load_file
from transformers import ViTForImageClassification

import vitc
from vitc.cli import main
from vitc.eval.output import model_fingerprint
from vitc.io import hub
from vitc.io.hub import ModelNotFoundError, resolve_model

# |logit difference| allowed, scaled by max(1, max|logit|): the parity bar of tests/test_model.py.
LOGITS_ATOL = 1e-4
REPO = "acme/tiny-vit"
LOOPBACK = {"127.0.0.1", "localhost", "::1"}


# ---------------------------------------------------------------------------------------------------
# Environment: a private HF_HOME, online, no host but 127.0.0.1


@pytest.fixture(autouse=True)
def no_internet(monkeypatch):
    """Refuse (and remember) every name lookup or connection to a host other than loopback."""
    attempts: list[object] = []
    real_getaddrinfo, real_connect = socket.getaddrinfo, socket.socket.connect

    def getaddrinfo(host, *args, **kwargs):
        if host not in LOOPBACK:
            attempts.append(host)
            raise OSError(f"test guard: no network access to {host!r}")
        return real_getaddrinfo(host, *args, **kwargs)

    def connect(self, address):
        if isinstance(address, tuple) and address[0] not in LOOPBACK:
            attempts.append(address)
            raise OSError(f"test guard: no network access to {address!r}")
        return real_connect(self, address)

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    monkeypatch.setattr(socket.socket, "connect", connect)
    yield
    assert attempts == [], f"tried to reach the network: {attempts}"


@pytest.fixture(autouse=True)
def hf_env(tmp_path, monkeypatch):
    """HF_HOME in tmp_path, online, no endpoint; huggingface_hub's import-time copies of the same."""
    for var in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE", "HF_ENDPOINT"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf_home"))
    monkeypatch.setenv("HF_HUB_DISABLE_TELEMETRY", "1")
    from huggingface_hub import constants

    # huggingface_hub read these at import: online, and no user-agent probe of the real hub's registry.
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(constants, "HF_HUB_DISABLE_TELEMETRY", True)
    return tmp_path / "hf_home" / "hub"


@pytest.fixture()
def fake_hub(monkeypatch):
    with FakeHub() as server:
        monkeypatch.setenv("HF_ENDPOINT", server.url)
        yield server


# ---------------------------------------------------------------------------------------------------
# Checkpoints: transformers' save_pretrained output (+ a preprocessor config)


class Ckpt:
    def __init__(self, folder: Path, model) -> None:
        self.folder, self.model = folder, model
        self.files = folder_files(folder)
        self.commit = commit_hash(self.files, salt=folder.name)


def checkpoint(root: Path, name: str, fmt: str = "safetensors", seed: int = 0, preprocessor: bool = True) -> Ckpt:
    folder = root / name
    model = make_checkpoint(folder, fmt="sharded" if fmt == "sharded" else "safetensors", seed=seed)
    if fmt == "legacy":  # pytorch_model.bin in the pre-1.6 format, as old hub uploads have
        state = load_file(folder / "model.safetensors")
        torch.save(state, folder / "pytorch_model.bin", _use_new_zipfile_serialization=False)
        (folder / "model.safetensors").unlink()
    if preprocessor:
        (folder / "preprocessor_config.json").write_text(json.dumps(PREPROCESSOR))
    return Ckpt(folder, model)


@pytest.fixture(scope="module")
def ckpts(tmp_path_factory) -> dict[str, Ckpt]:
    root = tmp_path_factory.mktemp("ckpts")
    return {
        "main": checkpoint(root, "main", seed=0),
        "v1": checkpoint(root, "v1", fmt="legacy", seed=1),
        "pr": checkpoint(root, "pr", fmt="sharded", seed=2),
        "noproc": checkpoint(root, "noproc", seed=3, preprocessor=False),
    }


def repo_layout(ckpts: dict[str, Ckpt]) -> tuple[dict[str, dict[str, bytes]], dict[str, str]]:
    """One repo: main (safetensors), tag v1 (legacy .bin), refs/pr/2 (sharded safetensors)."""
    commits = {c.commit: c.files for c in (ckpts["main"], ckpts["v1"], ckpts["pr"])}
    refs = {"main": ckpts["main"].commit, "v1": ckpts["v1"].commit, "refs/pr/2": ckpts["pr"].commit}
    return commits, refs


def pixels(seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((2, 3, 30, 30)).astype(np.float32)


def assert_same_logits(vit: vitc.ViT, hf_model, px: np.ndarray | None = None) -> None:
    px = pixels() if px is None else px
    ours = vit(px).logits
    ref = hf_forward(hf_model, px).logits.numpy()
    err = float(np.max(np.abs(ours - ref)) / max(1.0, np.max(np.abs(ref))))
    assert err < LOGITS_ATOL, err
    np.testing.assert_array_equal(ours.argmax(-1), ref.argmax(-1))


def transformers_offline(cache: Path, revision: str | None = None):
    """transformers' own reading of the cache, offline (else, for a .bin, it asks the hub in a thread
    whether a safetensors conversion exists)."""
    from huggingface_hub import constants

    online, constants.HF_HUB_OFFLINE = constants.HF_HUB_OFFLINE, True
    try:
        return ViTForImageClassification.from_pretrained(
            REPO, cache_dir=cache, revision=revision, local_files_only=True, attn_implementation="eager"
        ).eval()
    finally:
        constants.HF_HUB_OFFLINE = online


# ---------------------------------------------------------------------------------------------------
# Names and environment variables


def test_hub_ids_as_huggingface_hub_validates_them() -> None:
    from huggingface_hub.utils import HFValidationError, validate_repo_id

    names = [
        "kakaobrain/vit-large-patch16-512", "google/vit-base-patch16-224", "gpt2", "a/b", "Foo-BAR_foo.bar123",
        "/abs/path", "./model", "a/b/c", "a--b/c", "a/b..c", "x.git", "-a/b", "a/b-", "", "café/vit",
        "m.vitc", "a" * 96, "a" * 97, "datasets/foo/bar", "a\\b", "a b",
    ]  # fmt: skip
    for name in names:
        try:
            validate_repo_id(name)
            expected = True
        except HFValidationError:
            expected = False
        assert hub.is_hub_id(name) == expected, name


ENV_VARS = (
    "HF_HOME",
    "HF_HUB_CACHE",
    "HUGGINGFACE_HUB_CACHE",
    "XDG_CACHE_HOME",
    "HF_HUB_OFFLINE",
    "TRANSFORMERS_OFFLINE",
)
HUB_CONSTANTS = f"""
import importlib, json, os, sys
from huggingface_hub import constants
out = []
for env in json.loads(sys.argv[1]):
    for k in {ENV_VARS!r}:
        os.environ.pop(k, None)
    os.environ.update(env)
    importlib.reload(constants)
    out.append([constants.HF_HUB_CACHE, constants.HF_HUB_OFFLINE])
print(json.dumps(out))
"""


def test_cache_dir_and_offline_are_read_as_huggingface_hub_reads_them(monkeypatch, tmp_path) -> None:
    """huggingface_hub's own constants (recomputed in a child for each environment) are the reference."""
    envs = [
        {},
        {"HF_HOME": str(tmp_path / "home")},
        {"HF_HOME": "~/hfh", "HF_HUB_CACHE": str(tmp_path / "hc")},
        {"HUGGINGFACE_HUB_CACHE": str(tmp_path / "legacy")},
        {"HUGGINGFACE_HUB_CACHE": str(tmp_path / "legacy"), "HF_HUB_CACHE": str(tmp_path / "new")},
        {"XDG_CACHE_HOME": str(tmp_path / "xdg")},
        {"HF_HUB_CACHE": "$HOME/x"},
        {"HF_HUB_OFFLINE": "1"},
        {"HF_HUB_OFFLINE": "true"},
        {"HF_HUB_OFFLINE": "Yes"},
        {"HF_HUB_OFFLINE": "on"},
        {"HF_HUB_OFFLINE": "0"},
        {"HF_HUB_OFFLINE": "false"},
        {"HF_HUB_OFFLINE": "2"},
        {"HF_HUB_OFFLINE": ""},
        {"TRANSFORMERS_OFFLINE": "1"},
        {"HF_HUB_OFFLINE": "", "TRANSFORMERS_OFFLINE": "1"},
        {"HF_HUB_OFFLINE": "0", "TRANSFORMERS_OFFLINE": "1"},
    ]
    child = subprocess.run(
        [sys.executable, "-c", HUB_CONSTANTS, json.dumps(envs)], capture_output=True, text=True, check=True
    )
    expected = json.loads(child.stdout)
    for env, (cache, offline) in zip(envs, expected, strict=True):
        for k in ENV_VARS:
            monkeypatch.delenv(k, raising=False)
        for k, v in env.items():
            monkeypatch.setenv(k, v)
        assert hub.hub_cache_dir() == Path(cache), env
        assert hub.is_offline() == offline, env


def test_malformed_revisions_are_refused(hf_env) -> None:
    for revision in ("", "../x", "refs/../../etc", "/main", "a//b", "a\\b", "a\x00", 3, "x" * 300):
        with pytest.raises(ValueError, match="revision: expected a branch, tag or commit hash"):
            resolve_model(REPO, revision=revision)


# ---------------------------------------------------------------------------------------------------
# The cache: no network


def test_cached_model_loads_with_no_network(ckpts, hf_env, monkeypatch, tmp_path) -> None:
    """A model in the cache (HF_HUB_CACHE) loads without a request, even with a hub to ask; it is what
    transformers reads from the same cache, and vitc's logits match transformers'."""
    cache = tmp_path / "cache"
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    write_cache(cache, REPO, *repo_layout(ckpts))
    with FakeHub() as server:
        monkeypatch.setenv("HF_ENDPOINT", server.url)
        vit = vitc.ViT.from_pretrained(REPO)
        assert server.requests == []
    assert resolve_model(REPO) == cache / "models--acme--tiny-vit" / "snapshots" / ckpts["main"].commit
    assert_same_logits(vit, ckpts["main"].model)
    assert_same_logits(vit, transformers_offline(cache))  # the fake cache is one transformers reads
    assert vit.image_processor.to_dict()["size"] == PREPROCESSOR["size"]


def test_cache_under_hf_home_and_its_default(ckpts, hf_env, monkeypatch, tmp_path) -> None:
    write_cache(hf_env, REPO, *repo_layout(ckpts))  # HF_HOME/hub (HF_HOME from the fixture)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert_same_logits(vitc.ViT.from_pretrained(REPO), ckpts["main"].model)
    monkeypatch.delenv("HF_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.delenv("XDG_CACHE_HOME", raising=False)
    write_cache(tmp_path / "home" / ".cache" / "huggingface" / "hub", REPO, *repo_layout(ckpts))
    assert resolve_model(REPO).is_relative_to(tmp_path / "home" / ".cache" / "huggingface" / "hub")


@pytest.mark.parametrize(
    "revision, which",
    [(None, "main"), ("main", "main"), ("v1", "v1"), ("refs/pr/2", "pr"), ("commit:pr", "pr"), ("commit:v1", "v1")],
)
def test_cached_revisions(ckpts, hf_env, monkeypatch, revision, which) -> None:
    """Branch and tag through refs/<name>, a PR through refs/refs/pr/2, a commit hash directly: a
    safetensors, a legacy pytorch_model.bin and a sharded checkpoint whose shards are cache symlinks."""
    write_cache(hf_env, REPO, *repo_layout(ckpts))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    if revision is not None and revision.startswith("commit:"):
        revision = ckpts[revision.split(":")[1]].commit
    vit = vitc.ViT.from_pretrained(REPO, revision=revision)
    assert_same_logits(vit, ckpts[which].model)
    assert_same_logits(vit, transformers_offline(hf_env, revision))


def test_a_local_path_wins_over_a_hub_id(ckpts, hf_env, monkeypatch, tmp_path) -> None:
    write_cache(hf_env, REPO, *repo_layout(ckpts))
    monkeypatch.chdir(tmp_path)
    local = tmp_path / "acme" / "tiny-vit"
    local.mkdir(parents=True)
    for name, data in ckpts["v1"].files.items():
        (local / name).write_bytes(data)
    assert resolve_model(REPO) == Path(REPO)
    assert_same_logits(vitc.ViT.from_pretrained(REPO), ckpts["v1"].model)
    # a name that cannot be a hub ID is a path, reported missing by the loaders as before
    assert resolve_model(tmp_path / "nope") == tmp_path / "nope"
    with pytest.raises(FileNotFoundError, match="no such model folder"):
        vitc.ViT.from_pretrained(str(tmp_path / "nope"))


def test_incomplete_or_corrupt_cache_entries(ckpts, hf_env, monkeypatch) -> None:
    """What transformers leaves after downloading only the config, a ref to a missing snapshot or a
    malformed ref: reported, and never loaded."""
    main = ckpts["main"]
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    repo = write_cache(hf_env, REPO, {main.commit: {"config.json": main.files["config.json"]}}, {"main": main.commit})
    with pytest.raises(ModelNotFoundError, match=r"snapshots/\w+ lacks model.safetensors or .*offline mode"):
        resolve_model(REPO)
    (repo / "refs" / "main").write_text("0" * 40)
    with pytest.raises(ModelNotFoundError, match="names commit 0{40}, whose snapshot is not in the cache"):
        resolve_model(REPO)
    (repo / "refs" / "main").write_text("../../../etc")
    with pytest.raises(ModelNotFoundError, match="expected a commit hash, found '../../../etc'"):
        resolve_model(REPO)
    pr = ckpts["pr"]
    files = {k: v for k, v in pr.files.items() if not k.startswith("model-00002")}
    write_cache(hf_env, REPO, {pr.commit: files}, {"refs/pr/2": pr.commit})
    with pytest.raises(ModelNotFoundError, match="lacks model-00002-of-"):
        resolve_model(REPO, revision="refs/pr/2")


def test_missing_preprocessor_config_warns_unless_known_absent(ckpts, hf_env, monkeypatch) -> None:
    noproc = ckpts["noproc"]
    repo = write_cache(hf_env, REPO, {noproc.commit: noproc.files}, {"main": noproc.commit})
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.warns(UserWarning, match="no preprocessor_config.json for commit .* defaults"):
        assert_same_logits(vitc.ViT.from_pretrained(REPO), noproc.model)
    # huggingface_hub's record that the repo has none (written after a 404): the defaults are right
    marker = repo / ".no_exist" / noproc.commit / "preprocessor_config.json"
    marker.parent.mkdir(parents=True)
    marker.touch()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        resolve_model(REPO)


def test_errors_say_what_was_tried(ckpts, hf_env, monkeypatch, tmp_path) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ModelNotFoundError) as info:
        vitc.ViT.from_pretrained(REPO)
    text = str(info.value)
    assert text.startswith(f"model not found: {REPO}: no file or folder '{REPO}' in {tmp_path}")
    assert f"not in the Hugging Face cache at {hf_env} (no models--acme--tiny-vit folder)" in text
    assert "not downloaded: offline mode (HF_HUB_OFFLINE/TRANSFORMERS_OFFLINE) is on" in text
    assert isinstance(info.value, FileNotFoundError)
    monkeypatch.delenv("HF_HUB_OFFLINE")
    with pytest.raises(ModelNotFoundError, match="local_files_only=True"):
        resolve_model(REPO, local_files_only=True)
    monkeypatch.setitem(sys.modules, "huggingface_hub", None)  # not installed
    with pytest.raises(ModelNotFoundError, match=r"huggingface_hub is not installed \(pip install 'vitc\[hub\]'"):
        vitc.convert(REPO, tmp_path / "m.vitc", revision="v1")
    with pytest.raises(ModelNotFoundError, match=r"revision v1\): .* \(no models--acme--tiny-vit folder\)"):
        vitc.convert(REPO, tmp_path / "m.vitc", revision="v1")


def test_vitc_does_not_import_huggingface_hub(ckpts, hf_env, tmp_path) -> None:
    """Not at import, and not to load from the cache."""
    write_cache(hf_env, REPO, *repo_layout(ckpts))
    code = (
        "import sys, vitc; assert 'huggingface_hub' not in sys.modules; "
        f"vitc.ViT.from_pretrained({REPO!r}, revision='v1'); assert 'huggingface_hub' not in sys.modules"
    )
    env = {**os.environ, "HF_HUB_CACHE": str(hf_env), "HF_HUB_OFFLINE": "1"}
    subprocess.run([sys.executable, "-c", code], check=True, env=env)


# ---------------------------------------------------------------------------------------------------
# Downloads from the fake hub


def test_download_matches_transformers_and_then_loads_from_the_cache(ckpts, hf_env, fake_hub) -> None:
    fake_hub.add_repo(REPO, *repo_layout(ckpts))
    main = ckpts["main"]
    vit = vitc.ViT.from_pretrained(REPO)
    assert_same_logits(vit, main.model)
    resolve = f"/{REPO}/resolve"
    assert [(m, p) for _, m, p in fake_hub.requests if not p.startswith("/cdn/")] == [
        ("HEAD", f"{resolve}/main/config.json"),
        ("GET", f"{resolve}/main/config.json"),
        ("GET", f"/api/models/{REPO}/revision/{main.commit}"),
        ("HEAD", f"{resolve}/{main.commit}/preprocessor_config.json"),
        ("GET", f"{resolve}/{main.commit}/preprocessor_config.json"),
        ("HEAD", f"{resolve}/{main.commit}/model.safetensors"),
    ]
    assert [m for role, m, _ in fake_hub.requests if role == "cdn"] == ["GET"]  # the LFS redirect
    snapshot = hf_env / "models--acme--tiny-vit" / "snapshots" / main.commit
    assert sorted(p.name for p in snapshot.iterdir()) == [
        "config.json",
        "model.safetensors",
        "preprocessor_config.json",
    ]
    assert (hf_env / "models--acme--tiny-vit" / "refs" / "main").read_text() == main.commit
    assert all((snapshot / n).read_bytes() == main.files[n] for n in main.files)
    # now cached: no request at all, and transformers reads what vitc downloaded
    n = len(fake_hub.requests)
    assert_same_logits(vitc.ViT.from_pretrained(REPO), main.model)
    assert len(fake_hub.requests) == n
    assert_same_logits(vit, transformers_offline(hf_env))


@pytest.mark.parametrize("revision, which", [("v1", "v1"), ("refs/pr/2", "pr"), ("commit:v1", "v1")])
def test_download_revisions_and_formats(ckpts, hf_env, fake_hub, revision, which) -> None:
    """A tag (legacy pytorch_model.bin), a PR ref (sharded safetensors: the index, then its shards), a
    commit hash; the cache then holds what huggingface_hub and transformers expect."""
    fake_hub.add_repo(REPO, *repo_layout(ckpts))
    ckpt = ckpts[which]
    if revision.startswith("commit:"):
        revision = ckpt.commit
    vit = vitc.ViT.from_pretrained(REPO, revision=revision)
    assert_same_logits(vit, ckpt.model)
    snapshot = hf_env / "models--acme--tiny-vit" / "snapshots" / ckpt.commit
    assert sorted(p.name for p in snapshot.iterdir()) == sorted(ckpt.files)
    if revision != ckpt.commit:
        assert (hf_env / "models--acme--tiny-vit" / "refs" / revision).read_text() == ckpt.commit
    assert_same_logits(vit, transformers_offline(hf_env, revision))
    n = len(fake_hub.requests)
    vitc.ViT.from_pretrained(REPO, revision=revision)
    assert len(fake_hub.requests) == n


def test_download_takes_only_the_weights_it_reads(ckpts, hf_env, fake_hub) -> None:
    """A repo with model.safetensors and pytorch_model.bin (and a README): only the safetensors comes."""
    main, legacy = ckpts["main"], ckpts["v1"]
    files = {**main.files, "pytorch_model.bin": legacy.files["pytorch_model.bin"], "README.md": b"# tiny\n"}
    fake_hub.add_repo(REPO, {main.commit: files}, {"main": main.commit})
    assert_same_logits(vitc.ViT.from_pretrained(REPO), main.model)
    fetched = {p.rsplit("/", 1)[1] for _, m, p in fake_hub.requests if m == "HEAD"}
    assert fetched == {"config.json", "preprocessor_config.json", "model.safetensors"}


def test_download_of_a_repo_without_preprocessor_config(ckpts, hf_env, fake_hub) -> None:
    """Its absence is asked once and recorded by huggingface_hub: later loads do not warn."""
    noproc = ckpts["noproc"]
    fake_hub.add_repo(REPO, {noproc.commit: noproc.files}, {"main": noproc.commit})
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert_same_logits(vitc.ViT.from_pretrained(REPO), noproc.model)
        assert_same_logits(vitc.ViT.from_pretrained(REPO), noproc.model)
    assert (hf_env / "models--acme--tiny-vit" / ".no_exist" / noproc.commit / "preprocessor_config.json").exists()


def test_download_errors(ckpts, hf_env, fake_hub, monkeypatch, tmp_path) -> None:
    main = ckpts["main"]
    fake_hub.add_repo(REPO, *repo_layout(ckpts))
    fake_hub.add_repo(
        "acme/no-config", {"c" * 40: {"model.safetensors": main.files["model.safetensors"]}}, {"main": "c" * 40}
    )
    fake_hub.add_repo("acme/no-weights", {"d" * 40: {"config.json": main.files["config.json"]}}, {"main": "d" * 40})
    where = f"on {fake_hub.url}"
    cases = [
        ("acme/missing", None, f"(no models--acme--missing folder); repo not found {where}"),
        (REPO, "v2", f"(no models--acme--tiny-vit folder); revision 'v2' not found {where}"),
        ("acme/no-config", None, f"the repo {where} has no config.json: not a transformers model"),
        ("acme/no-weights", None, f"the repo {where} has no weights vitc reads (expected one of model.safetensors"),
    ]
    for name, revision, words in cases:
        with pytest.raises(ModelNotFoundError) as info:
            vitc.ViT.from_pretrained(name, revision=revision)
        assert words in str(info.value), str(info.value)
    # HF_ENDPOINT at a server that is not a hub (the CDN: 404 without the hub's error codes)
    monkeypatch.setenv("HF_ENDPOINT", fake_hub.cdn_url)
    with pytest.raises(ModelNotFoundError, match=rf"downloading config.json from {fake_hub.cdn_url} failed \(Local"):
        resolve_model(REPO)
    # nothing listening (the discard port): huggingface_hub retries 5 times with backoff, not slept here
    import huggingface_hub.utils._http as hf_http

    monkeypatch.setattr(hf_http.time, "sleep", lambda seconds: None)
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")
    with pytest.raises(
        ModelNotFoundError, match=r"from http://127.0.0.1:9 failed \(LocalEntryNotFoundError: .*Connect"
    ):
        resolve_model(REPO)
    n = len(fake_hub.requests)
    monkeypatch.setenv("HF_ENDPOINT", fake_hub.url)
    monkeypatch.setenv("TRANSFORMERS_OFFLINE", "1")
    with pytest.raises(ModelNotFoundError, match="offline mode"):
        resolve_model(REPO)
    assert len(fake_hub.requests) == n


# ---------------------------------------------------------------------------------------------------
# vitc.convert and the command line


def run(capsys, *argv: str) -> tuple[int, str, str]:
    rc = main(list(argv))
    out, err = capsys.readouterr()
    return rc, out, err


def test_convert_and_cli_take_hub_ids(ckpts, hf_env, fake_hub, capsys, tmp_path) -> None:
    fake_hub.add_repo(REPO, *repo_layout(ckpts))
    # vitc convert ID DST --revision: downloads, converts
    rc, out, err = run(capsys, "convert", REPO, str(tmp_path / "v1.vitc"), "--revision", "v1")
    assert rc == 0, err
    assert_same_logits(vitc.ViT.from_pretrained(tmp_path / "v1.vitc"), ckpts["v1"].model)
    assert_same_logits(
        vitc.ViT.from_pretrained(vitc.convert(REPO, tmp_path / "pr.vitc", progress=False, revision="refs/pr/2")),
        ckpts["pr"].model,
    )
    # vitc info ID: cached now, no request
    n = len(fake_hub.requests)
    rc, out, err = run(capsys, "info", REPO, "--revision", "v1", "--json")
    assert rc == 0, err
    info = json.loads(out)
    assert info["path"].endswith(ckpts["v1"].commit) and info["hidden_size"] == 32
    assert len(fake_hub.requests) == n
    # vitc predict --model ID: the same labels and probabilities as the Python API on the same model
    write_image_folder(tmp_path / "ds", {"LABEL_0": 1, "LABEL_3": 2})
    image = next((tmp_path / "ds" / "LABEL_3").iterdir())
    rc, out, err = run(capsys, "predict", "--model", REPO, str(image), "--json", "-k", "3")
    assert rc == 0, err
    api = vitc.ViT.from_pretrained(REPO).predict([image], top_k=3)
    records = [json.loads(line) for line in out.splitlines()]  # predict --json writes JSON lines
    assert [[(p["label"], p["probability"]) for p in r["predictions"]] for r in records] == api
    # vitc eval --model ID --revision: the result of evaluating the downloaded folder
    rc, out, err = run(
        capsys,
        "eval",
        str(tmp_path / "ds"),
        "--model",
        REPO,
        "--revision",
        "refs/pr/2",
        "--json",
        "--no-progress",
        "--output",
        str(tmp_path / "pr.jsonl"),
    )
    assert rc == 0, err
    pr_model = vitc.ViT.from_pretrained(REPO, revision="refs/pr/2")
    ref = vitc.evaluate(pr_model, tmp_path / "ds", progress=False).to_dict()
    timing = ("seconds", "images_per_second")
    ours = {k: v for k, v in json.loads(out).items() if k not in timing}
    assert ours == {k: v for k, v in ref.items() if k not in timing} and ours["evaluated"] == 3
    # the output's header identifies the model by its logits on a probe image: the PR's, not main's
    header = json.loads((tmp_path / "pr.jsonl").read_text().splitlines()[0])
    assert header["model_fingerprint"] == model_fingerprint(pr_model)
    rc, _, err = run(
        capsys,
        "eval",
        str(tmp_path / "ds"),
        "--model",
        REPO,
        "--json",
        "--no-progress",
        "--output",
        str(tmp_path / "main.jsonl"),
    )
    assert rc == 0, err
    header = json.loads((tmp_path / "main.jsonl").read_text().splitlines()[0])
    assert header["model"] == REPO
    assert header["model_fingerprint"] == model_fingerprint(vitc.ViT.from_pretrained(REPO))
    # errors: one line naming what was tried
    rc, out, err = run(capsys, "predict", "--model", "acme/missing", str(image))
    assert rc == 1 and out == "" and err.count("\n") == 1
    assert (
        err.startswith("vitc predict: error: model not found: acme/missing: no file or folder")
        and "repo not found" in err
    )
    rc, _, err = run(capsys, "convert", "acme/missing", str(tmp_path / "x.vitc"))
    assert rc == 1 and err.startswith("vitc convert: error: source not found: acme/missing:")
    rc, _, err = run(capsys, "info", "--revision", "v1")
    assert rc == 1 and "--revision is the revision of a hub model" in err
