"""A generated folder of 200+ images from the committed public-domain samples.

Copies, resized, cropped, recompressed, rotated (pixels and EXIF), mirrored, darkened, blurred,
grey, re-encoded in unsupported formats, too small, plus corrupt files (truncated JPEG and PNG,
random bytes, zero bytes, text named .png) and files that are not images at all (ignored when
walking the folder). Images are kept small (about 500-700 px) so that screening is quick.
"""

from __future__ import annotations

import io
import random
import shutil
from pathlib import Path

from PIL import Image, ImageEnhance, ImageFilter, ImageOps

#: Photos the variants are made from (rocket.jpg has no face; it is copied as it is).
BASES = (
    "obama.jpg", "obama2.jpg", "biden.jpg", "grace_hopper_512x512.jpg", "astronaut.png",
    "obama-1080p.jpg", "obama-720p.jpg", "obama_partial_face.jpg", "obama_rgba.png", "obama-480p.jpg",
)

#: Files that must come back as FAILED_TO_READ_IMAGE (relative to the dataset root).
CORRUPT = (
    "broken/truncated_1.jpg", "broken/truncated_2.jpg", "broken/truncated_3.jpg", "broken/truncated.png",
    "broken/random_1.jpg", "broken/random_2.jpg", "broken/empty_1.jpg", "broken/empty_2.jpg",
    "broken/text_named.png",
)

#: Files that are not images by name: find_images() must skip them.
NOT_IMAGES = ("notes.txt", "broken/readme.md")


def _jpeg(img: Image.Image, quality: int = 90, **params: object) -> bytes:
    buf = io.BytesIO()
    img.convert("RGB").save(buf, "JPEG", quality=quality, **params)
    return buf.getvalue()


def _encode(img: Image.Image, fmt: str) -> bytes:
    buf = io.BytesIO()
    if fmt == "GIF":
        img.convert("P", palette=Image.Palette.ADAPTIVE).save(buf, "GIF")
    elif fmt == "PNG":
        img.save(buf, "PNG", compress_level=1)
    else:
        img.convert("RGB").save(buf, fmt)
    return buf.getvalue()


def _fit(img: Image.Image, longest: int) -> Image.Image:
    scale = longest / max(img.size)
    return img.resize((max(1, round(img.width * scale)), max(1, round(img.height * scale))), Image.Resampling.LANCZOS)


def _short(img: Image.Image, shortest: int) -> Image.Image:
    scale = shortest / min(img.size)
    return img.resize((max(1, round(img.width * scale)), max(1, round(img.height * scale))), Image.Resampling.LANCZOS)


#: Height of the face centre as a share of the photo's height (0.4 when not listed).
FACE_Y = {"biden.jpg": 0.17}


def _work(img: Image.Image, face_y: float) -> Image.Image:
    """At most 640x760 around the face, at full resolution (faces keep their size)."""
    if min(img.size) < 520:
        img = _short(img, 520)
    w, h = img.size
    cw, ch = min(w, 640), min(h, 760)
    x0, y0 = (w - cw) // 2, max(0, min(h - ch, int(h * face_y) - ch // 2))
    return img.crop((x0, y0, x0 + cw, y0 + ch))


def _variants(img: Image.Image, rng: random.Random, face_y: float) -> dict[str, bytes]:
    """20 variants of one photo: name (with extension) -> encoded bytes."""
    work = _work(img, face_y).convert("RGB")
    out: dict[str, bytes] = {}
    out["work.jpg"] = _jpeg(work)
    out["work.png"] = _encode(work, "PNG")
    out["short480.jpg"] = _jpeg(_short(img, 480))  # the whole photo, scaled down: smaller face
    out["short560.jpg"] = _jpeg(_short(_fit(img, 1400), 560))
    out["q35.jpg"] = _jpeg(work, quality=35)  # JPEG_QUALITY_TOO_LOW
    out["q75.jpg"] = _jpeg(work, quality=75)
    angle = rng.choice([8, -12, 20])
    out[f"roll{angle}.jpg"] = _jpeg(work.rotate(angle, resample=Image.Resampling.BICUBIC, fillcolor=(128, 128, 128)))
    out["roll45.jpg"] = _jpeg(work.rotate(45, resample=Image.Resampling.BICUBIC, fillcolor=(128, 128, 128)))
    # pixels stored sideways with an EXIF orientation that puts them upright again
    exif = Image.Exif()
    exif[0x0112] = 6
    out["exif6.jpg"] = _jpeg(work.transpose(Image.Transpose.ROTATE_90), exif=exif.tobytes())
    out["mirror.jpg"] = _jpeg(ImageOps.mirror(work))
    out["grey.jpg"] = _jpeg(ImageOps.grayscale(work))
    out["dark.jpg"] = _jpeg(ImageEnhance.Brightness(work).enhance(0.25))
    out["bright.jpg"] = _jpeg(ImageEnhance.Brightness(work).enhance(2.2))
    out["blur.jpg"] = _jpeg(work.filter(ImageFilter.GaussianBlur(5)))
    out["tall.jpg"] = _jpeg(_short(work, 1000) if work.height > work.width else _fit(work, 1200), quality=85)
    out["tiny.jpg"] = _jpeg(_fit(work, 300))  # below 480 px: RESOLUTION_TOO_LOW
    out["work.webp"] = _encode(work, "WEBP")  # UNSUPPORTED_FORMAT
    out["work.bmp"] = _encode(work, "BMP")
    out["work.gif"] = _encode(work, "GIF")
    out["upper.JPG"] = _jpeg(_fit(work, 600) if min(work.size) >= 520 else work)  # extension in capitals
    return out


def make_dataset(root: Path, samples: Path, seed: int = 6) -> Path:
    """Write the folder under ``root`` and return it."""
    rng = random.Random(seed)
    root.mkdir(parents=True, exist_ok=True)
    originals = root / "originals"
    originals.mkdir()
    for src in sorted(samples.iterdir()):
        if src.suffix.lower() in (".jpg", ".png"):
            shutil.copy(src, originals / src.name)
    for name in BASES:
        with Image.open(samples / name) as im:
            im.load()
            img = ImageOps.exif_transpose(im)
        if img.mode not in ("RGB", "L"):
            img = img.convert("RGB")
        folder = root / "variants" / Path(name).stem
        folder.mkdir(parents=True)
        for variant, data in _variants(img, rng, FACE_Y.get(name, 0.4)).items():
            (folder / variant).write_bytes(data)

    broken = root / "broken"
    broken.mkdir()
    jpeg = (samples / "obama.jpg").read_bytes()
    for i, frac in enumerate((0.3, 0.6, 0.9), start=1):
        (broken / f"truncated_{i}.jpg").write_bytes(jpeg[: int(len(jpeg) * frac)])
    png = (samples / "astronaut.png").read_bytes()
    (broken / "truncated.png").write_bytes(png[: len(png) // 2])
    for i in (1, 2):
        (broken / f"random_{i}.jpg").write_bytes(rng.randbytes(20_000 * i))
    for i in (1, 2):
        (broken / f"empty_{i}.jpg").write_bytes(b"")
    (broken / "text_named.png").write_text("this is not an image\n" * 50)
    (root / "notes.txt").write_text("not an image\n")
    (broken / "readme.md").write_text("# not an image\n")
    return root
