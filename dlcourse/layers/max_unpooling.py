"""Max pooling that remembers where each maximum was, and max unpooling that puts values back there.

Keras has no max-unpooling layer. These two are used as a pair: ``MaxPoolingWithArgmax2D``
returns the pooled values *and* the switches, ``MaxUnpooling2D`` takes both (and, for odd sizes,
the tensor that was pooled) and writes every value back at its switch, zeros elsewhere.

A switch is the flat index, within one sample, of the element a maximum came from:
``(y * W + x) * C + c``, exactly what ``tf.nn.max_pool_with_argmax(include_batch_in_index=False)``
returns. So switches can be compared with TensorFlow's, with ``dlcourse.reference``, and stay
valid whatever the batch size is.

The computation (``_max_unpooling_ops``) uses ``keras.ops`` only: it compiles with XLA, which
Keras turns on by default on a GPU and which cannot compile ``tf.nn.max_pool_with_argmax``, and it
is faster than ``tf.nn.max_pool_with_argmax`` + ``tf.scatter_nd`` on a CPU
(``benchmarks/bench_layers.py``).
"""

from __future__ import annotations

import keras
from keras import ops

from dlcourse.layers._geometry import pooled_size, spatial_dims, unpooled_size
from dlcourse.layers._max_unpooling_ops import (
    INDEX_DTYPES,
    check_switches,
    executing_eagerly,
    max_pool_with_switches,
    max_unpool,
)
from dlcourse.reference.sizes import check_padding, pair


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
        if executing_eagerly(switches):
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
            if like[0] is not None and pooled[0] is not None and like[0] != pooled[0]:
                raise ValueError(
                    f"Layer {self.name!r}: `like` has batch size {like[0]}, the values {pooled[0]}."
                )
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
