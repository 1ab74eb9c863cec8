"""Fixed (parameter-free) unpooling: nearest neighbour and bed of nails.

``NearestUnpooling2D`` computes what ``keras.layers.UpSampling2D(interpolation="nearest")`` does
(the tests check it); it exists so that the lecture's names map to layers one to one, and so
that it and ``BedOfNailsUnpooling2D`` share arguments and checks. Use either.
"""

from __future__ import annotations

import keras
from keras import ops

from dlcourse.reference.sizes import pair


class _FixedUnpooling2D(keras.layers.Layer):
    """Shared arguments, shape rule and config of the fixed ``size × size`` unpoolings."""

    def __init__(self, size=2, **kwargs):
        super().__init__(**kwargs)
        self.size = pair(size, "size")
        self.input_spec = keras.layers.InputSpec(ndim=4)

    def compute_output_shape(self, input_shape):
        if len(input_shape) != 4:
            raise ValueError(
                f"Layer {self.name!r} expects 4-D channels-last input (batch, height, width, "
                f"channels). Received shape: {tuple(input_shape)}"
            )
        n, h, w, c = input_shape
        return (
            n,
            None if h is None else h * self.size[0],
            None if w is None else w * self.size[1],
            c,
        )

    def get_config(self):
        return {**super().get_config(), "size": self.size}


@keras.saving.register_keras_serializable(package="dlcourse")
class NearestUnpooling2D(_FixedUnpooling2D):
    """Nearest-neighbour unpooling: every pixel becomes a ``size × size`` block of copies.

    The same as ``keras.layers.UpSampling2D(size, interpolation="nearest")`` and as
    ``dlcourse.reference.nearest_unpool``. Its gradient sums the gradient over each block.

    Args:
        size: int or pair ``(sh, sw)``, the upsampling factor.
        **kwargs: base layer arguments (``name``, ``dtype``, ...).

    Input shape:
        4-D tensor ``(batch, height, width, channels)``; height and width may be unknown.

    Output shape:
        ``(batch, height * sh, width * sw, channels)``.

    Example:
        >>> import numpy as np
        >>> y = NearestUnpooling2D(2)(np.array([[1, 2], [3, 4]], "float32").reshape(1, 2, 2, 1))
        >>> y.shape
        TensorShape([1, 4, 4, 1])
        >>> np.asarray(y)[0, :, :, 0]
        array([[1., 1., 2., 2.],
               [1., 1., 2., 2.],
               [3., 3., 4., 4.],
               [3., 3., 4., 4.]], dtype=float32)
    """

    def call(self, inputs):
        x = ops.repeat(inputs, self.size[0], axis=1)
        return ops.repeat(x, self.size[1], axis=2)


@keras.saving.register_keras_serializable(package="dlcourse")
class BedOfNailsUnpooling2D(_FixedUnpooling2D):
    """Bed-of-nails unpooling: every pixel goes to the top-left corner of its block, zeros elsewhere.

    The same as ``dlcourse.reference.bed_of_nails_unpool``. Its gradient is the gradient at the
    corners (a strided slice).

    Args:
        size: int or pair ``(sh, sw)``, the upsampling factor.
        **kwargs: base layer arguments (``name``, ``dtype``, ...).

    Input shape:
        4-D tensor ``(batch, height, width, channels)``; height and width may be unknown.

    Output shape:
        ``(batch, height * sh, width * sw, channels)``.

    Example:
        >>> import numpy as np
        >>> y = BedOfNailsUnpooling2D(2)(np.array([[1, 2], [3, 4]], "float32").reshape(1, 2, 2, 1))
        >>> y.shape
        TensorShape([1, 4, 4, 1])
        >>> np.asarray(y)[0, :, :, 0]
        array([[1., 0., 2., 0.],
               [0., 0., 0., 0.],
               [3., 0., 4., 0.],
               [0., 0., 0., 0.]], dtype=float32)
    """

    def call(self, inputs):
        sh, sw = self.size
        shape = ops.shape(inputs)
        h, w, c = shape[1], shape[2], shape[3]
        # (N, H, 1, W, 1, C) padded with zeros to (N, H, sh, W, sw, C) is the output, blockwise.
        x = inputs[:, :, None, :, None, :]
        x = ops.pad(x, [[0, 0], [0, 0], [0, sh - 1], [0, 0], [0, sw - 1], [0, 0]])
        return ops.reshape(x, (-1, h * sh, w * sw, c))
