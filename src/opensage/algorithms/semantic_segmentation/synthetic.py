"""Generated scenes for tests, examples and benchmarks: shapes on a noisy background, with
their masks known. Class 0 is the background; class k (1, 2, ...) is drawn as one shape kind
(circle, square, triangle, repeating) in its own colour family, at a random size and place,
one or two objects per scene. Deterministic per seed; Pillow draws them."""

from __future__ import annotations

import io
from typing import Any, Final

import numpy as np
import numpy.typing as npt

PALETTE: Final = ((200, 40, 40), (40, 60, 210), (230, 200, 30), (40, 190, 60), (190, 60, 200))


def scene(
    size: int, classes: int, rng: np.random.Generator
) -> tuple[npt.NDArray[np.uint8], npt.NDArray[np.uint8]]:
    """One RGB image (size x size x 3) and its mask (size x size, class ids 0..classes-1)."""
    from PIL import Image, ImageDraw

    grey = int(rng.integers(90, 160))
    image = Image.new("RGB", (size, size), (grey, grey, grey))
    mask = Image.new("L", (size, size), 0)
    paint, label = ImageDraw.Draw(image), ImageDraw.Draw(mask)
    for _ in range(int(rng.integers(1, 3))):
        k = int(rng.integers(1, classes))
        base = np.asarray(PALETTE[(k - 1) % len(PALETTE)])
        colour = tuple(int(v) for v in np.clip(base + rng.integers(-30, 31, 3), 0, 255))
        radius = rng.uniform(0.15, 0.3) * size
        cx, cy = (rng.uniform(radius, size - radius) for _ in range(2))
        kind = (k - 1) % 3
        if kind == 0:
            box = (cx - radius, cy - radius, cx + radius, cy + radius)
            paint.ellipse(box, fill=colour)
            label.ellipse(box, fill=k)
        elif kind == 1:
            half = radius * 0.85
            box = (cx - half, cy - half, cx + half, cy + half)
            paint.rectangle(box, fill=colour)
            label.rectangle(box, fill=k)
        else:
            points = [
                (cx + radius * np.cos(a), cy + radius * np.sin(a))
                for a in (-np.pi / 2, np.pi / 6, 5 * np.pi / 6)
            ]
            paint.polygon(points, fill=colour)
            label.polygon(points, fill=k)
    pixels = np.asarray(image, dtype=np.int16) + rng.integers(-15, 16, (size, size, 3))
    return np.clip(pixels, 0, 255).astype(np.uint8), np.asarray(mask, dtype=np.uint8)


def scenes(
    count: int, size: int = 32, classes: int = 3, seed: int = 0
) -> tuple[npt.NDArray[np.uint8], npt.NDArray[np.uint8]]:
    """`count` images (count x size x size x 3) and masks (count x size x size)."""
    rng = np.random.default_rng(seed)
    pairs = [scene(size, classes, rng) for _ in range(count)]
    return np.stack([p[0] for p in pairs]), np.stack([p[1] for p in pairs])


def encode_image(image: npt.NDArray[Any], kind: str = "JPEG") -> bytes:
    """An RGB image as JPEG (or PNG) bytes."""
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(np.asarray(image, dtype=np.uint8)).save(buffer, format=kind, quality=95)
    return buffer.getvalue()


def encode_mask(mask: npt.NDArray[Any]) -> bytes:
    """A class-id mask as a single-channel (8-bit grey) PNG."""
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(np.asarray(mask, dtype=np.uint8), mode="L").save(buffer, format="PNG")
    return buffer.getvalue()
