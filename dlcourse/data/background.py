"""Random backgrounds for the generated scenes: colour blobs, stripes, and per-pixel noise.

Both functions take the scene's own ``np.random.Generator`` and draw a fixed amount from it, so a
scene stays reproducible from its seed.
"""

from __future__ import annotations

import functools

import numpy as np

_KNOTS = 4  # colour blobs: random colours on a KNOTS x KNOTS grid, interpolated over the image
# Standard deviation of the sum of two independent uniform bytes 0..255: sqrt(2 (256^2 - 1) / 12).
_TRIANGULAR_STD = float(np.sqrt(2 * (256**2 - 1) / 12))
_SINGLE_THREAD_PRODUCT = 200_000  # m * n * k of one matrix product, below OpenBLAS's threading


@functools.lru_cache(maxsize=32)
def _interpolation_matrix(length: int, knots: int) -> np.ndarray:
    """(length, knots) weights that linearly interpolate `knots` values over `length` pixels."""
    pos = (np.arange(length) + 0.5) / length * (knots - 1)
    left = np.minimum(np.floor(pos).astype(int), knots - 2)
    frac = pos - left
    weights = np.zeros((length, knots))
    weights[np.arange(length), left] = 1 - frac
    weights[np.arange(length), left + 1] = frac
    return weights


@functools.lru_cache(maxsize=32)
def _arange(length: int) -> np.ndarray:
    """``np.arange(length)`` as float64, read-only (cached: every background needs it)."""
    values = np.arange(length, dtype=np.float64)
    values.setflags(write=False)
    return values


@functools.lru_cache(maxsize=32)
def _column_basis(width: int) -> np.ndarray:
    """(12, width * 3): row ``3 j + c`` spreads knot column ``j`` of channel ``c`` over the row."""
    cols = _interpolation_matrix(width, _KNOTS)
    basis = np.einsum("wj,cd->jcwd", cols, np.eye(3)).reshape(3 * _KNOTS, 3 * width)
    return basis.astype(np.float32)


def paint_background(rng: np.random.Generator, image: np.ndarray, texture: bool) -> None:
    """Fill `image` (H, W, 3) with a random base colour plus, if `texture`, blobs and stripes.

    The whole textured background is a single rank-15 matrix product ``left @ right`` into the
    ``(H, W * 3)`` view of the image (about 4x faster than per-pixel broadcasting):

    - smooth colour blobs and gradients: random values on a 4×4 grid of knots, interpolated
      bilinearly (12 rank-1 terms, one per knot column and channel);
    - stripes of random angle, frequency and tint: ``sin(a_x + b_y)`` expands into
      ``sin a_x cos b_y + cos a_x sin b_y`` (2 terms);
    - the base colour (1 term).
    """
    height, width, _ = image.shape
    u = rng.random(3 + 3 * _KNOTS * _KNOTS + 4 + 3)  # every parameter in one draw
    base = 0.2 + 0.6 * u[:3]
    if not texture:
        image[:] = base
        return
    grid = 0.4 * u[3 : 3 + 3 * _KNOTS * _KNOTS].reshape(_KNOTS, 3 * _KNOTS) - 0.2
    # The scalars as Python floats: the same IEEE double arithmetic as NumPy's, without the
    # per-operation overhead of NumPy scalars (the image is bit-identical; tests/test_data.py).
    amplitude, cycles, angle, phase = u[-7:-3].tolist()
    amplitude, cycles, angle, phase = (
        amplitude * 0.12,
        cycles * 3.5 + 1.5,
        angle * np.pi,
        phase * (2 * np.pi),
    )
    tint = 0.3 + 0.7 * u[-3:]
    k = 2 * np.pi * cycles / max(height, width)
    a = k * np.cos(angle) * _arange(width) + phase
    b = k * np.sin(angle) * _arange(height)
    left = np.empty((height, 3 * _KNOTS + 3), dtype=np.float32)
    left[:, : 3 * _KNOTS] = _interpolation_matrix(height, _KNOTS) @ grid
    left[:, -3:-1] = amplitude * np.stack([np.cos(b), np.sin(b)], axis=1)
    left[:, -1] = 1.0
    right = np.empty((3 * _KNOTS + 3, 3 * width), dtype=np.float32)
    right[: 3 * _KNOTS] = _column_basis(width)
    right[-3:].reshape(3, width, 3)[:2] = np.multiply.outer(np.stack([np.sin(a), np.cos(a)]), tint)
    right[-1].reshape(width, 3)[:] = base
    # In row blocks small enough that OpenBLAS stays on one thread (it threads a product once
    # m * n * k reaches 65536 * 4): threads cost more than they save at this size, and on a busy
    # machine they are much slower (docs/MEASUREMENTS.md).
    flat = image.reshape(height, 3 * width)
    step = max(1, _SINGLE_THREAD_PRODUCT // right.size)
    for top in range(0, height, step):
        np.matmul(left[top : top + step], right, out=flat[top : top + step])


def add_noise(rng: np.random.Generator, image: np.ndarray, std: float) -> None:
    """Zero-mean per-pixel noise of standard deviation `std`, bell-shaped (triangular).

    Each value is the sum of two uniform random bytes, taken straight from the bit generator's
    raw 64-bit output (little-endian byte order on every platform). That is several times cheaper
    than Gaussian samples (docs/MEASUREMENTS.md), and at this scale neither the eye nor a model
    tells the two apart.
    """
    size = image.size
    words = rng.bit_generator.random_raw((2 * size + 7) // 8)
    raw = words.astype("<u8", copy=False).view(np.uint8)
    # The sum and the centring in int16 are exact, as they were in float32; one conversion.
    total = np.add(raw[:size], raw[size : 2 * size], dtype=np.int16)
    total -= 255
    noise = np.multiply(total, np.float32(std / _TRIANGULAR_STD), dtype=np.float32)
    image += noise.reshape(image.shape)
