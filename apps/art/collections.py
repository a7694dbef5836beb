"""The two default image collections of the art app, built once from Debian packages: emoji rendered from Noto
Color Emoji (one class per Unicode emoji group) and the painted portraits of Battle for Wesnoth (one class per
faction).

`prepare_collection(name)` fetches the packages with `apt-get download` into data/art/raw/, streams the needed members
out with `dpkg-deb --fsys-tarfile`, and writes data/art/prepared/<name>/<class>/<file>.png (both git-ignored), which
`apps.art.data.load_folder` then reads like any user folder. Sources and licences: data/art/README.md.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tarfile
import tempfile
import time
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from PIL import Image, ImageDraw, ImageFont, features

from apps.art.data import DATA_ROOT, _log, _slug
from shared.atomic import atomic_dir, atomic_write_json
from shared.errors import ConfigError


@dataclass(frozen=True)
class Collection:
    """A default image collection built from Debian packages: the files it needs from each package, and the
    function that writes the class folders from the extracted trees (returning the manifest's class counts)."""

    name: str
    description: str
    licence: str
    members: dict[str, tuple[str, ...]]  # package -> paths (files or folder prefixes) inside its .deb
    build: Callable[[dict[str, Path], Path], dict]


def _prepare_error(name: str, reason: str) -> ConfigError:
    return ConfigError(
        f"cannot prepare the {name} collection: {reason}; install Debian's apt tools, or point the app at your own "
        "folder of images (subfolders = classes) with --data.folder PATH"
    )


def _run(cmd: list[str], cwd: Path, name: str) -> subprocess.CompletedProcess:
    try:
        return subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=900)
    except (OSError, subprocess.TimeoutExpired) as e:
        raise _prepare_error(name, f"`{' '.join(cmd[:2])}` could not run ({type(e).__name__})") from e


def _last_error(text: str) -> str:
    lines = [ln.strip() for ln in text.splitlines() if ln.strip() and "unsandboxed" not in ln]
    return lines[-1][:160] if lines else "no message"


_APT_UPDATED = False  # `apt-get update` runs at most once per process


def _download(pkg: str, raw_dir: Path, name: str) -> Path:
    """The .deb of `pkg` in raw_dir, fetched with `apt-get download` unless it is already there."""
    global _APT_UPDATED
    have = sorted(raw_dir.glob(f"{pkg}_*.deb"))
    if have:
        return have[-1]
    apt = shutil.which("apt-get")
    if apt is None:
        raise _prepare_error(name, "apt-get is not installed")
    raw_dir.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix=".download-", dir=raw_dir) as tmp:  # a partial .deb never lands
        r = _run([apt, "download", pkg], Path(tmp), name)
        stale = "Unable to locate package" in r.stderr or "no installation candidate" in r.stderr
        if r.returncode != 0 and stale and not _APT_UPDATED and os.geteuid() == 0:
            _log("apt-get does not know the package yet: running apt-get update once")
            _APT_UPDATED = True
            u = _run([apt, "update"], Path(tmp), name)
            if u.returncode != 0:
                raise _prepare_error(name, f"apt-get update failed ({_last_error(u.stderr)})")
            r = _run([apt, "download", pkg], Path(tmp), name)
        debs = sorted(Path(tmp).glob("*.deb"))
        if r.returncode != 0 or not debs:
            hint = " (run apt-get update as root first)" if "Unable to locate" in r.stderr else ""
            raise _prepare_error(name, f"apt-get download {pkg} failed: {_last_error(r.stderr)}{hint}")
        deb = raw_dir / debs[0].name
        os.replace(debs[0], deb)
    _log(f"downloaded {deb.name} ({deb.stat().st_size / 1e6:.1f} MB, {time.perf_counter() - t0:.1f} s)")
    return deb


def _extract(deb: Path, members: tuple[str, ...], dest: Path, name: str) -> int:
    """Copy the files of `deb` whose path starts with one of `members` into dest (same relative paths); returns
    how many. Streams `dpkg-deb --fsys-tarfile` through tarfile: nothing else of the package touches the disk."""
    dpkg = shutil.which("dpkg-deb")
    if dpkg is None:
        raise _prepare_error(name, "dpkg-deb is not installed")
    n = 0
    with tempfile.TemporaryFile() as err:
        proc = subprocess.Popen([dpkg, "--fsys-tarfile", str(deb)], stdout=subprocess.PIPE, stderr=err)
        try:
            with tarfile.open(fileobj=proc.stdout, mode="r|") as tar:
                for m in tar:
                    path = m.name.removeprefix("./")
                    if not (m.isfile() and path.startswith(members)) or ".." in PurePosixPath(path).parts:
                        continue
                    target = dest / path
                    target.parent.mkdir(parents=True, exist_ok=True)
                    with tar.extractfile(m) as src, open(target, "wb") as out:
                        shutil.copyfileobj(src, out, 1 << 20)
                    n += 1
        except tarfile.TarError as e:
            proc.kill()
            raise _prepare_error(name, f"{deb.name} is damaged ({e}): delete it and run again") from e
        finally:
            proc.stdout.close()
            rc = proc.wait()
        if rc != 0:
            err.seek(0)
            reason = _last_error(err.read().decode(errors="replace"))
            raise _prepare_error(name, f"dpkg-deb cannot read {deb.name} ({reason}): delete it and run again")
    if n == 0:
        raise _prepare_error(name, f"{deb.name} has none of {', '.join(members)}")
    return n


def _unpack(pkg: str, members: tuple[str, ...], raw_dir: Path, name: str) -> Path:
    """raw_dir/<pkg>/: the `members` of the package's .deb, extracted once (a .complete marker lists them)."""
    tree = raw_dir / pkg
    marker = tree / ".complete"
    if marker.is_file() and json.loads(marker.read_text()).get("members") == list(members):
        return tree
    deb = _download(pkg, raw_dir, name)
    t0 = time.perf_counter()
    with atomic_dir(tree) as tmp:
        n = _extract(deb, members, tmp, name)
        atomic_write_json(tmp / ".complete", {"deb": deb.name, "members": list(members), "files": n})
    _log(f"extracted {n} files from {deb.name} into {tree} ({time.perf_counter() - t0:.1f} s)")
    return tree


def _deb_version(tree: Path) -> str:
    deb = json.loads((tree / ".complete").read_text())["deb"]  # <pkg>_<version, %-quoted>_<arch>.deb
    return urllib.parse.unquote(deb.split("_")[1])


# --- emoji

EMOJI_FONT = "usr/share/fonts/truetype/noto/NotoColorEmoji.ttf"
EMOJI_TEST = "usr/share/unicode/emoji/emoji-test.txt"
EMOJI_PX = 109  # the font's one bitmap strike: glyphs of 136 x 128 pixels
EMOJI_CANVAS = (136, 128)
SKIN_TONES = range(0x1F3FB, 0x1F400)  # Fitzpatrick modifiers U+1F3FB..U+1F3FF
UNKNOWN_FLAG = "\U0001f1ff\U0001f1ff"  # regional indicators Z Z: no country, the font draws its "?" flag


def parse_emoji_test(path: Path) -> list[tuple[str, list[int], str]]:
    """(group, code points, name) of every fully-qualified emoji in Unicode's emoji-test.txt, in file order."""
    out, group = [], ""
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.startswith("# group:"):
            group = line.split(":", 1)[1].strip()
        elif line.strip() and not line.startswith("#"):
            cps, rest = line.split(";", 1)
            status, _, comment = rest.partition("#")
            if status.strip() == "fully-qualified":
                name = comment.split(" ", 3)[-1].strip()  # "😀 E1.0 grinning face" -> "grinning face"
                out.append((group, [int(c, 16) for c in cps.split()], name))
    return out


def _render_emoji(font: ImageFont.FreeTypeFont, text: str) -> Image.Image:
    im = Image.new("RGBA", EMOJI_CANVAS, (0, 0, 0, 0))
    ImageDraw.Draw(im).text((0, 0), text, font=font, embedded_color=True)
    return im


def _build_emoji(trees: dict[str, Path], out: Path) -> dict:
    """One RGBA PNG per fully-qualified emoji, cropped to its alpha box, in a folder per Unicode emoji group."""
    emoji = parse_emoji_test(trees["unicode-data"] / EMOJI_TEST)
    font = ImageFont.truetype(str(trees["fonts-noto-color-emoji"] / EMOJI_FONT), EMOJI_PX)
    if not features.check_feature("raqm"):
        _log("warning: Pillow lacks libraqm, so ZWJ sequences and flags do not form one glyph and are dropped")
    advance = font.getlength("\U0001f600")  # one glyph; a sequence the font cannot join is several wide
    unknown_flag = _render_emoji(font, UNKNOWN_FLAG).tobytes()
    dropped = dict.fromkeys(("skin_tone", "not_one_glyph", "no_glyph", "unknown_flag"), 0)
    classes: dict[str, dict] = {}
    for group, cps, _name in emoji:
        text = "".join(map(chr, cps))
        if any(c in SKIN_TONES for c in cps):  # near-duplicates of the default (yellow) emoji
            dropped["skin_tone"] += 1
            continue
        if font.getlength(text) > 1.2 * advance:
            dropped["not_one_glyph"] += 1
            continue
        im = _render_emoji(font, text)
        box = im.getchannel("A").getbbox()
        if box is None:  # the font has no glyph: nothing drawn
            dropped["no_glyph"] += 1
            continue
        if im.tobytes() == unknown_flag:
            dropped["unknown_flag"] += 1
            continue
        slug = _slug(group)
        entry = classes.setdefault(slug, {"name": group, "count": 0})
        (out / slug).mkdir(exist_ok=True)
        im.crop(box).save(out / slug / f"{'-'.join(f'{c:x}' for c in cps)}.png")
        entry["count"] += 1
    _log(f"rendered {sum(c['count'] for c in classes.values())} of {len(emoji)} fully-qualified emoji (dropped: "
         f"{', '.join(f'{k} {v}' for k, v in dropped.items())})")  # fmt: skip
    return {"classes": dict(sorted(classes.items())), "dropped": dropped, "fully_qualified": len(emoji)}


# --- portraits

WESNOTH = "wesnoth-1.16-data"
PORTRAITS = "usr/share/games/wesnoth/1.16/data/core/images/portraits/"


def _build_portraits(trees: dict[str, Path], out: Path) -> dict:
    """The core portraits, copied unchanged: <faction>/<unit>.png (only PNGs directly in a faction folder)."""
    src = trees[WESNOTH] / PORTRAITS
    classes, ignored = {}, []
    for item in sorted(src.iterdir()):
        if item.is_file():
            if item.name == "ARTISTS":  # the painters' credits
                shutil.copyfile(item, out / "ARTISTS.txt")
            else:
                ignored.append(item.name)
            continue
        pngs = sorted(p for p in item.iterdir() if p.is_file() and p.suffix.lower() == ".png")
        ignored += [f"{item.name}/{p.name}" for p in item.iterdir() if p not in pngs]
        if pngs:
            (out / item.name).mkdir()
            for p in pngs:
                shutil.copyfile(p, out / item.name / p.name)
            classes[item.name] = {"name": item.name, "count": len(pngs)}
    if ignored:
        _log(f"ignored {len(ignored)} entries that are not faction portraits: {', '.join(ignored[:5])}")
    return {"classes": classes, "ignored": ignored}


def _doc(pkg: str) -> str:
    return f"usr/share/doc/{pkg}/copyright"


COLLECTIONS: dict[str, Collection] = {
    "emoji": Collection(
        name="emoji",
        description="Noto Color Emoji rendered at 136x128, one class per Unicode emoji group, no skin-tone variants",
        licence="font: SIL Open Font License 1.1; emoji-test.txt: Unicode License",
        members={
            "fonts-noto-color-emoji": (EMOJI_FONT, _doc("fonts-noto-color-emoji")),
            "unicode-data": (EMOJI_TEST, _doc("unicode-data")),
        },
        build=_build_emoji,
    ),
    "portraits": Collection(
        name="portraits",
        description="the painted unit portraits of Battle for Wesnoth 1.16, one class per faction folder",
        licence="GPL-2.0-or-later (Battle for Wesnoth artwork)",
        members={WESNOTH: (PORTRAITS, _doc(WESNOTH))},
        build=_build_portraits,
    ),
}


def prepare_collection(name: str, data_root: str | os.PathLike = DATA_ROOT, force: bool = False) -> Path:
    """data_root/prepared/<name>/ with <class>/<file>.png, built from Debian packages on first use; returns it.

    Idempotent: `.complete` (counts per class, sources, licence, timings) is written last, and its presence means
    the collection is ready (force=True rebuilds). The .deb files and the extracted members stay in data_root/raw/.
    """
    if name not in COLLECTIONS:
        raise ConfigError(f"unknown collection {name!r}: choose {' or '.join(COLLECTIONS)}, or use --data.folder PATH")
    spec, data_root = COLLECTIONS[name], Path(data_root)
    out = data_root / "prepared" / name
    if (out / ".complete").is_file() and not force:
        return out
    t0 = time.perf_counter()
    trees = {pkg: _unpack(pkg, members, data_root / "raw", name) for pkg, members in spec.members.items()}
    t1 = time.perf_counter()
    with atomic_dir(out) as tmp:
        summary = spec.build(trees, tmp)
        for pkg, tree in trees.items():
            shutil.copyfile(tree / _doc(pkg), tmp / f"COPYRIGHT.{pkg}.txt")
        t2 = time.perf_counter()
        manifest = {
            "collection": name,
            "description": spec.description,
            "licence": spec.licence,
            "packages": {pkg: _deb_version(tree) for pkg, tree in trees.items()},
            "total": sum(c["count"] for c in summary["classes"].values()),
            **summary,
            "seconds": {"download_and_extract": round(t1 - t0, 1), "build": round(t2 - t1, 1)},
        }
        atomic_write_json(tmp / ".complete", manifest)  # last: its presence means the collection is ready
    counts = ", ".join(f"{c['name']} {c['count']}" for c in summary["classes"].values())
    _log(f"prepared {out}: {manifest['total']} images ({counts}) in {t2 - t0:.1f} s")
    return out
