"""Generated scenes for tests, examples and benchmarks (spec algorithms §17(g)): coloured
rectangles (class 0) and ellipses (class 1) on a noise background, one to `most` per image,
with their known boxes. Objects may overlap a little but never hide each other's box. Pillow
draws them; deterministic per seed."""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

from opensage.algorithms.image_classification.synthetic import encode

__all__ = ["encode", "scene", "scenes"]


def scene(
    size: int, rng: np.random.Generator, classes: int = 2, most: int = 2
) -> tuple[npt.NDArray[np.uint8], npt.NDArray[np.float32]]:
    """One RGB scene (size x size x 3) and its objects (n, 5): class, xmin, ymin, xmax, ymax
    normalised to [0, 1]."""
    from PIL import Image, ImageDraw

    grey = rng.integers(60, 196, (size // 4 + 1, size // 4 + 1, 1))
    noise = np.clip(grey + rng.integers(-25, 26, (size // 4 + 1, size // 4 + 1, 3)), 0, 255)
    background = Image.fromarray(noise.astype(np.uint8)).resize(
        (size, size), Image.Resampling.BILINEAR
    )
    draw = ImageDraw.Draw(background)
    objects: list[list[float]] = []
    wanted = int(rng.integers(1, most + 1))
    for _ in range(20 * wanted):
        if len(objects) == wanted:
            break
        w, h = rng.uniform(0.25, 0.55, 2)
        x0, y0 = rng.uniform(0, 1 - w), rng.uniform(0, 1 - h)
        box = np.array([x0, y0, x0 + w, y0 + h])
        if any(_overlap(box, np.asarray(o[1:])) > 0.1 for o in objects):
            continue
        cls = int(rng.integers(0, classes))
        colour = tuple(int(v) for v in rng.integers(0, 256, 3))
        while max(colour) - min(colour) < 120:
            colour = tuple(int(v) for v in rng.integers(0, 256, 3))
        pixels = tuple(float(v) * size for v in box)
        if cls == 0:
            draw.rectangle((pixels[0], pixels[1], pixels[2] - 1, pixels[3] - 1), fill=colour)
        else:
            draw.ellipse((pixels[0], pixels[1], pixels[2] - 1, pixels[3] - 1), fill=colour)
        objects.append([float(cls), *box.tolist()])
    image = np.asarray(background, dtype=np.int16) + rng.integers(-12, 13, (size, size, 3))
    return np.clip(image, 0, 255).astype(np.uint8), np.asarray(objects, dtype=np.float32)


def _overlap(a: npt.NDArray[Any], b: npt.NDArray[Any]) -> float:
    w = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    h = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = w * h
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return float(inter / union)


def scenes(
    count: int, size: int = 64, seed: int = 0, classes: int = 2, most: int = 2
) -> tuple[npt.NDArray[np.uint8], list[npt.NDArray[np.float32]]]:
    """`count` scenes (count x size x size x 3) and each one's objects."""
    rng = np.random.default_rng(seed)
    made = [scene(size, rng, classes, most) for _ in range(count)]
    return np.stack([m[0] for m in made]), [m[1] for m in made]
