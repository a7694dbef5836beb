"""Unit tests for apps/art/data.py: reading folders of images (formats, modes, classes, skipped files), crop / pad /
trim geometry, the one-line errors, the cache, the stratified split and the [-1, 1] scaling, and the collection
preparation on fake extracted trees. Every image is drawn here with Pillow; nothing is downloaded (the apt-get
calls are replaced by stand-ins)."""

import json
import os
import subprocess

import numpy as np
import pytest
import torch
from PIL import Image

from apps.art import collections as ac
from apps.art import data as ad
from apps.art.data import ImageSet, from_unit, load_folder, split_holdout, to_unit
from shared.errors import ConfigError

RED, GREEN, BLUE, WHITE = (255, 0, 0), (0, 255, 0), (0, 0, 255), (255, 255, 255)


def solid(size, colour, mode="RGB"):
    return Image.new(mode, size, colour)


def ring_rgba(colour=BLUE, size=32):
    """Opaque `colour` in the left and right quarters, transparent in between: the alpha box is the whole image."""
    a = np.zeros((size, size, 4), np.uint8)
    a[:, : size // 4, :3] = a[:, -size // 4 :, :3] = colour
    a[:, : size // 4, 3] = a[:, -size // 4 :, 3] = 255
    return Image.fromarray(a, "RGBA")


def ring_palette(size=32):
    """The same ring as a palette image: index 1 red, index 0 transparent (tRNS)."""
    im = Image.new("P", (size, size), 0)
    im.putpalette([0, 0, 0, 255, 0, 0] + [0, 0, 0] * 254)
    im.paste(1, (0, 0, size // 4, size))
    im.paste(1, (size - size // 4, 0, size, size))
    im.info["transparency"] = 0
    return im


def save(im, path, **kw):
    path.parent.mkdir(parents=True, exist_ok=True)
    im.save(path, **kw)
    return path


def pixel(ds, i, y, x):
    return tuple(ds.images[i, :, y, x].tolist())


def close(a, b, tol=12):
    return all(abs(int(p) - int(q)) <= tol for p, q in zip(a, b))


@pytest.fixture
def two_classes(tmp_path):
    """root/animals and root/shapes with every format and mode, a nested folder and one corrupt file."""
    root = tmp_path / "art"
    save(solid((24, 24), RED), root / "animals" / "red.png")
    save(solid((30, 20), GREEN), root / "animals" / "photo.jpg", quality=95)
    save(solid((20, 20), BLUE), root / "animals" / "blue.webp", lossless=True)
    save(solid((20, 20), 128, "L"), root / "animals" / "deep" / "grey.png")  # nested: still class "animals"
    save(ring_rgba(), root / "shapes" / "sprite.png")
    save(ring_palette(), root / "shapes" / "palette.png", transparency=0)
    (root / "shapes" / "broken.png").write_bytes(np.random.default_rng(0).bytes(300))
    (root / "shapes" / "notes.txt").write_text("not an image")
    return root


# ------------------------------------------------------------------------------------------------ loading


def test_load_folder_reads_every_format_labels_by_folder_and_skips_the_corrupt_file(two_classes):
    ds = load_folder(two_classes, 16)
    assert ds.images.shape == (6, 3, 16, 16) and ds.images.dtype == torch.uint8
    assert ds.labels.dtype == torch.int64 and ds.classes == ["animals", "shapes"]
    assert ds.paths == [
        "animals/blue.webp", "animals/deep/grey.png", "animals/photo.jpg", "animals/red.png",
        "shapes/palette.png", "shapes/sprite.png",
    ]  # fmt: skip
    assert ds.labels.tolist() == [0, 0, 0, 0, 1, 1]
    assert ds.counts() == {"animals": 4, "shapes": 2} and ds.n == 6 and ds.image_size == 16 and ds.num_classes == 2
    assert len(ds.skipped) == 1 and ds.skipped[0][0] == "shapes/broken.png"
    assert "cannot identify image file" in ds.skipped[0][1] and "\n" not in ds.skipped[0][1]
    colours = {p: pixel(ds, i, 8, 8) for i, p in enumerate(ds.paths)}
    assert colours["animals/blue.webp"] == BLUE and colours["animals/red.png"] == RED
    assert colours["animals/deep/grey.png"] == (128, 128, 128)
    assert close(colours["animals/photo.jpg"], GREEN)
    # transparent middle of the ring -> the background; the opaque sides keep their colour
    for name, colour in (("shapes/sprite.png", BLUE), ("shapes/palette.png", RED)):
        i = ds.paths.index(name)
        assert pixel(ds, i, 8, 8) == WHITE and pixel(ds, i, 8, 0) == colour
    ds = load_folder(two_classes, 16, background=(10, 20, 30))
    assert pixel(ds, ds.paths.index("shapes/sprite.png"), 8, 8) == (10, 20, 30)


@pytest.mark.parametrize(
    "make, expected",
    [
        (lambda: Image.fromarray(np.full((12, 12), 128 * 257, np.uint16)), (128,) * 3),  # 16-bit grey: scaled
        (lambda: solid((12, 12), (200, 255), "LA"), (200,) * 3),
        (lambda: solid((12, 12), (0, 255, 255, 0), "CMYK"), RED),
        (lambda: solid((12, 12), 1, "1"), WHITE),
        (lambda: solid((12, 12), (0, 255, 0, 128), "RGBA"), (127, 255, 127)),  # half transparent over white
    ],
)
def test_every_mode_ends_rgb(tmp_path, make, expected):
    im = make()
    save(
        im,
        tmp_path / "one" / ("a.jpg" if im.mode == "CMYK" else "a.png"),
        **({"quality": 100} if im.mode == "CMYK" else {}),
    )
    save(solid((12, 12), RED), tmp_path / "one" / "b.png")
    ds = load_folder(tmp_path / "one", 8)
    assert ds.classes == ["one"] and ds.images.shape == (2, 3, 8, 8)
    assert close(pixel(ds, 0, 4, 4), expected, tol=3)


def test_images_without_subfolders_form_one_class_named_after_the_folder(tmp_path):
    for i, c in enumerate((RED, GREEN, BLUE)):
        save(solid((10, 10), c), tmp_path / "tiles" / f"{i}.png")
    ds = load_folder(tmp_path / "tiles", 8)
    assert ds.classes == ["tiles"] and ds.labels.tolist() == [0, 0, 0] and ds.skipped == []


def test_loose_images_beside_class_folders_are_skipped_and_counted(tmp_path, capsys):
    save(solid((10, 10), RED), tmp_path / "a" / "x.png")
    save(solid((10, 10), BLUE), tmp_path / "b" / "y.png")
    save(solid((10, 10), GREEN), tmp_path / "cover.png")
    ds = load_folder(tmp_path, 8)
    assert ds.classes == ["a", "b"] and ds.paths == ["a/x.png", "b/y.png"]
    assert ds.skipped == [("cover.png", ad.LOOSE_REASON)]
    assert "1 loose images" in capsys.readouterr().err


def test_a_class_without_readable_images_is_dropped_with_a_warning(tmp_path, capsys):
    save(solid((10, 10), RED), tmp_path / "a" / "x.png")
    save(solid((10, 10), RED), tmp_path / "a" / "y.png")
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "bad.jpg").write_bytes(b"\xff\xd8 not really a jpeg")
    save(solid((10, 10), BLUE), tmp_path / "c" / "z.png")
    ds = load_folder(tmp_path, 8)
    assert ds.classes == ["a", "c"] and ds.labels.tolist() == [0, 0, 1]
    assert [p for p, _ in ds.skipped] == ["b/bad.jpg"]
    assert "class 'b' has no readable images" in capsys.readouterr().err


def test_hidden_files_and_folders_are_ignored(tmp_path):
    save(solid((10, 10), RED), tmp_path / "a" / "x.png")
    save(solid((10, 10), RED), tmp_path / "a" / "y.png")
    save(solid((10, 10), RED), tmp_path / ".thumbs" / "t.png")
    save(solid((10, 10), RED), tmp_path / "a" / ".hidden.png")
    ds = load_folder(tmp_path, 8)
    assert ds.classes == ["a"] and ds.n == 2 and ds.skipped == []


# ------------------------------------------------------------------------------------------------ geometry


@pytest.fixture
def wide(tmp_path):
    """40x20: red | green square | blue, saved twice (load_folder needs two images)."""
    a = np.zeros((20, 40, 3), np.uint8)
    a[:, :10], a[:, 10:30], a[:, 30:] = RED, GREEN, BLUE
    for name in ("a.png", "b.png"):
        save(Image.fromarray(a), tmp_path / "wide" / name)
    return tmp_path / "wide"


def test_crop_keeps_the_centre_square(wide):
    x = load_folder(wide, 8, fit="crop").images[0]  # (3, 8, 8)
    inner = x[:, :, 1:-1].permute(1, 2, 0).reshape(-1, 3)  # the edge columns may blend through Lanczos
    assert all(close(p, GREEN, tol=20) for p in inner.tolist())


def test_pad_shows_the_whole_image_with_background_bands(wide):
    ds = load_folder(wide, 8, fit="pad", background=(9, 9, 9))
    x = ds.images[0]
    assert (x[:, :2] == 9).all() and (x[:, 6:] == 9).all()  # 40x20 -> 8x4, padded by 2 rows above and below
    row = x[:, 3].T.tolist()  # (8, 3)
    assert close(row[0], RED, 40) and close(row[4], GREEN, 40) and close(row[7], BLUE, 40)


def test_trim_fits_the_alpha_box_and_ignores_faint_haze(tmp_path):
    a = np.zeros((40, 40, 4), np.uint8)
    a[25:35, 10:20] = (*RED, 255)  # the subject: a 10x10 red square low on the left
    a[0, 39] = (*BLUE, 5)  # near-invisible haze far away
    for name in ("a.png", "b.png"):
        save(Image.fromarray(a, "RGBA"), tmp_path / "sprites" / name)
    trimmed = load_folder(tmp_path / "sprites", 8).images[0]
    assert (trimmed.permute(1, 2, 0).reshape(-1, 3) == torch.tensor(RED, dtype=torch.uint8)).all()
    whole = load_folder(tmp_path / "sprites", 8, trim=False).images[0]
    assert tuple(whole[:, 0, 0].tolist()) == WHITE and close(whole[:, 6, 3].tolist(), RED, 60)


def test_fully_transparent_images_are_skipped(tmp_path):
    save(solid((10, 10), (0, 0, 0, 0), "RGBA"), tmp_path / "s" / "empty.png")
    save(solid((10, 10), RED), tmp_path / "s" / "a.png")
    save(solid((10, 10), RED), tmp_path / "s" / "b.png")
    ds = load_folder(tmp_path / "s", 8)
    assert ds.n == 2 and ds.skipped == [("empty.png", "fully transparent: nothing to draw")]


# ------------------------------------------------------------------------------------------------ errors


def test_errors_say_what_to_change(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        load_folder(tmp_path / "nope", 16)
    (tmp_path / "file.png").write_bytes(b"x")
    with pytest.raises(ConfigError, match="is not a folder"):
        load_folder(tmp_path / "file.png", 16)
    (tmp_path / "empty").mkdir()
    with pytest.raises(ConfigError, match="is empty"):
        load_folder(tmp_path / "empty", 16)
    (tmp_path / "texts" / "sub").mkdir(parents=True)
    (tmp_path / "texts" / "a.txt").write_text("a")
    (tmp_path / "texts" / "sub" / "b.txt").write_text("b")
    with pytest.raises(ConfigError, match=r"no images .*\(2 other files\): accepted extensions are \.png, \.jpg"):
        load_folder(tmp_path / "texts", 16)
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "x.png").write_bytes(b"\x89PNG garbage")
    with pytest.raises(ConfigError, match=r"none of the 1 images .* \(first: x\.png: cannot identify image file"):
        load_folder(tmp_path / "bad", 16)
    save(solid((10, 10), RED), tmp_path / "one" / "x.png")
    with pytest.raises(ConfigError, match="only 1 readable images .* at least 2 are needed"):
        load_folder(tmp_path / "one", 16)
    assert load_folder(tmp_path / "one", 16, min_images=1).n == 1
    with pytest.raises(ConfigError, match="too small: use 8 or more"):
        load_folder(tmp_path / "one", 4)
    with pytest.raises(ConfigError, match="fit 'fill' is unknown"):
        load_folder(tmp_path / "one", 16, fit="fill")
    with pytest.raises(ConfigError, match="three integers in 0..255"):
        load_folder(tmp_path / "one", 16, background=(0, 0, 300))


# ------------------------------------------------------------------------------------------------ cache


def test_cache_serves_the_second_load_and_a_touched_file_invalidates_it(two_classes, tmp_path, monkeypatch):
    cache = tmp_path / "cache"
    first = load_folder(two_classes, 16, cache_dir=cache)
    assert sorted(p.suffix for p in cache.iterdir()) == [".json", ".safetensors"]
    opened = []
    real_open = Image.open

    def counting_open(*args, **kwargs):
        opened.append(args[0])
        return real_open(*args, **kwargs)

    monkeypatch.setattr(ad.Image, "open", counting_open)
    second = load_folder(two_classes, 16, cache_dir=cache)
    assert opened == []  # served from the cache
    assert torch.equal(first.images, second.images) and torch.equal(first.labels, second.labels)
    assert (first.classes, first.paths, first.skipped) == (second.classes, second.paths, second.skipped)

    target = two_classes / "animals" / "red.png"
    st = target.stat()
    os.utime(target, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    third = load_folder(two_classes, 16, cache_dir=cache)
    assert len(opened) == 7 and torch.equal(first.images, third.images)
    assert len(list(cache.iterdir())) == 2  # the entry was replaced, not added

    opened.clear()
    load_folder(two_classes, 8, cache_dir=cache)  # other arguments: another entry
    assert len(opened) == 7 and len(list(cache.iterdir())) == 4


def test_a_damaged_cache_entry_is_rebuilt(two_classes, tmp_path):
    cache = tmp_path / "cache"
    first = load_folder(two_classes, 16, cache_dir=cache)
    for f in cache.glob("*.safetensors"):
        f.write_bytes(b"garbage")
    again = load_folder(two_classes, 16, cache_dir=cache)
    assert torch.equal(first.images, again.images)
    assert torch.equal(load_folder(two_classes, 16, cache_dir=cache).images, first.images)


# ------------------------------------------------------------------------------------------------ split, scaling


def synthetic(sizes):
    labels = torch.cat([torch.full((n,), c, dtype=torch.int64) for c, n in enumerate(sizes)])
    n = len(labels)
    images = torch.arange(n, dtype=torch.uint8)[:, None, None, None].expand(n, 3, 8, 8).contiguous()
    return ImageSet(images, labels, [f"c{c}" for c in range(len(sizes))], [f"c{int(y)}/{i}.png" for i, y in
                    enumerate(labels)])  # fmt: skip


def test_split_holdout_is_stratified_deterministic_and_keeps_every_class_in_train():
    ds = synthetic([1, 2, 10, 20, 7])
    train, held = split_holdout(ds, 0.2, seed=3)
    assert held.counts() == {"c0": 0, "c1": 0, "c2": 2, "c3": 4, "c4": 1}
    assert all(n >= 1 for n in train.counts().values())
    assert sorted(train.paths + held.paths) == sorted(ds.paths) and not set(train.paths) & set(held.paths)
    assert train.paths == sorted(train.paths, key=ds.paths.index)  # original order kept
    assert torch.equal(train.images[:, 0, 0, 0], torch.tensor([ds.paths.index(p) for p in train.paths]).byte())
    again_train, again_held = split_holdout(ds, 0.2, seed=3)
    assert again_held.paths == held.paths and again_train.paths == train.paths
    assert split_holdout(ds, 0.2, seed=4)[1].paths != held.paths
    tiny_train, tiny_held = split_holdout(synthetic([2, 2]), 0.5, seed=0)
    assert tiny_held.counts() == {"c0": 1, "c1": 1} and tiny_train.counts() == {"c0": 1, "c1": 1}
    with pytest.raises(ConfigError, match=r"must be in \[0, 1\)"):
        split_holdout(ds, 1.0)


def test_subset_takes_indices_or_a_mask():
    ds = synthetic([2, 3])
    assert ds.subset([4, 0]).paths == [ds.paths[4], ds.paths[0]]
    assert ds.subset(ds.labels == 1).counts() == {"c0": 0, "c1": 3}
    assert ds.subset(torch.tensor([1])).labels.tolist() == [0]


def test_to_unit_and_from_unit_round_trip():
    x = torch.arange(256, dtype=torch.uint8).reshape(1, 1, 16, 16)
    u = to_unit(x)
    assert u.dtype == torch.float32 and u.min() == -1 and u.max() == 1
    assert torch.equal(from_unit(u), x)
    assert from_unit(torch.tensor([-3.0, -1.0, 0.0, 1.0, 5.0])).tolist() == [0, 0, 128, 255, 255]
    assert torch.equal(from_unit(u + 0.002), x)  # rounds, does not truncate


# ------------------------------------------------------------------------------------------------ collections


def fake_tree(data_root, pkg, members, files):
    """data_root/raw/<pkg>/ as `_unpack` leaves it, with `files` {relative path: bytes}: no .deb needed."""
    tree = data_root / "raw" / pkg
    for rel, content in files.items():
        (tree / rel).parent.mkdir(parents=True, exist_ok=True)
        (tree / rel).write_bytes(content)
    (tree / ".complete").write_text(json.dumps({"deb": f"{pkg}_1%3a1.0-1_all.deb", "members": list(members)}))


def test_prepare_portraits_copies_the_faction_folders(tmp_path, monkeypatch):
    monkeypatch.setattr(ac, "_download", lambda *a: pytest.fail("nothing may be downloaded"))
    members = ac.COLLECTIONS["portraits"].members[ac.WESNOTH]
    png = save(ring_rgba(), tmp_path / "p.png").read_bytes()
    files = {f"{ac.PORTRAITS}{f}": png for f in ("elves/archer.png", "elves/lord.png", "undead/ghost.png")}
    files[f"{ac.PORTRAITS}ARTISTS"] = b"credits"
    files[f"usr/share/doc/{ac.WESNOTH}/copyright"] = b"GPL-2+"
    fake_tree(tmp_path, ac.WESNOTH, members, files)
    out = ac.prepare_collection("portraits", data_root=tmp_path)
    assert out == tmp_path / "prepared" / "portraits"
    manifest = json.loads((out / ".complete").read_text())
    assert manifest["total"] == 3 and manifest["packages"] == {ac.WESNOTH: "1:1.0-1"}
    assert {k: v["count"] for k, v in manifest["classes"].items()} == {"elves": 2, "undead": 1}
    assert (out / "ARTISTS.txt").read_bytes() == b"credits" and (out / f"COPYRIGHT.{ac.WESNOTH}.txt").is_file()
    ds = load_folder(out, 16)
    assert ds.counts() == {"elves": 2, "undead": 1} and ds.skipped == []
    (out / "elves" / "lord.png").unlink()
    assert ac.prepare_collection("portraits", data_root=tmp_path) == out  # .complete: nothing is redone
    assert not (out / "elves" / "lord.png").exists()
    ac.prepare_collection("portraits", data_root=tmp_path, force=True)
    assert (out / "elves" / "lord.png").exists()


def test_parse_emoji_test_keeps_fully_qualified_with_their_group(tmp_path):
    text = (
        "# group: Smileys & Emotion\n# subgroup: face-smiling\n"
        "1F600 ; fully-qualified # 😀 E1.0 grinning face\n"
        "263A ; unqualified # ☺ E0.6 smiling face\n\n"
        "# group: People & Body\n"
        "1F44B 1F3FB ; fully-qualified # 👋🏻 E1.0 waving hand: light skin tone\n"
    )
    (tmp_path / "emoji-test.txt").write_text(text, encoding="utf-8")
    assert ac.parse_emoji_test(tmp_path / "emoji-test.txt") == [
        ("Smileys & Emotion", [0x1F600], "grinning face"),
        ("People & Body", [0x1F44B, 0x1F3FB], "waving hand: light skin tone"),
    ]
    assert ad._slug("Smileys & Emotion") == "smileys-emotion"


def test_prepare_errors_point_at_apt_or_an_own_folder(tmp_path, monkeypatch):
    with pytest.raises(ConfigError, match="unknown collection 'cats'"):
        ac.prepare_collection("cats", data_root=tmp_path)
    monkeypatch.setattr(ac.shutil, "which", lambda name: None)
    with pytest.raises(ConfigError, match=r"cannot prepare the emoji collection: apt-get is not installed; .*"
                       r"--data\.folder PATH"):  # fmt: skip
        ac.prepare_collection("emoji", data_root=tmp_path)

    calls = []

    def fake_run(cmd, cwd, name):
        calls.append(cmd[1:])
        if cmd[1] == "update":
            return subprocess.CompletedProcess(cmd, 0, "", "")
        return subprocess.CompletedProcess(cmd, 100, "", "E: Unable to locate package fonts-noto-color-emoji\n")

    monkeypatch.setattr(ac.shutil, "which", lambda name: f"/usr/bin/{name}")
    monkeypatch.setattr(ac, "_run", fake_run)
    monkeypatch.setattr(ac, "_APT_UPDATED", False)
    monkeypatch.setattr(ac.os, "geteuid", lambda: 0)
    with pytest.raises(ConfigError, match=r"apt-get download fonts-noto-color-emoji failed: E: Unable to locate"):
        ac.prepare_collection("emoji", data_root=tmp_path)
    assert calls == [["download", "fonts-noto-color-emoji"], ["update"], ["download", "fonts-noto-color-emoji"]]
    assert not (tmp_path / "prepared" / "emoji").exists()
