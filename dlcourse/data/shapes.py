"""The object classes of the generated scenes and their pixel templates.

Every shape is drawn inside an ``s × s`` window (``s`` = the object's size in pixels) by testing the
window's pixel centres against inequalities in normalised coordinates ``u, v ∈ [-1, 1]``
(``v`` points down). Shapes are axis-aligned and never rotated: a square turned by 45° *is* a
diamond, so rotation would make two classes the same. Templates are cached per ``(class, size)``,
which makes drawing an object a single boolean-indexed assignment.
"""

from __future__ import annotations

import functools

import numpy as np

CLASS_NAMES = ("circle", "square", "triangle", "diamond", "cross", "ring", "star", "crescent")
"""Names of the object classes; class id ``c`` is ``CLASS_NAMES[c]`` (``make_scenes`` uses the first
``num_classes``)."""

MIN_OBJECT_SIZE = 4
"""The smallest object size in pixels: below it the shapes cannot be told apart."""


def _star(points: int = 5, inner: float = 0.45) -> np.ndarray:
    angles = -np.pi / 2 + np.arange(2 * points) * np.pi / points
    radii = np.where(np.arange(2 * points) % 2 == 0, 1.0, inner)
    xy = np.stack([radii * np.cos(angles), radii * np.sin(angles)], axis=1)
    # Stretch to span [-1, 1] on both axes, like every other shape's window.
    lo, hi = xy.min(axis=0), xy.max(axis=0)
    return 2 * (xy - lo) / (hi - lo) - 1


_POLYGONS = {
    "triangle": np.array([[0.0, -1.0], [1.0, 1.0], [-1.0, 1.0]]),
    "diamond": np.array([[0.0, -1.0], [1.0, 0.0], [0.0, 1.0], [-1.0, 0.0]]),
    "star": _star(),
}


def inside_polygon(u: np.ndarray, v: np.ndarray, vertices: np.ndarray) -> np.ndarray:
    """Even-odd rule: a point is inside when a ray to +u crosses an odd number of edges."""
    inside = np.zeros(np.broadcast_shapes(u.shape, v.shape), dtype=bool)
    for (x1, y1), (x2, y2) in zip(vertices, np.roll(vertices, -1, axis=0), strict=True):
        if y1 == y2:
            continue
        crosses = ((y1 > v) != (y2 > v)) & (u < (x2 - x1) * (v - y1) / (y2 - y1) + x1)
        inside ^= crosses
    return inside


def _draw(name: str, u: np.ndarray, v: np.ndarray, size: int) -> np.ndarray:
    # Almost half a pixel (a pixel is 2 / size wide here): lets thin tips (triangle apex,
    # diamond corners) reach the window's edge at every size, without ties on the boundary.
    half = 0.9 / size
    r2 = u * u + v * v
    if name == "circle":
        return r2 <= 1.0 + half
    if name == "square":
        return np.ones(r2.shape, dtype=bool)
    if name == "triangle":
        return np.abs(u) <= (v + 1.0) / 2.0 + half
    if name == "diamond":
        return np.abs(u) + np.abs(v) <= 1.0 + half
    if name == "cross":
        return (np.abs(u) <= 0.34) | (np.abs(v) <= 0.34)
    if name == "ring":
        return (r2 <= 1.0 + half) & (r2 >= 0.3)
    if name == "crescent":
        return (r2 <= 1.0 + half) & ((u - 0.45) ** 2 + v * v > 0.64)
    if name in _POLYGONS:
        return inside_polygon(u, v, _POLYGONS[name])
    raise ValueError(f"Expected a name from CLASS_NAMES {CLASS_NAMES}. Received: name={name!r}")


@functools.lru_cache(maxsize=4096)
def shape_template(class_id: int, size: int) -> np.ndarray:
    """The boolean ``(size, size)`` pixel template of class ``class_id`` (cached, read-only).

    Args:
        class_id: index into ``CLASS_NAMES``.
        size: window side in pixels, at least ``MIN_OBJECT_SIZE``.

    Returns:
        bool array of shape ``(size, size)``, True on the shape's pixels.

    Example:

    >>> print(shape_template(CLASS_NAMES.index("diamond"), 5).astype(int))
    [[0 0 1 0 0]
     [0 1 1 1 0]
     [1 1 1 1 1]
     [0 1 1 1 0]
     [0 0 1 0 0]]
    """
    if not 0 <= class_id < len(CLASS_NAMES):
        raise ValueError(
            f"Expected 0 <= class_id < {len(CLASS_NAMES)}. Received: class_id={class_id!r}"
        )
    if size < MIN_OBJECT_SIZE:
        raise ValueError(f"Expected size >= {MIN_OBJECT_SIZE}. Received: size={size!r}")
    # Exactly symmetric pixel centres (integer numerators), so the shapes are mirror-symmetric.
    centres = (2.0 * np.arange(size) + 1.0 - size) / size
    template = _draw(CLASS_NAMES[class_id], centres[None, :], centres[:, None], size)
    template.setflags(write=False)
    return template
