"""Max pooling that remembers where each maximum was, and max unpooling that puts values back there.

Keras has no max-unpooling layer. These two are used as a pair: ``MaxPoolingWithArgmax2D``
returns the pooled values *and* the switches, ``MaxUnpooling2D`` takes both (and, for odd sizes,
the tensor that was pooled) and writes every value back at its switch, zeros elsewhere.

A switch is the flat index, within one sample, of the element a maximum came from:
``(y * W + x) * C + c``, exactly what ``tf.nn.max_pool_with_argmax(include_batch_in_index=False)``
returns. So switches can be compared with TensorFlow's, with ``dlcourse.reference``, and stay
valid whatever the batch size is.

Implementation (``keras.ops`` only, so it also compiles with XLA, which Keras switches on by
default on a GPU and which cannot compile ``tf.nn.max_pool_with_argmax``): the input is viewed as
blocks ``(N, Hb, sh, Wb, sw, C)`` so that the candidates for one window position are a plain
slice, and a running maximum over the window positions moves only to a strictly larger value,
recording where it moved (TensorFlow's rule: the first maximum wins a tie). Unpooling selects,
for every window position, the values whose switch points there, and interleaves them back: no
scatter, no transpose. The gradient of the pooled values is defined as unpooling the upstream
gradient with the same switches, so it reaches exactly one input per window, the one the switch
names (``ops.max_pool``'s own gradient may split ties or pick another maximum, depending on the
device). ``benchmarks/bench_layers.py`` compares its speed with the TensorFlow-native composition.
"""

from __future__ import annotations

import keras
import numpy as np
from keras import ops

from dlcourse.layers._geometry import (
    flat_index_base,
    is_static,
    maximum0,
    pad_before,
    pooled_size,
    spatial_dims,
    unpooled_size,
)
from dlcourse.reference.sizes import check_padding, pair

INDEX_DTYPES = ("int32", "int64")


def _window_positions(pool_size):
    return [(a, b) for a in range(pool_size[0]) for b in range(pool_size[1])]


def _pad_or_crop(x, before, total, axis, value=0.0):
    """Along spatial ``axis`` (1 or 2): pad ``before`` in front, then pad or crop to ``total``."""
    size = ops.shape(x)[axis]
    after = total - before - size
    if is_static(before, after) and before == 0 and after == 0:
        return x
    widths = [[0, 0], [0, 0], [0, 0], [0, 0]]
    widths[axis] = [before, maximum0(after)]
    if not (is_static(before, after) and before == 0 and after <= 0):
        x = ops.pad(x, widths, constant_values=value)
    if is_static(after) and after >= 0:
        return x
    return x[:, :total] if axis == 1 else x[:, :, :total]


def _geometry(h, w, ho, wo, pool_size, strides, padding):
    """Padding before the input and the block grid (Hb, Wb) that holds every window."""
    pads = (
        pad_before(h, ho, pool_size[0], strides[0], padding),
        pad_before(w, wo, pool_size[1], strides[1], padding),
    )
    # A window spans ceil(pool / stride) blocks; Hb blocks of `stride` rows cover all windows.
    extra = ((pool_size[0] - 1) // strides[0], (pool_size[1] - 1) // strides[1])
    return pads, extra, (ho + extra[0], wo + extra[1])


def _first_valid_masks(ho, wo, pads, pool_size, strides):
    """``first(a, b)``: (Ho, Wo, 1) mask of the windows whose first position inside the image is
    (a, b), or None when every window starts inside (no padding before the input)."""
    if is_static(*pads) and pads == (0, 0):
        return None
    # Window i starts at row i * stride - pad; its first row inside the image is max(0, pad - i * s).
    rows = ops.maximum(ops.cast(pads[0], "int32") - ops.arange(ho, dtype="int32") * strides[0], 0)
    cols = ops.maximum(ops.cast(pads[1], "int32") - ops.arange(wo, dtype="int32") * strides[1], 0)

    def first(a, b):
        mask = ops.logical_and(ops.equal(rows, a)[:, None], ops.equal(cols, b)[None, :])
        return mask[:, :, None]

    return first


def max_pool_with_switches(x, pool_size, strides, padding, index_dtype="int32"):
    """``(pooled, switches)`` of a channels-last 4-D tensor (the layer's computation).

    ``pool_size`` and ``strides`` are pairs, ``padding`` is "valid" or "same".
    """
    h, w, c = spatial_dims(x)
    ho = pooled_size(h, pool_size[0], strides[0], padding)
    wo = pooled_size(w, pool_size[1], strides[1], padding)

    @ops.custom_gradient
    def pool(x):
        pads, extra, blocks = _geometry(h, w, ho, wo, pool_size, strides, padding)
        inf = float("-inf")  # padding is never strictly larger than anything
        padded = _pad_or_crop(x, pads[0], blocks[0] * strides[0], axis=1, value=inf)
        padded = _pad_or_crop(padded, pads[1], blocks[1] * strides[1], axis=2, value=inf)
        grid = ops.reshape(padded, (-1, blocks[0], strides[0], blocks[1], strides[1], c))
        w_c = ops.cast(w, index_dtype) * ops.cast(c, index_dtype)
        c_ = ops.cast(c, index_dtype)
        first = _first_valid_masks(ho, wo, pads, pool_size, strides)

        # TensorFlow's rule: start from the window's first element inside the image and move
        # only to a strictly larger one, so the first maximum wins a tie (and a NaN only wins
        # if it comes first, as in tf.nn.max_pool_with_argmax).
        best = offsets = None
        for a, b in _window_positions(pool_size):
            (qa, ra), (qb, rb) = divmod(a, strides[0]), divmod(b, strides[1])
            candidate = grid[:, :, ra, :, rb, :]
            if extra != (0, 0):  # overlapping windows: position (a, b) of window i is block i + qa
                candidate = candidate[:, qa : qa + ho, qb : qb + wo, :]
            offset = ops.cast(a, index_dtype) * w_c + ops.cast(b, index_dtype) * c_
            if best is None:
                best, offsets = candidate, ops.zeros_like(candidate, dtype=index_dtype)
                continue
            better = ops.greater(candidate, best)
            if first is not None:  # windows cut by the top/left padding start further in
                better = ops.logical_or(better, first(a, b))
            best = ops.where(better, candidate, best)
            offsets = ops.where(better, offset, offsets)
        pooled = best
        base = flat_index_base(ho, wo, h, w, c, pool_size, strides, pads, index_dtype)
        switches = offsets + base

        def grad(*args, upstream=None):
            upstream = args if upstream is None else upstream
            g = upstream[0] if isinstance(upstream, list | tuple) else upstream
            if g is None:
                return ops.zeros_like(x)
            return max_unpool(g, switches, (h, w), pool_size, strides, padding)

        return (pooled, switches), grad

    pooled, switches = pool(x)
    return pooled, switches


def max_unpool(values, switches, output_size, pool_size, strides, padding):
    """Write ``values`` (N, Ho, Wo, C) back at their ``switches``: (N, H, W, C), zeros elsewhere.

    ``output_size`` is ``(H, W)`` (ints or scalar tensors). Values of overlapping windows that
    share a switch are summed (the transpose of pooling, like ``tf.scatter_nd``).
    """
    h, w = output_size
    ho, wo, c = spatial_dims(values)
    pads, extra, blocks = _geometry(h, w, ho, wo, pool_size, strides, padding)
    dtype = keras.backend.standardize_dtype(switches.dtype)
    offsets = switches - flat_index_base(ho, wo, h, w, c, pool_size, strides, pads, dtype)
    w_c = ops.cast(w, dtype) * ops.cast(c, dtype)
    zero = ops.zeros((), values.dtype)
    slots = {}  # (row, column) inside a block -> values that land there, (N, Hb, Wb, C)
    for a, b in _window_positions(pool_size):
        target = ops.cast(a, dtype) * w_c + ops.cast(b, dtype) * ops.cast(c, dtype)
        part = ops.where(ops.equal(offsets, target), values, zero)
        (qa, ra), (qb, rb) = divmod(a, strides[0]), divmod(b, strides[1])
        if extra != (0, 0):
            part = ops.pad(part, [[0, 0], [qa, extra[0] - qa], [qb, extra[1] - qb], [0, 0]])
        slots[ra, rb] = part if (ra, rb) not in slots else slots[ra, rb] + part
    empty = None
    rows = []
    for ra in range(strides[0]):
        row = []
        for rb in range(strides[1]):
            if (ra, rb) not in slots:  # strides larger than the window: gaps stay zero
                empty = ops.zeros_like(slots[0, 0]) if empty is None else empty
            row.append(slots.get((ra, rb), empty))
        rows.append(ops.stack(row, axis=3))
    grid = ops.stack(rows, axis=2)  # (N, Hb, sh, Wb, sw, C)
    full = ops.reshape(grid, (-1, blocks[0] * strides[0], blocks[1] * strides[1], c))
    # `full` starts `pads` before the output; cut that, and pad or crop to (H, W).
    full = _pad_or_crop(full, 0, pads[0] + h, axis=1)
    full = _pad_or_crop(full, 0, pads[1] + w, axis=2)
    if not (is_static(*pads) and pads == (0, 0)):
        full = full[:, pads[0] :, pads[1] :, :]
    return full


def check_switches(switches, output_size, channels, pool_size, strides, padding):
    """Raise ValueError unless every switch points into its own window and channel (NumPy)."""
    s = np.asarray(switches).astype(np.int64)
    h, w = (int(v) for v in output_size)
    _, ho, wo, c = s.shape
    if c != channels:
        raise ValueError(f"Expected switches with {channels} channels. Received shape {s.shape}")
    if ho != pooled_size(h, pool_size[0], strides[0], padding) or wo != pooled_size(
        w, pool_size[1], strides[1], padding
    ):
        raise ValueError(
            f"Pooling a {h}×{w} tensor (pool_size={pool_size}, strides={strides}, "
            f"padding={padding!r}) does not give the {ho}×{wo} grid of the values to unpool."
        )
    y, rest = np.divmod(s, w * c)
    x, channel = np.divmod(rest, c)
    y0 = np.arange(ho)[:, None, None] * strides[0] - pad_before(
        h, ho, pool_size[0], strides[0], padding
    )
    x0 = np.arange(wo)[None, :, None] * strides[1] - pad_before(
        w, wo, pool_size[1], strides[1], padding
    )
    inside = (
        (s >= 0)
        & (s < h * w * c)
        & (channel == np.arange(c))
        & (y >= y0)
        & (y < y0 + pool_size[0])
        & (x >= x0)
        & (x < x0 + pool_size[1])
    )
    if not inside.all():
        raise ValueError(
            f"{int((~inside).sum())} of {s.size} switches do not point into their own pooling "
            f"window of a {h}×{w}×{c} tensor, so they do not belong to the tensor being unpooled. "
            "Use the switches of the MaxPoolingWithArgmax2D (same pool_size, strides, padding) "
            "whose output you unpool, indices within one sample (include_batch_in_index=False), "
            "and pass the pooled layer's input as third input `like` when its size is odd."
        )


def _executing_eagerly(tensor) -> bool:
    """True when tensor values are available now (not inside a traced or compiled function)."""
    backend = keras.backend.backend()
    if backend == "tensorflow":
        import tensorflow as tf

        return tf.executing_eagerly()
    if backend == "jax":
        import jax

        return not isinstance(tensor, jax.core.Tracer)
    return True


@keras.saving.register_keras_serializable(package="dlcourse")
class MaxPoolingWithArgmax2D(keras.layers.Layer):
    """Max pooling that also returns the switches: where, in each window, the maximum was.

    Like ``keras.layers.MaxPooling2D`` (same windows, same TensorFlow SAME padding), but the call
    returns ``(pooled, switches)``. A switch is the flat index ``(y * W + x) * C + c`` of the
    maximum within its sample, as ``tf.nn.max_pool_with_argmax(include_batch_in_index=False)``
    computes it; a tie goes to the first position in row-major order, so every window has exactly
    one switch. The gradient reaches that one position. Feed both outputs to ``MaxUnpooling2D``.

    Args:
        pool_size: int or pair, the window.
        strides: int or pair; default ``pool_size``.
        padding: "valid" or "same".
        index_dtype: dtype of the switches, "int32" (default) or "int64".
        **kwargs: base layer arguments (``name``, ``dtype``, ...).

    Input shape:
        4-D tensor ``(batch, height, width, channels)``; height and width may be unknown.

    Output shape:
        ``(pooled, switches)``, both ``(batch, pooled_height, pooled_width, channels)``.

    Example:
        >>> import numpy as np
        >>> x = np.array([[1, 2, 5, 3], [4, 0, 1, 6], [7, 8, 2, 2], [3, 9, 0, 1]], "float32")
        >>> pooled, switches = MaxPoolingWithArgmax2D(2)(x.reshape(1, 4, 4, 1))
        >>> pooled.shape, switches.shape
        (TensorShape([1, 2, 2, 1]), TensorShape([1, 2, 2, 1]))
        >>> np.asarray(switches)[0, :, :, 0]
        array([[ 4,  7],
               [13, 10]], dtype=int32)

    References:
        Zeiler & Fergus, "Visualizing and Understanding Convolutional Networks" (2014) (switches);
        Badrinarayanan et al., "SegNet" (2017).
    """

    def __init__(self, pool_size=2, strides=None, padding="valid", index_dtype="int32", **kwargs):
        super().__init__(**kwargs)
        self.pool_size = pair(pool_size, "pool_size")
        self.strides = self.pool_size if strides is None else pair(strides, "strides")
        self.padding = check_padding(padding)
        if index_dtype not in INDEX_DTYPES:
            raise ValueError(
                f'Expected `index_dtype` "int32" or "int64". Received: index_dtype={index_dtype!r}'
            )
        self.index_dtype = index_dtype
        self.input_spec = keras.layers.InputSpec(ndim=4)

    def call(self, inputs):
        x = ops.cast(inputs, self.compute_dtype)
        return max_pool_with_switches(
            x, self.pool_size, self.strides, self.padding, self.index_dtype
        )

    def compute_output_shape(self, input_shape):
        _check_rank(input_shape, "inputs", self.name)
        n, h, w, c = input_shape
        out = (
            n,
            None
            if h is None
            else _valid_pooled_size(h, self.pool_size[0], self.strides[0], self.padding),
            None
            if w is None
            else _valid_pooled_size(w, self.pool_size[1], self.strides[1], self.padding),
            c,
        )
        return out, out

    def compute_output_spec(self, inputs):
        shape, _ = self.compute_output_shape(tuple(inputs.shape))
        return (
            keras.KerasTensor(shape, dtype=self.compute_dtype),
            keras.KerasTensor(shape, dtype=self.index_dtype),
        )

    def get_config(self):
        return {
            **super().get_config(),
            "pool_size": self.pool_size,
            "strides": self.strides,
            "padding": self.padding,
            "index_dtype": self.index_dtype,
        }


@keras.saving.register_keras_serializable(package="dlcourse")
class MaxUnpooling2D(keras.layers.Layer):
    """Max unpooling: each value goes back to where its switch says the maximum was; zeros elsewhere.

    Called on ``[pooled, switches]`` from a ``MaxPoolingWithArgmax2D`` with the same
    ``pool_size``, ``strides`` and ``padding``, or on ``[pooled, switches, like]`` where ``like``
    is any tensor with the size to restore (usually the input of that pooling layer). Without
    ``like`` the output has the size a transposed convolution would give (``size * strides`` for
    "same", ``(size - 1) * strides + max(pool_size, strides)`` for "valid"); an odd input size
    cannot be recovered from the pooled one, so pass ``like`` then (it also works when height
    and width are unknown). Values whose switches coincide (overlapping windows) are summed.

    Mismatched inputs raise ValueError: switches of another shape than the values, a ``like``
    whose size does not pool to the values' size or whose channels differ, non-integer switches,
    and (when values are available, i.e. eagerly) switches outside their own window or channel.

    Args:
        pool_size: int or pair, the window of the pooling being undone.
        strides: int or pair; default ``pool_size``.
        padding: "valid" or "same", as in the pooling.
        **kwargs: base layer arguments (``name``, ``dtype``, ...).

    Input shape:
        A list ``[pooled, switches]`` or ``[pooled, switches, like]``: ``pooled`` and ``switches``
        (integer) ``(batch, pooled_height, pooled_width, channels)``, ``like``
        ``(batch, height, width, channels)``.

    Output shape:
        ``(batch, height, width, channels)``, the dtype of ``pooled``.

    Example:
        >>> import numpy as np
        >>> x = np.array([[1, 2, 5, 3], [4, 0, 1, 6], [7, 8, 2, 2], [3, 9, 0, 1]], "float32")
        >>> _, switches = MaxPoolingWithArgmax2D(2)(x.reshape(1, 4, 4, 1))
        >>> values = np.array([[10, 20], [30, 40]], "float32").reshape(1, 2, 2, 1)
        >>> y = MaxUnpooling2D(2)([values, switches])
        >>> y.shape
        TensorShape([1, 4, 4, 1])
        >>> np.asarray(y)[0, :, :, 0]
        array([[ 0.,  0.,  0.,  0.],
               [10.,  0.,  0., 20.],
               [ 0.,  0., 40.,  0.],
               [ 0., 30.,  0.,  0.]], dtype=float32)

    References:
        Zeiler & Fergus (2014); Badrinarayanan et al., "SegNet" (2017).
    """

    def __init__(self, pool_size=2, strides=None, padding="valid", **kwargs):
        super().__init__(**kwargs)
        self.pool_size = pair(pool_size, "pool_size")
        self.strides = self.pool_size if strides is None else pair(strides, "strides")
        self.padding = check_padding(padding)

    def build(self, input_shape):
        self._check_shapes(input_shape)
        self.built = True

    def call(self, inputs):
        values, switches, like = self._unpack(inputs)
        dtype = keras.backend.standardize_dtype(switches.dtype)
        if "int" not in dtype:
            raise ValueError(f"Expected integer switches. Received dtype: {dtype}")
        self._check_shapes([tuple(t.shape) for t in inputs])
        values = ops.cast(values, self.compute_dtype)
        ho, wo, c = spatial_dims(values)
        if like is not None:
            h, w, _ = spatial_dims(like)
        else:
            h = unpooled_size(ho, self.pool_size[0], self.strides[0], self.padding)
            w = unpooled_size(wo, self.pool_size[1], self.strides[1], self.padding)
        if _executing_eagerly(switches):
            check_switches(switches, (h, w), c, self.pool_size, self.strides, self.padding)
        return max_unpool(values, switches, (h, w), self.pool_size, self.strides, self.padding)

    def compute_output_shape(self, input_shape):
        shapes = self._check_shapes(input_shape)
        n, ho, wo, c = shapes[0]
        if len(shapes) == 3:
            return (n, shapes[2][1], shapes[2][2], c)
        up = unpooled_size
        return (
            n,
            None if ho is None else up(ho, self.pool_size[0], self.strides[0], self.padding),
            None if wo is None else up(wo, self.pool_size[1], self.strides[1], self.padding),
            c,
        )

    def compute_output_spec(self, inputs):
        values, switches, _ = self._unpack(inputs)
        dtype = keras.backend.standardize_dtype(switches.dtype)
        if "int" not in dtype:
            raise ValueError(f"Expected integer switches. Received dtype: {dtype}")
        shape = self.compute_output_shape([tuple(t.shape) for t in inputs])
        return keras.KerasTensor(shape, dtype=self.compute_dtype)

    def get_config(self):
        return {
            **super().get_config(),
            "pool_size": self.pool_size,
            "strides": self.strides,
            "padding": self.padding,
        }

    def _unpack(self, inputs):
        if not isinstance(inputs, list | tuple) or len(inputs) not in (2, 3):
            raise ValueError(
                "MaxUnpooling2D expects a list [pooled, switches] or [pooled, switches, like]. "
                f"Received: {type(inputs).__name__}"
                + (f" of length {len(inputs)}" if isinstance(inputs, list | tuple) else "")
            )
        return inputs[0], inputs[1], inputs[2] if len(inputs) == 3 else None

    def _check_shapes(self, input_shape):
        """Static checks of the input shapes (None = unknown); returns them as tuples."""
        self._unpack(input_shape)
        try:
            shapes = [tuple(s) for s in input_shape]
        except TypeError:
            self._unpack(None)  # not a list of shapes: raises the message above
        for shape, what in zip(shapes, ("pooled", "switches", "like"), strict=False):
            _check_rank(shape, what, self.name)
        pooled, switches = shapes[0], shapes[1]
        if any(
            p is not None and s is not None and p != s
            for p, s in zip(pooled, switches, strict=True)
        ):
            raise ValueError(
                f"Layer {self.name!r}: switches {switches} do not match the values to unpool "
                f"{pooled}; use the switches returned with those values."
            )
        if len(shapes) == 3:
            like = shapes[2]
            if like[3] is not None and pooled[3] is not None and like[3] != pooled[3]:
                raise ValueError(
                    f"Layer {self.name!r}: `like` has {like[3]} channels, the values {pooled[3]}; "
                    "switches index channels, so both must be the same."
                )
            for axis in (1, 2):
                size, small = like[axis], pooled[axis]
                if size is None or small is None:
                    continue
                i = axis - 1
                expected = _valid_pooled_size(
                    size, self.pool_size[i], self.strides[i], self.padding
                )
                if expected != small:
                    raise ValueError(
                        f"Layer {self.name!r}: pooling `like` {like} with pool_size="
                        f"{self.pool_size}, strides={self.strides}, padding={self.padding!r} "
                        f"gives size {expected} on axis {axis}, but the values have {small}."
                    )
        return shapes


def _valid_pooled_size(size, pool, stride, padding):
    out = pooled_size(size, pool, stride, padding)
    if out < 1:
        raise ValueError(
            f"A {padding} pooling window of {pool} does not fit in size {size}. Received: size={size}"
        )
    return out


def _check_rank(shape, what, name):
    if len(shape) != 4:
        raise ValueError(
            f"Layer {name!r} expects 4-D channels-last `{what}` (batch, height, width, channels). "
            f"Received shape: {tuple(shape)}"
        )
