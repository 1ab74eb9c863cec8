"""The FCN trick: a ``Conv2DTranspose`` whose kernel starts as bilinear interpolation."""

from __future__ import annotations

import keras
import numpy as np
from keras import ops


def bilinear_kernel_1d(size: int) -> np.ndarray:
    """Weights of a 1-D bilinear (triangle) interpolation filter of ``size`` taps.

    Example:
        >>> bilinear_kernel_1d(4)
        array([0.25, 0.75, 0.75, 0.25])
    """
    factor = (size + 1) // 2
    center = factor - 1 if size % 2 == 1 else factor - 0.5
    return 1 - np.abs(np.arange(size) - center) / factor


@keras.saving.register_keras_serializable(package="dlcourse")
class BilinearUpsamplingInitializer(keras.initializers.Initializer):
    """Initializes a ``Conv2DTranspose`` kernel to bilinear upsampling, channel by channel.

    Channel ``i`` of the output is the bilinear interpolation of channel ``i`` of the input (no
    mixing of channels), so the layer needs ``filters`` equal to its input channels. With
    ``strides=s``, ``kernel_size=2 * s - s % 2`` and ``padding="same"`` the layer then computes
    ``UpSampling2D(s, interpolation="bilinear")`` exactly, except on a border ``s // 2`` pixels
    wide on every side (1 pixel for strides 2 and 3, 2 for 4 and 5): the output pixels whose
    centres lie beyond the outermost input pixel centres, where ``UpSampling2D`` repeats the edge
    value and the transposed convolution blends it with zeros. Training may move the kernel away
    from it: that is the point (Long, Shelhamer & Darrell, FCN, 2015).

    Example:
        >>> import numpy as np
        >>> up = keras.layers.Conv2DTranspose(
        ...     1, 4, strides=2, padding="same", use_bias=False,
        ...     kernel_initializer=BilinearUpsamplingInitializer())
        >>> y = up(np.array([[0, 4, 8]], "float32").reshape(1, 1, 3, 1))
        >>> y.shape
        TensorShape([1, 2, 6, 1])
        >>> np.asarray(up.kernel)[:, :, 0, 0]
        array([[0.0625, 0.1875, 0.1875, 0.0625],
               [0.1875, 0.5625, 0.5625, 0.1875],
               [0.1875, 0.5625, 0.5625, 0.1875],
               [0.0625, 0.1875, 0.1875, 0.0625]], dtype=float32)
    """

    def __call__(self, shape, dtype=None):
        if len(shape) != 4:
            raise ValueError(
                "BilinearUpsamplingInitializer is for 2-D transposed-convolution kernels "
                f"(kh, kw, filters, in_channels). Received shape: {tuple(shape)}"
            )
        kh, kw, filters, channels = (int(s) for s in shape)
        if filters != channels:
            raise ValueError(
                "BilinearUpsamplingInitializer interpolates each channel separately, so it needs "
                f"as many filters as input channels. Received: filters={filters}, "
                f"input channels={channels} (kernel shape {tuple(shape)})"
            )
        kernel = np.zeros((kh, kw, filters, channels))
        kernel[:, :, np.arange(channels), np.arange(channels)] = np.outer(
            bilinear_kernel_1d(kh), bilinear_kernel_1d(kw)
        )[:, :, None]
        return ops.convert_to_tensor(kernel, dtype=keras.backend.standardize_dtype(dtype))

    def get_config(self):
        return {}
