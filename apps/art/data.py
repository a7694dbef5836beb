"""Images for the art app: any folder of images read as a labelled uint8 tensor set (with an optional cache), the
stratified held-out split, and the [-1, 1] scaling of the models. The default collections are built by
`apps.art.collections`; read here like any other folder.

A folder is read leniently but never silently: its top-level subfolders are the classes (deeper folders belong to
their top-level one; no subfolders with images: one class named after the folder), every image is opened with
Pillow, composited onto a background where it has alpha (after trimming to its alpha bounding box), fitted to a
square by centre-cropping or padding, and files that cannot be read are listed in `ImageSet.skipped` with a reason.
Images lying loose at the top of a folder that also has class subfolders are skipped and listed there too: they
belong to no class, and a class named after the folder would silently mix them into training.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import sys
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageOps, UnidentifiedImageError
from safetensors import safe_open
from safetensors.torch import save_file

from shared.atomic import atomic_path, atomic_write_json
from shared.errors import ConfigError

ROOT = Path(__file__).resolve().parents[2]  # repo root: defaults do not depend on the working directory
DATA_ROOT = ROOT / "data" / "art"  # raw/ and prepared/ below it are git-ignored (data/*/raw/, data/*/prepared/)

IMAGE_EXTS = (".png", ".jpg", ".jpeg", ".webp", ".gif", ".bmp", ".tif", ".tiff")  # matched case-insensitively
FITS = ("crop", "pad")
MIN_IMAGE_SIZE = 8
ALPHA_TRIM = 8  # alpha <= this counts as empty when trimming (faint haze and stray pixels do not widen the box)
LOOSE_REASON = "loose image at the top of a folder with class subfolders: move it into a class subfolder"
CACHE_VERSION = 1


def _log(msg: str) -> None:
    print(f"art data: {msg}", file=sys.stderr, flush=True)


# ------------------------------------------------------------------------------------------------ image sets


@dataclass
class ImageSet:
    """Images with class labels: `images` (N, 3, S, S) uint8 RGB, `labels` (N,) int64 in 0..len(classes)-1.

    `paths` are the source files relative to the folder read (same order as the images); `skipped` lists the
    (relative path, reason) of files that were not used.
    """

    images: torch.Tensor
    labels: torch.Tensor
    classes: list[str]
    paths: list[str]
    skipped: list[tuple[str, str]] = field(default_factory=list)

    @property
    def n(self) -> int:
        return len(self.labels)

    @property
    def image_size(self) -> int:
        return int(self.images.shape[-1])

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    def subset(self, idx: Sequence[int] | np.ndarray | torch.Tensor) -> ImageSet:
        """The images at positions `idx` (in that order), with the same classes and skipped list."""
        idx = np.asarray(idx).reshape(-1)
        idx = torch.as_tensor(np.flatnonzero(idx) if idx.dtype == bool else idx.astype(np.int64))  # mask or indices
        return ImageSet(
            self.images[idx], self.labels[idx], list(self.classes), [self.paths[i] for i in idx.tolist()],
            list(self.skipped),
        )  # fmt: skip

    def counts(self) -> dict[str, int]:
        """{class name: number of images}, every class in label order (zero where a subset has none)."""
        per = torch.bincount(self.labels, minlength=self.num_classes).tolist()
        return dict(zip(self.classes, per))


def to_unit(x: torch.Tensor) -> torch.Tensor:
    """uint8 images in 0..255 -> float32 in [-1, 1], any shape, same device."""
    return x.to(torch.float32) / 127.5 - 1.0


def from_unit(x: torch.Tensor) -> torch.Tensor:
    """Float images in [-1, 1] -> uint8 0..255 (rounded; values outside [-1, 1] are clamped), any shape."""
    return ((x.float() + 1.0) * 127.5).round().clamp(0, 255).to(torch.uint8)


def split_holdout(ds: ImageSet, fraction: float = 0.15, seed: int = 0) -> tuple[ImageSet, ImageSet]:
    """Stratified (train, held) split: round(fraction * n_c) images of each class c are held out, drawn with a
    numpy Generator seeded by `seed`; every class keeps at least one training image (a class of one image is train
    only). Both halves keep the original order of `ds`."""
    if not 0.0 <= fraction < 1.0:
        raise ConfigError(f"held-out fraction {fraction} must be in [0, 1); 0.15 is usual")
    rng = np.random.default_rng(seed)
    labels = ds.labels.numpy()
    held: list[np.ndarray] = []
    for c in range(ds.num_classes):
        idx = np.flatnonzero(labels == c)
        k = min(int(np.floor(fraction * len(idx) + 0.5)), max(len(idx) - 1, 0))
        held.append(rng.permutation(idx)[:k])
    held_idx = np.sort(np.concatenate(held)) if held else np.zeros(0, dtype=np.int64)
    train_idx = np.setdiff1d(np.arange(ds.n), held_idx)
    return ds.subset(train_idx), ds.subset(held_idx)


# ------------------------------------------------------------------------------------------------ one image


class _Skip(Exception):
    """An image that cannot be used; the message is the one-line reason."""


def _reason(e: Exception, path: Path) -> str:
    if isinstance(e, _Skip):
        return str(e)
    if isinstance(e, UnidentifiedImageError):
        return "cannot identify image file (not an image, or a format Pillow cannot read)"
    text = (str(e).splitlines() or [""])[0].replace(str(path), path.name)[:160]
    return f"{type(e).__name__}: {text}" if text else type(e).__name__


def _rgb_or_rgba(im: Image.Image) -> Image.Image:
    """Any Pillow mode -> "RGBA" where the image has transparency (alpha band, palette or tRNS), else "RGB"."""
    if im.mode in ("I", "I;16", "I;16L", "I;16B", "I;16N", "F"):  # 16/32-bit greyscale: scale, do not clip
        arr = np.asarray(im, dtype=np.float64)
        scale = 1.0 if im.mode == "F" else 1.0 / 257.0
        grey = Image.fromarray(np.clip(arr * scale + 0.5, 0, 255).astype(np.uint8))
        t = im.info.get("transparency")
        if isinstance(t, int):  # a 16-bit tRNS grey value
            grey = grey.convert("RGBA")
            grey.putalpha(Image.fromarray(((arr != t) * 255).astype(np.uint8)))
            return grey
        return grey.convert("RGB")
    if im.has_transparency_data:
        return im if im.mode == "RGBA" else im.convert("RGBA")
    return im if im.mode == "RGB" else im.convert("RGB")


def _fit(im: Image.Image, size: int, fit: str, background: tuple[int, int, int], trim: bool) -> np.ndarray:
    """An opened image -> (size, size, 3) uint8: trim to the alpha box, resize and crop/pad, composite."""
    ImageOps.exif_transpose(im, in_place=True)  # photos taken sideways
    im = _rgb_or_rgba(im)
    if im.mode == "RGBA" and trim:
        box = im.getchannel("A").point([0] * (ALPHA_TRIM + 1) + [255] * (255 - ALPHA_TRIM)).getbbox()
        if box is None:
            raise _Skip("fully transparent: nothing to draw")
        im = im.crop(box)
    w, h = im.size
    # reducing_gap: a box-filter reduction first, then Lanczos, for big downscales (fast, and as sharp)
    if fit == "crop":
        m = min(w, h)
        box = ((w - m) / 2, (h - m) / 2, (w + m) / 2, (h + m) / 2)  # centre square, in source pixels
        im = im.resize((size, size), Image.Resampling.LANCZOS, box=box, reducing_gap=3.0)
    else:
        s = size / max(w, h)
        im = im.resize((max(1, round(w * s)), max(1, round(h * s))), Image.Resampling.LANCZOS, reducing_gap=3.0)
    canvas = Image.new("RGB", (size, size), background)
    offset = ((size - im.width) // 2, (size - im.height) // 2)
    canvas.paste(im, offset, im if im.mode == "RGBA" else None)  # RGBA resize premultiplies, so no halos
    return np.asarray(canvas, dtype=np.uint8)


def _load_image(path: Path, size: int, fit: str, background: tuple[int, int, int], trim: bool) -> np.ndarray | str:
    """(size, size, 3) uint8 array, or the one-line reason the file cannot be used."""
    try:
        with Image.open(path) as im:
            if im.format == "JPEG":
                im.draft(im.mode, (2 * size, 2 * size))  # decode at a reduced DCT scale: big photos load fast
            im.load()
            return _fit(im, size, fit, background, trim)
    except Exception as e:  # any failure of one file skips that file, with its reason
        return _reason(e, path)


# ------------------------------------------------------------------------------------------------ folders


def _scan(root: Path) -> tuple[list[tuple[str, int, int]], int]:
    """(relative posix path, size, mtime_ns) of every file with an image extension under `root`, sorted, and the
    number of other files. Hidden files and folders (".name") are ignored; symlinked folders are not followed."""
    found, others = [], 0
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for name in filenames:
            if name.startswith("."):
                continue
            if not name.lower().endswith(IMAGE_EXTS):
                others += 1
                continue
            path = Path(dirpath) / name
            try:
                st = path.stat()
                size, mtime = st.st_size, st.st_mtime_ns
            except OSError:  # a broken link: kept, so that loading reports it
                size, mtime = -1, -1
            found.append((path.relative_to(root).as_posix(), size, mtime))
    found.sort()
    return found, others


def _check_args(image_size: int, fit: str, background) -> tuple[int, int, int]:
    if not isinstance(image_size, int) or image_size < MIN_IMAGE_SIZE:
        raise ConfigError(f"image size {image_size} is too small: use {MIN_IMAGE_SIZE} or more (16, 32, 64 are usual)")
    if fit not in FITS:
        raise ConfigError(f"fit {fit!r} is unknown: use crop (fill the square) or pad (show the whole image)")
    bg = tuple(background)
    if len(bg) != 3 or not all(isinstance(c, int) and 0 <= c <= 255 for c in bg):
        raise ConfigError(f"background {background} must be three integers in 0..255 (an RGB colour)")
    return bg


def load_folder(
    root: str | os.PathLike,
    image_size: int,
    *,
    fit: str = "crop",
    background: tuple[int, int, int] = (255, 255, 255),
    trim: bool = True,
    min_images: int = 2,
    cache_dir: str | os.PathLike | None = None,
) -> ImageSet:
    """Every image under `root` as an ImageSet of (N, 3, image_size, image_size) uint8 RGB images.

    Classes are the top-level subfolders (sorted by name; deeper folders belong to their top-level subfolder);
    without subfolders holding images, all images form one class named after `root`. Loose images beside class
    subfolders, and files that fail to load, are listed in `skipped`; a class left with no images is dropped.
    Images with alpha are first trimmed to their alpha bounding box (`trim`) and composited onto `background`;
    then fit="crop" resizes the short side to image_size and centre-crops, fit="pad" resizes the long side and
    pads with `background`. With `cache_dir`, the result is stored there (safetensors + JSON) under a key of the
    folder's file list (paths, sizes, mtimes) and these arguments, and later calls with the same key read it.
    """
    bg = _check_args(image_size, fit, background)
    root = Path(root).expanduser()
    if not root.exists():
        raise ConfigError(f"image folder {root} does not exist: point --data.folder at a folder of images")
    if not root.is_dir():
        raise ConfigError(f"{root} is not a folder: point --data.folder at the folder that holds the images")
    root = root.resolve()
    entries, others = _scan(root)
    if not entries:
        if others:
            raise ConfigError(
                f"no images in {root} ({others} other files): accepted extensions are {', '.join(IMAGE_EXTS)}"
            )
        raise ConfigError(f"image folder {root} is empty: add images (one subfolder per class, or all in the folder)")
    params = {"image_size": image_size, "fit": fit, "background": list(bg), "trim": bool(trim)}
    cache = _Cache(Path(cache_dir), root, entries, params) if cache_dir is not None else None
    ds = cache.read() if cache else None
    if ds is None:
        ds = _read_folder(root, [e[0] for e in entries], image_size, fit, bg, trim)
        if cache:
            cache.write(ds)
    if ds.n < min_images:
        raise ConfigError(f"only {ds.n} readable images in {root}: at least {min_images} are needed; add images")
    return ds


def _read_folder(root: Path, rels: list[str], size: int, fit: str, bg: tuple[int, int, int], trim: bool) -> ImageSet:
    nested = [r for r in rels if "/" in r]
    skipped: list[tuple[str, str]] = []
    if nested:  # class subfolders: loose images at the top belong to no class
        skipped += [(r, LOOSE_REASON) for r in rels if "/" not in r]
        if skipped:
            _log(f"warning: skipped {len(skipped)} loose images at the top of {root} (move them into a class folder)")
        rels, classes = nested, sorted({r.split("/", 1)[0] for r in nested})
        names = [r.split("/", 1)[0] for r in rels]
    else:
        classes, names = [root.name], [root.name] * len(rels)
    workers = min(4, os.cpu_count() or 1) if len(rels) > 32 else 1
    with ThreadPoolExecutor(workers) as pool:  # Pillow decodes and resizes outside the GIL
        results = list(pool.map(lambda r: _load_image(root / r, size, fit, bg, trim), rels))
    ok = [i for i, res in enumerate(results) if not isinstance(res, str)]
    failed = [(rels[i], res) for i, res in enumerate(results) if isinstance(res, str)]
    if not ok:
        first, reason = failed[0]
        raise ConfigError(
            f"none of the {len(failed)} images in {root} could be read (first: {first}: {reason}); "
            "check the files or convert them to PNG"
        )
    kept = sorted({names[i] for i in ok})
    for c in classes:
        if c not in kept:
            _log(f"warning: class {c!r} has no readable images; dropped")
    index = {c: k for k, c in enumerate(kept)}
    arrays = np.stack([results[i] for i in ok])  # (N, S, S, 3)
    return ImageSet(
        images=torch.from_numpy(arrays).permute(0, 3, 1, 2).contiguous(),  # (N, 3, S, S)
        labels=torch.tensor([index[names[i]] for i in ok], dtype=torch.int64),
        classes=kept,
        paths=[rels[i] for i in ok],
        skipped=skipped + failed,
    )


def _slug(name: str) -> str:
    """ "Smileys & Emotion" -> "smileys-emotion"."""
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")


class _Cache:
    """One cached ImageSet: <cache_dir>/<folder>-<slot>.safetensors (tensors, the key in its metadata) and .json
    (key, classes, paths, skipped). The slot depends on the folder and the arguments, so a changed folder
    overwrites its old entry; the key adds the folder's (path, size, mtime) list. Nothing is ever unpickled."""

    def __init__(self, cache_dir: Path, root: Path, entries: list[tuple[str, int, int]], params: dict):
        head = {"version": CACHE_VERSION, "root": str(root), **params}
        slot = hashlib.sha256(json.dumps(head, sort_keys=True).encode()).hexdigest()[:16]
        self.key = hashlib.sha256(json.dumps({**head, "files": entries}, sort_keys=True).encode()).hexdigest()
        stem = _slug(root.name) or "images"
        self.tensors, self.meta = cache_dir / f"{stem}-{slot}.safetensors", cache_dir / f"{stem}-{slot}.json"
        self.image_size = params["image_size"]

    def read(self) -> ImageSet | None:
        try:
            meta = json.loads(self.meta.read_text())
            if meta.get("key") != self.key:
                return None
            with safe_open(str(self.tensors), framework="pt") as f:
                if (f.metadata() or {}).get("key") != self.key:
                    return None
                images, labels = f.get_tensor("images"), f.get_tensor("labels")
            ds = ImageSet(images, labels, list(meta["classes"]), list(meta["paths"]),
                          [(p, r) for p, r in meta["skipped"]])  # fmt: skip
        except FileNotFoundError:
            return None
        except Exception as e:  # a damaged cache entry is rebuilt, never trusted
            _log(f"ignoring unreadable cache entry {self.meta.name} ({type(e).__name__})")
            return None
        s = self.image_size
        good = (
            images.dtype == torch.uint8 and labels.dtype == torch.int64 and tuple(images.shape) == (ds.n, 3, s, s)
            and len(ds.paths) == ds.n and (ds.n == 0 or int(labels.max()) < ds.num_classes)
        )  # fmt: skip
        return ds if good else None

    def write(self, ds: ImageSet) -> None:
        with atomic_path(self.tensors) as tmp:
            save_file({"images": ds.images, "labels": ds.labels}, str(tmp), metadata={"key": self.key})
        meta = {"key": self.key, "classes": ds.classes, "paths": ds.paths, "skipped": [list(s) for s in ds.skipped]}
        atomic_write_json(self.meta, meta)  # written last: a key here names finished tensors
