"""Output sizes of (transposed) convolution and pooling, and TensorFlow's SAME padding split.

Every function works on one spatial axis and plain Python integers, and agrees with Keras 3 for
every padding, stride, dilation and ``output_padding`` it accepts (tested in
``tests/test_reference.py`` against the real layers).
"""

from __future__ import annotations

from dlcourse.validate import positive_int

PADDINGS = ("valid", "same")


def check_padding(padding) -> str:
    """Return ``padding`` in lower case, or raise ValueError if it is not "valid" or "same"."""
    if not isinstance(padding, str) or padding.lower() not in PADDINGS:
        raise ValueError(
            f'Expected `padding` to be "valid" or "same". Received: padding={padding!r}'
        )
    return padding.lower()


def pair(value, name: str, minimum: int = 1) -> tuple[int, int]:
    """``value`` as a pair of integers ``>= minimum`` (an int means the same on both axes)."""
    values = (value, value) if _is_int(value) else tuple(value) if _is_seq(value) else None
    if values is None or len(values) != 2 or not all(_is_int(v) and v >= minimum for v in values):
        rule = "a positive integer" if minimum == 1 else f"an integer >= {minimum}"
        raise ValueError(
            f"Expected `{name}` to be {rule} or a tuple of 2 such integers. Received: {name}={value!r}"
        )
    return int(values[0]), int(values[1])


def conv_output_size(
    size, kernel_size: int, strides: int = 1, padding: str = "valid", dilation: int = 1
):
    """Length of a convolution's (or pooling's) output along one axis, as Keras computes it.

    Args:
        size: input length (``None`` for unknown, which stays ``None``).
        kernel_size: kernel (or pooling window) length.
        strides: step between two windows.
        padding: ``"valid"`` (windows inside the input) or ``"same"`` (``ceil(size / strides)``).
        dilation: spacing between kernel taps (the kernel spans ``(kernel_size - 1) * dilation + 1``).

    Returns:
        The output length (int), or ``None``.

    Example:
        >>> conv_output_size(5, 3, 2, "valid"), conv_output_size(5, 3, 2, "same")
        (2, 3)
    """
    _check_positive(kernel_size=kernel_size, strides=strides, dilation=dilation)
    padding = check_padding(padding)
    if size is None:
        return None
    span = (kernel_size - 1) * dilation + 1
    if padding == "same":
        return -(-size // strides)
    if size < span:
        raise ValueError(
            f"A valid convolution needs the input to be at least as long as the kernel's span "
            f"({span}). Received: size={size}"
        )
    return (size - span) // strides + 1


def same_padding(
    size: int, kernel_size: int, strides: int = 1, dilation: int = 1
) -> tuple[int, int]:
    """TensorFlow's SAME padding along one axis, as ``(before, after)``.

    The total is what makes ``ceil(size / strides)`` windows fit; the smaller half goes before
    (top/left), so an odd total puts the extra row at the bottom (or column at the right).

    Example:
        >>> same_padding(5, 2, 2), same_padding(4, 3, 1), same_padding(6, 3, 3)
        ((0, 1), (1, 1), (0, 0))
    """
    span = (kernel_size - 1) * dilation + 1
    out = conv_output_size(size, kernel_size, strides, "same", dilation)
    total = max((out - 1) * strides + span - size, 0)
    return total // 2, total - total // 2


def conv_transpose_output_size(
    size,
    kernel_size: int,
    strides: int = 1,
    padding: str = "valid",
    output_padding=None,
    dilation: int = 1,
):
    """Length of a transposed convolution's output along one axis, as Keras computes it.

    Without ``output_padding`` a transposed convolution undoes the size change of the matching
    convolution: ``size * strides`` for "same", ``(size - 1) * strides + max(kernel_size, strides)``
    for "valid". ``output_padding`` picks one of the input sizes that convolution could have had.

    Example:
        >>> conv_transpose_output_size(2, 3, 2, "same"), conv_transpose_output_size(2, 3, 2, "valid")
        (4, 5)
        >>> conv_transpose_output_size(2, 3, 2, "same", output_padding=0)
        3
    """
    _check_positive(kernel_size=kernel_size, strides=strides, dilation=dilation)
    padding = check_padding(padding)
    if output_padding is not None and (
        not _is_int(output_padding) or not 0 <= output_padding < strides
    ):
        raise ValueError(
            f"Expected `output_padding` to be None or an integer in [0, strides={strides}). "
            f"Received: output_padding={output_padding!r}"
        )
    if size is None:
        return None
    span = (kernel_size - 1) * dilation + 1
    if padding == "valid":
        extra = max(span, strides) - span if output_padding is None else output_padding
        return (size - 1) * strides + span + extra
    if output_padding is None:
        return size * strides
    return (size - 1) * strides + span % 2 + output_padding


def _check_positive(**named):
    for name, value in named.items():
        positive_int(value, name)


def _is_int(value) -> bool:
    return hasattr(value, "__index__") and not isinstance(value, bool)


def _is_seq(value) -> bool:
    return isinstance(value, list | tuple) or (
        hasattr(value, "__len__") and hasattr(value, "__iter__")
    )
