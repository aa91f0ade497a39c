"""Generated shape images (circle, square, triangle) for tests, examples and benchmarks: each
a random size, position and bright colour on a random dark background, with pixel noise, so
the class is the shape alone. Deterministic per seed; Pillow draws them."""

from __future__ import annotations

import io
from typing import Any, Final

import numpy as np
import numpy.typing as npt

SHAPES: Final = ("circle", "square", "triangle")


def shape_image(kind: int, size: int, rng: np.random.Generator) -> npt.NDArray[np.uint8]:
    """One RGB image (size x size x 3, uint8) of shape `kind` (0 circle, 1 square, 2 triangle)."""
    from PIL import Image, ImageDraw

    background = tuple(int(v) for v in rng.integers(0, 110, 3))
    colour = tuple(int(v) for v in rng.integers(140, 256, 3))
    image = Image.new("RGB", (size, size), background)
    draw = ImageDraw.Draw(image)
    radius = rng.uniform(0.26, 0.45) * size
    cx, cy = (rng.uniform(radius, size - radius) for _ in range(2))
    if kind == 0:
        draw.ellipse((cx - radius, cy - radius, cx + radius, cy + radius), fill=colour)
    elif kind == 1:
        half = radius * 0.85
        draw.rectangle((cx - half, cy - half, cx + half, cy + half), fill=colour)
    else:
        points = [
            (cx + radius * np.cos(a), cy + radius * np.sin(a))
            for a in (-np.pi / 2, np.pi / 6, 5 * np.pi / 6)
        ]
        draw.polygon(points, fill=colour)
    pixels = np.asarray(image, dtype=np.int16) + rng.integers(-20, 21, (size, size, 3))
    result: npt.NDArray[np.uint8] = np.clip(pixels, 0, 255).astype(np.uint8)
    return result


def shapes(
    count: int, size: int = 32, seed: int = 0, classes: int = 3
) -> tuple[npt.NDArray[np.uint8], npt.NDArray[np.int64]]:
    """`count` images (count x size x size x 3) with balanced labels 0..classes-1."""
    rng = np.random.default_rng(seed)
    labels = np.arange(count) % classes
    rng.shuffle(labels)
    images = np.stack([shape_image(int(k), size, rng) for k in labels])
    return images, labels.astype(np.int64)


def encode(image: npt.NDArray[Any], kind: str = "PNG") -> bytes:
    """One image (H x W x 3 uint8) as PNG or JPEG bytes."""
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(np.asarray(image, dtype=np.uint8)).save(buffer, format=kind, quality=95)
    return buffer.getvalue()
