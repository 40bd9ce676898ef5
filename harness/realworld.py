"""MNIST *test* digits rendered as the pictures people really send, in named styles.

Each style turns one 28x28 test digit into the bytes of an image file: a phone photo of
paper with a shadow, a noisy scan, a blurred or heavily compressed picture, a small
digit lost on a large canvas, thick and thin pens, coloured ink, ruled and squared
paper, a frame drawn around the digit, browser canvas drawings (dark strokes on a
transparent background, light strokes on black). Everything is drawn with NumPy and
Pillow from a seeded generator, so a given ``(seed, count)`` always yields the same
files. Only the test split is used: a model never saw these digits while training.

``python -m load.realworld_report`` measures the accuracy of ``/predict_image`` per
style; ``tests/service/test_realworld.py`` asserts it.
"""

from __future__ import annotations

import io
import zlib
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

Rgb = tuple[float, float, float]
Style = Callable[[np.ndarray, np.random.Generator], bytes]


@dataclass(frozen=True)
class Picture:
    """One rendered file and the true label of the test digit it shows."""

    style: str
    index: int
    """Position of the digit in the MNIST test split."""
    label: int
    data: bytes


# --- drawing helpers --------------------------------------------------------------------


def strokes(digit: np.ndarray, side: int, *, crisp: bool = True) -> np.ndarray:
    """The 28x28 digit scaled to ``side`` px as ink coverage 0..1 (crisp: pen-like edges)."""
    field = Image.fromarray(digit.astype(np.float32) / 255.0, mode="F")
    ink = np.asarray(field.resize((side, side), Image.Resampling.BICUBIC), dtype=np.float32)
    if crisp:
        # A pen leaves a solid line with a narrow soft edge, not MNIST's wide blur.
        ink = (ink - 0.3) / 0.4
    return np.clip(ink, 0.0, 1.0)


def morph(ink: np.ndarray, size: int, *, grow: bool) -> np.ndarray:
    """Dilate (grow) or erode the ink with a ``size`` x ``size`` square (size odd).

    A square is separable: a running max (or min) along rows, then along columns.
    """
    reduce = np.max if grow else np.min
    half = size // 2
    out = ink
    for axis in (0, 1):
        pad = [(0, 0), (0, 0)]
        pad[axis] = (half, half)
        padded = np.pad(out, pad, mode="constant")
        windows = np.lib.stride_tricks.sliding_window_view(padded, size, axis=axis)
        out = reduce(windows, axis=-1)
    return np.ascontiguousarray(out, dtype=np.float32)


def place(ink: np.ndarray, height: int, width: int, top: int, left: int) -> np.ndarray:
    """``ink`` pasted at (top, left) on an empty ``height`` x ``width`` field."""
    field = np.zeros((height, width), np.float32)
    field[top : top + ink.shape[0], left : left + ink.shape[1]] = ink
    return field


def random_place(
    ink: np.ndarray, height: int, width: int, rng: np.random.Generator, margin: int = 0
) -> np.ndarray:
    top = int(rng.integers(margin, max(margin, height - ink.shape[0] - margin) + 1))
    left = int(rng.integers(margin, max(margin, width - ink.shape[1] - margin) + 1))
    return place(ink, height, width, top, left)


def paper(height: int, width: int, colour: Rgb) -> np.ndarray:
    return np.broadcast_to(np.array(colour, np.float32), (height, width, 3)).copy()


def ink_on(background: np.ndarray, ink: np.ndarray, colour: Rgb) -> np.ndarray:
    """Ink of ``colour`` laid on an RGB ``background`` with coverage ``ink``."""
    cover = ink[..., None]
    laid: np.ndarray = background * (1.0 - cover) + np.array(colour, np.float32) * cover
    return laid


def to_bytes(pixels: np.ndarray, fmt: str = "PNG", **options: object) -> bytes:
    array = np.clip(np.rint(pixels), 0, 255).astype(np.uint8)
    mode = "L" if array.ndim == 2 else {3: "RGB", 4: "RGBA"}[array.shape[2]]
    buffer = io.BytesIO()
    Image.fromarray(array, mode=mode).save(buffer, format=fmt, **options)
    return buffer.getvalue()


def dark_ink(rng: np.random.Generator) -> Rgb:
    level = float(rng.uniform(15, 70))
    return (level, level, level + float(rng.uniform(0, 20)))


def paper_white(rng: np.random.Generator) -> Rgb:
    level = float(rng.uniform(225, 250))
    return (level, level - float(rng.uniform(0, 8)), level - float(rng.uniform(0, 18)))


def centred(ink: np.ndarray, height: int, width: int, rng: np.random.Generator) -> np.ndarray:
    """``ink`` near the middle of the field, off by up to a tenth of the field either way."""
    jitter_y = int(rng.integers(-height // 10, height // 10 + 1))
    jitter_x = int(rng.integers(-width // 10, width // 10 + 1))
    top = min(max((height - ink.shape[0]) // 2 + jitter_y, 0), height - ink.shape[0])
    left = min(max((width - ink.shape[1]) // 2 + jitter_x, 0), width - ink.shape[1])
    return place(ink, height, width, top, left)


# --- the styles -------------------------------------------------------------------------


def phone_photo(digit: np.ndarray, rng: np.random.Generator) -> bytes:
    """Paper under a lamp: light falling off across the page, a soft shadow, JPEG."""
    height, width = int(rng.integers(300, 420)), int(rng.integers(300, 420))
    side = int(min(height, width) * rng.uniform(0.55, 0.8))
    ink = centred(strokes(digit, side), height, width, rng)
    page = ink_on(paper(height, width, paper_white(rng)), ink, dark_ink(rng))
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float32)
    angle = rng.uniform(0, 2 * np.pi)
    along = (np.cos(angle) * xs / width + np.sin(angle) * ys / height + 1.0) / 2.0
    light = 1.05 - rng.uniform(0.15, 0.3) * along
    # The shadow of a hand or phone: a half plane with a soft edge over part of the page.
    angle = rng.uniform(0, 2 * np.pi)
    offset = rng.uniform(0.25, 0.45) * min(height, width)
    distance = np.cos(angle) * (xs - width / 2) + np.sin(angle) * (ys - height / 2) - offset
    softness = rng.uniform(8, 30)
    shade = 1.0 - rng.uniform(0.25, 0.4) / (1.0 + np.exp(distance / softness))
    photo = page * (light * shade)[..., None]
    return to_bytes(photo, "JPEG", quality=int(rng.integers(70, 90)))


def noisy_scan(digit: np.ndarray, rng: np.random.Generator) -> bytes:
    """Paper grain (blotchy, low frequency) plus sensor noise on every pixel."""
    side = int(rng.integers(200, 320))
    size = int(side * rng.uniform(1.1, 1.4))
    ink = centred(strokes(digit, side), size, size, rng)
    page = ink_on(paper(size, size, paper_white(rng)), ink, dark_ink(rng))
    coarse = rng.normal(0, 1, (size // 8 + 1, size // 8 + 1)).astype(np.float32)
    grain = np.asarray(
        Image.fromarray(coarse, mode="F").resize((size, size), Image.Resampling.BICUBIC),
        dtype=np.float32,
    )
    page += (grain * rng.uniform(6, 12))[..., None]
    page += rng.standard_normal(page.shape, dtype=np.float32) * rng.uniform(10, 18)
    # A scanner's or camera's own JPEG, at its usual high quality.
    return to_bytes(page, "JPEG", quality=92)


def blurred(digit: np.ndarray, rng: np.random.Generator) -> bytes:
    """Out of focus or shaken: a Gaussian blur of a few stroke widths' fraction."""
    side = int(rng.integers(90, 140))
    size = int(side * 1.4)
    ink = centred(strokes(digit, side), size, size, rng)
    page = ink_on(paper(size, size, paper_white(rng)), ink, dark_ink(rng))
    image = Image.fromarray(np.clip(page, 0, 255).astype(np.uint8), mode="RGB")
    image = image.filter(ImageFilter.GaussianBlur(float(rng.uniform(1.5, 3.5))))
    return to_bytes(np.asarray(image, dtype=np.float32))


def jpeg_artefacts(digit: np.ndarray, rng: np.random.Generator) -> bytes:
    """Saved and re-shared at a low JPEG quality: blocks and ringing round the strokes."""
    side = int(rng.integers(100, 220))
    size = int(side * rng.uniform(1.2, 1.5))
    ink = centred(strokes(digit, side), size, size, rng)
    page = ink_on(paper(size, size, paper_white(rng)), ink, dark_ink(rng))
    return to_bytes(page, "JPEG", quality=int(rng.integers(5, 15)))


def small_off_centre(digit: np.ndarray, rng: np.random.Generator) -> bytes:
    """A small digit somewhere on a large, slightly noisy page."""
    height, width = int(rng.integers(500, 800)), int(rng.integers(500, 800))
    side = int(rng.integers(45, 90))
    ink = random_place(strokes(digit, side), height, width, rng, margin=10)
    page = ink_on(paper(height, width, paper_white(rng)), ink, dark_ink(rng))
    page += rng.standard_normal(page.shape[:2], dtype=np.float32)[..., None] * 4.0
    return to_bytes(page, "JPEG", quality=90)


def thick_or_thin(digit: np.ndarray, rng: np.random.Generator) -> bytes:
    """A marker (strokes up to about 1.7 times MNIST's) or a fine pen (down to about 0.6).

    Thicker still and the loops of 6, 8 and 9 close up; thinner and the faint parts of
    the digit vanish: past those limits even a person could not read all of them.
    """
    side = int(rng.integers(200, 280))
    ink = strokes(digit, side)
    if rng.random() < 0.5:
        ink = morph(ink, 2 * int(side * rng.uniform(0.02, 0.035)) + 1, grow=True)
    else:
        ink = morph(ink, 2 * int(side * rng.uniform(0.01, 0.016)) + 1, grow=False)
    size = int(side * 1.4)
    page = ink_on(paper(size, size, paper_white(rng)), centred(ink, size, size, rng), dark_ink(rng))
    return to_bytes(page)


INKS: tuple[Rgb, ...] = (
    (25, 45, 170),  # blue ballpoint
    (180, 25, 35),  # red
    (25, 120, 50),  # green
    (110, 30, 140),  # purple
    (20, 110, 160),  # teal
)
PAPERS: tuple[Rgb, ...] = ((250, 250, 250), (245, 238, 215), (250, 245, 190), (225, 235, 250))


def coloured_ink(digit: np.ndarray, rng: np.random.Generator) -> bytes:
    """Coloured ink on white, cream, yellow or light blue paper."""
    side = int(rng.integers(150, 280))
    size = int(side * rng.uniform(1.2, 1.5))
    ink = centred(strokes(digit, side), size, size, rng)
    colour = INKS[int(rng.integers(len(INKS)))]
    page = ink_on(paper(size, size, PAPERS[int(rng.integers(len(PAPERS)))]), ink, colour)
    return to_bytes(page, "JPEG", quality=90) if rng.random() < 0.5 else to_bytes(page)


def ruled_paper(digit: np.ndarray, rng: np.random.Generator) -> bytes:
    """Ruled (with a red margin) or squared exercise-book paper, the digit across its lines."""
    side = int(rng.integers(180, 280))
    size = int(side * rng.uniform(1.3, 1.6))
    image = Image.new("RGB", (size, size), tuple(int(c) for c in paper_white(rng)))
    draw = ImageDraw.Draw(image)
    line = (int(rng.integers(130, 180)), int(rng.integers(170, 210)), int(rng.integers(220, 245)))
    gap = int(size * rng.uniform(0.06, 0.12))
    thickness = int(rng.integers(1, 4))
    start = int(rng.integers(0, gap))
    squared = rng.random() < 0.5
    for at in range(start, size, gap):
        draw.line([(0, at), (size, at)], fill=line, width=thickness)
        if squared:
            draw.line([(at, 0), (at, size)], fill=line, width=thickness)
    if not squared:
        margin = int(size * rng.uniform(0.08, 0.2))
        draw.line([(margin, 0), (margin, size)], fill=(220, 90, 90), width=thickness + 1)
    ink = centred(strokes(digit, side), size, size, rng)
    page = ink_on(np.asarray(image, dtype=np.float32), ink, dark_ink(rng))
    return to_bytes(page)


def framed(digit: np.ndarray, rng: np.random.Generator) -> bytes:
    """A box drawn round the digit, from the page's edge to well inside it."""
    side = int(rng.integers(160, 260))
    size = int(side * rng.uniform(1.4, 1.7))
    image = Image.new("RGB", (size, size), tuple(int(c) for c in paper_white(rng)))
    inset = int(size * rng.uniform(0.0, 0.1))
    width = int(rng.integers(2, 8))
    level = int(rng.integers(0, 90))
    ImageDraw.Draw(image).rectangle(
        [inset, inset, size - 1 - inset, size - 1 - inset], outline=(level,) * 3, width=width
    )
    ink = centred(strokes(digit, side), size, size, rng)
    page = ink_on(np.asarray(image, dtype=np.float32), ink, dark_ink(rng))
    return to_bytes(page)


def canvas_transparent(digit: np.ndarray, rng: np.random.Generator) -> bytes:
    """A browser canvas export: dark strokes, transparent background, digit anywhere."""
    size = int(rng.integers(200, 400))
    side = int(size * rng.uniform(0.5, 0.95))
    alpha = random_place(strokes(digit, side), size, size, rng)
    colour = dark_ink(rng)
    rgba = np.zeros((size, size, 4), np.float32)
    rgba[..., :3] = colour
    rgba[..., 3] = alpha * 255.0
    return to_bytes(rgba)


def light_on_black(digit: np.ndarray, rng: np.random.Generator) -> bytes:
    """A drawing app's white (or light) strokes on an opaque black canvas."""
    size = int(rng.integers(200, 400))
    side = int(size * rng.uniform(0.5, 0.95))
    ink = random_place(strokes(digit, side), size, size, rng)
    level = float(rng.uniform(200, 255))
    canvas = ink_on(paper(size, size, (0, 0, 0)), ink, (level, level, level))
    return to_bytes(canvas)


STYLES: dict[str, Style] = {
    "phone-photo": phone_photo,
    "noisy-scan": noisy_scan,
    "blur": blurred,
    "jpeg-q5-15": jpeg_artefacts,
    "small-off-centre": small_off_centre,
    "thick-thin": thick_or_thin,
    "coloured-ink": coloured_ink,
    "ruled-squared": ruled_paper,
    "frame": framed,
    "canvas-transparent": canvas_transparent,
    "light-on-black": light_on_black,
}


def render(
    images: np.ndarray,
    labels: np.ndarray,
    *,
    per_style: int,
    seed: int = 0,
    styles: dict[str, Style] | None = None,
) -> list[Picture]:
    """``per_style`` pictures of each style, digits drawn from the test split at random.

    Each style has its own generator (from ``seed`` and the style's name), so adding a
    style or changing the count of one leaves the others' pictures as they were.
    """
    chosen = STYLES if styles is None else styles
    pictures = []
    for name, style in chosen.items():
        rng = np.random.default_rng([seed, zlib.crc32(name.encode())])
        indices = rng.choice(len(images), size=min(per_style, len(images)), replace=False)
        for index in indices:
            data = style(images[index], rng)
            pictures.append(Picture(name, int(index), int(labels[index]), data))
    return pictures
