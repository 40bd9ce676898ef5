"""Turning an arbitrary picture of a digit into an MNIST-style 28x28 image.

MNIST digits are white on black, normalised to fit a 20x20 box (keeping their aspect
ratio) and centred by centre of mass in a 28x28 field. :func:`to_mnist` does the same
to an uploaded PNG, JPEG, BMP or GIF (first frame) of any size in mode L, RGB, RGBA or
P: grayscale, find the ink against the paper and the digit among the ink
(:mod:`mnist_core.locate`), crop to it, bring its strokes to MNIST's width, fit, centre.
"""

from __future__ import annotations

import io
import warnings

import numpy as np
from PIL import Image, ImageFilter

from .errors import InputError, PayloadTooLarge
from .locate import digit_mask, ink_level, levels, threshold
from .morphology import running

FORMATS = ("PNG", "JPEG", "BMP", "GIF")
SIDE = 28
BOX = 20
INK_FRACTION = 0.1
"""Pixels brighter than this fraction of the brightest count as the digit when cropping."""
WORK_SIDE = 640
"""Larger pictures are first reduced to this longer side: plenty for a 20x20 digit."""
MIN_CONTRAST = 8.0
"""A picture whose levels span less than this (of 255) holds no digit."""
STROKE_TARGET = 2.3
"""Stroke width in the 20x20 box strokes are brought to: MNIST's median is 2.0 (by
:func:`stroke_width`), a little more read best on the thick/thin style."""
STROKE_RANGE = (1.6, 2.6)
"""Strokes outside this width (in box pixels) are thickened or thinned to the target."""
MORPH_SIDE = 80
"""Strokes are resized at no less than this many pixels a side, for fine steps."""


def to_mnist(data: bytes, *, max_pixels: int, index: int = 0) -> np.ndarray:
    """Image file bytes -> ``uint8 [28, 28]``, white digit on black, MNIST-style."""
    gray = grayscale(decode(data, max_pixels=max_pixels, index=index))
    return fit_and_centre(foreground(gray), index=index)


def decode(data: bytes, *, max_pixels: int, index: int = 0) -> Image.Image:
    """The first frame of an image file, refusing bombs before decoding any pixels."""
    with warnings.catch_warnings():
        # Our own, lower limit is checked below; Pillow's warning would only repeat it.
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        try:
            image = Image.open(io.BytesIO(data), formats=FORMATS)
        except Image.DecompressionBombError:
            raise _too_many_pixels(index, None, max_pixels) from None
        except Exception:  # Pillow raises many kinds of error on malformed files
            raise InputError(
                f"image {index} is not a readable PNG, JPEG, BMP or GIF file",
                reason="invalid_image",
                index=index,
            ) from None
    width, height = image.size
    if width * height > max_pixels:
        raise _too_many_pixels(index, width * height, max_pixels)
    try:
        image.seek(0)
        image.load()
    except Exception:  # as above: any failure to decode is the file's fault
        raise InputError(
            f"image {index} is truncated or corrupt", reason="invalid_image", index=index
        ) from None
    return image


def grayscale(image: Image.Image) -> np.ndarray:
    """Luminance as float32 0..255. Transparent areas become the colour the ink is not."""
    if image.mode == "P" or image.mode == "PA":
        image = image.convert("RGBA")
    if image.mode in ("RGBA", "LA") or "transparency" in image.info:
        rgba = np.asarray(image.convert("RGBA"), dtype=np.float32)
        alpha = rgba[..., 3] / 255.0
        luminance = rgba[..., :3] @ np.array([0.299, 0.587, 0.114], dtype=np.float32)
        opaque = alpha > 0.5
        ink_is_dark = bool(opaque.any()) and float(luminance[opaque].mean()) < 128.0
        background = 255.0 if ink_is_dark else 0.0
        blended: np.ndarray = luminance * alpha + background * (1.0 - alpha)
        return blended
    return np.asarray(image.convert("L"), dtype=np.float32)


def foreground(gray: np.ndarray) -> np.ndarray:
    """The digit as bright-on-dark, everything else at 0, the strokes' core at 255."""
    gray = reduced(gray)
    if float(gray.max() - gray.min()) < MIN_CONTRAST:
        return np.zeros_like(gray)
    ink = ink_level(gray)
    coarse = levels(ink)
    cut = threshold(coarse)
    mask = digit_mask(coarse, cut)
    if mask is None or not mask.any():
        return np.zeros_like(gray)
    # Keep the soft edge just outside the mask, and stretch so the strokes' core is full
    # strength and the paper nothing, as in MNIST, however faint or shadowed the ink.
    near = np.asarray(
        Image.fromarray(mask.astype(np.uint8), mode="L").filter(ImageFilter.MaxFilter(3))
    )
    floor = cut / 510.0
    core = float(np.percentile(ink[mask], 90))
    scaled = np.clip((ink - floor) / max(core - floor, 1e-6), 0.0, 1.0)
    result: np.ndarray = (scaled * near * 255.0).astype(np.float32)
    return result


def reduced(gray: np.ndarray) -> np.ndarray:
    """``gray`` with its longer side at most :data:`WORK_SIDE` (area-averaged)."""
    height, width = gray.shape
    factor = max(height, width) / WORK_SIDE
    if factor <= 1:
        return gray
    size = (max(1, round(width / factor)), max(1, round(height / factor)))
    image = Image.fromarray(gray.astype(np.float32), mode="F")
    return np.asarray(image.resize(size, Image.Resampling.BOX), dtype=np.float32)


def stroke_width(ink: np.ndarray) -> float:
    """Mean stroke width in pixels: twice the area over the outline's length."""
    mask = np.pad(ink > 127.5, 1)
    area = int(mask.sum())
    outline = int((mask[:, 1:] != mask[:, :-1]).sum() + (mask[1:] != mask[:-1]).sum())
    return 2.0 * area / outline if outline else 0.0


def normalise_strokes(crop: np.ndarray) -> np.ndarray:
    """Thicken or thin strokes far from MNIST's width (a marker, a fine pen)."""
    if max(crop.shape) < MORPH_SIDE:
        factor = MORPH_SIDE / max(crop.shape)
        size = (max(1, round(crop.shape[1] * factor)), max(1, round(crop.shape[0] * factor)))
        crop = np.asarray(
            Image.fromarray(crop.astype(np.float32), mode="F").resize(
                size, Image.Resampling.BILINEAR
            ),
            dtype=np.float32,
        )
    scale = BOX / max(crop.shape)
    width = stroke_width(crop) * scale
    low, high = STROKE_RANGE
    if low <= width <= high or width == 0:
        return crop
    radius = round(abs(STROKE_TARGET - width) / scale / 2)
    if radius < 1:
        return crop
    grow = width < STROKE_TARGET
    padded = np.pad(crop, radius) if grow else crop
    return running(padded, 2 * radius + 1, grow=grow)


def fit_and_centre(ink: np.ndarray, *, index: int = 0) -> np.ndarray:
    """Crop to the digit, even its strokes, fit it in 20x20, centre its mass in 28x28."""
    rows, cols = np.nonzero(ink > INK_FRACTION * 255.0)
    if rows.size == 0:
        raise InputError(
            f"image {index} is blank: no digit found", reason="blank_image", index=index
        )
    original = ink[rows.min() : rows.max() + 1, cols.min() : cols.max() + 1]
    crop = normalise_strokes(original)
    rows, cols = np.nonzero(crop > INK_FRACTION * 255.0)
    if rows.size == 0:  # thinned away: a speck, better sent as it was
        crop = original
    else:
        crop = crop[rows.min() : rows.max() + 1, cols.min() : cols.max() + 1]
    height, width = crop.shape
    scale = BOX / max(height, width)
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    resized = Image.fromarray(crop.astype(np.float32), mode="F").resize(
        size, Image.Resampling.LANCZOS
    )
    digit = np.clip(np.asarray(resized, dtype=np.float32), 0.0, 255.0)
    canvas = np.zeros((SIDE, SIDE), dtype=np.float32)
    total = float(digit.sum())
    ys, xs = np.indices(digit.shape)
    centre_y = float((ys * digit).sum()) / total if total else digit.shape[0] / 2
    centre_x = float((xs * digit).sum()) / total if total else digit.shape[1] / 2
    # MNIST puts the centre of mass at pixel (14, 14), measured in pixel indices.
    top = round(SIDE / 2 - centre_y)
    left = round(SIDE / 2 - centre_x)
    _paste(canvas, digit, top, left)
    return np.rint(canvas).astype(np.uint8)


def _paste(canvas: np.ndarray, patch: np.ndarray, top: int, left: int) -> None:
    """Paste ``patch`` at (top, left), clipping whatever falls outside the canvas."""
    y0, x0 = max(top, 0), max(left, 0)
    y1 = min(top + patch.shape[0], canvas.shape[0])
    x1 = min(left + patch.shape[1], canvas.shape[1])
    if y1 > y0 and x1 > x0:
        canvas[y0:y1, x0:x1] = patch[y0 - top : y1 - top, x0 - left : x1 - left]


def _too_many_pixels(index: int, pixels: int | None, max_pixels: int) -> PayloadTooLarge:
    size = f"{pixels} pixels" if pixels is not None else "too many pixels"
    return PayloadTooLarge(
        f"image {index} has {size}; the limit is {max_pixels}",
        reason="too_many_pixels",
        index=index,
        limit=max_pixels,
    )
