"""Resize, then convolve: learnable upsampling without the checkerboard of transposed convolutions.

A transposed convolution whose kernel size is not a multiple of its stride adds an uneven number
of kernel copies to neighbouring output pixels (``dlcourse.reference.overlap_count``), which
draws a checkerboard. Resizing first (nearest or bilinear) and then applying an ordinary
convolution gives every output pixel the same number of taps (Odena, Dumoulin & Olah, 2016).
"""

from __future__ import annotations

import keras
from keras import ops

from dlcourse.reference.sizes import check_padding, pair

INTERPOLATIONS = ("nearest", "bilinear")
_BASE_LAYER_KWARGS = ("name", "dtype", "trainable", "autocast")


@keras.saving.register_keras_serializable(package="dlcourse")
class ResizeConv2D(keras.layers.Layer):
    """Upsample by ``size`` (nearest or bilinear), then apply a ``Conv2D``.

    The resize computes what ``keras.layers.UpSampling2D(size, interpolation=...)`` does, but
    with ``keras.ops`` that also accept unknown height and width (``UpSampling2D``'s bilinear
    mode fails on them with TensorFlow, because ``ops.image.resize`` tests the size in Python).

    Args:
        filters: number of output channels of the convolution.
        kernel_size: int or pair, the convolution's kernel.
        size: int or pair ``(sh, sw)``, the upsampling factor.
        interpolation: "nearest" (default) or "bilinear" (half-pixel centres, edges repeated,
            like ``tf.image.resize``).
        padding: the convolution's padding, "same" (default: output ``size`` times the input)
            or "valid".
        **conv_kwargs: any other ``keras.layers.Conv2D`` argument (``activation``, ``use_bias``,
            ``kernel_initializer``, ``strides``, ...), plus the base layer arguments ``name``,
            ``dtype``, ``trainable``.

    Input shape:
        4-D tensor ``(batch, height, width, channels)``; height and width may be unknown.

    Output shape:
        ``(batch, height * sh, width * sw, filters)`` with "same" padding and stride 1.

    Attributes:
        conv: the ``Conv2D`` sublayer (``conv.kernel`` and ``conv.bias`` are the weights).

    Example:
        >>> import numpy as np
        >>> layer = ResizeConv2D(8, 3, size=2, name="up")
        >>> layer(np.zeros((1, 5, 7, 3), "float32")).shape
        TensorShape([1, 10, 14, 8])
        >>> [tuple(w.shape) for w in layer.weights]
        [(3, 3, 3, 8), (8,)]

    References:
        Odena, Dumoulin & Olah, "Deconvolution and Checkerboard Artifacts", Distill (2016).
    """

    def __init__(
        self, filters, kernel_size, size=2, interpolation="nearest", padding="same", **conv_kwargs
    ):
        base_kwargs = {k: conv_kwargs.pop(k) for k in _BASE_LAYER_KWARGS if k in conv_kwargs}
        super().__init__(**base_kwargs)
        if isinstance(filters, bool) or not isinstance(filters, int) or filters < 1:
            raise ValueError(
                f"Expected `filters` to be a positive integer. Received: filters={filters!r}"
            )
        self.filters = filters
        self.kernel_size = pair(kernel_size, "kernel_size")
        self.size = pair(size, "size")
        if interpolation not in INTERPOLATIONS:
            raise ValueError(
                f"Expected `interpolation` to be one of {INTERPOLATIONS}. "
                f"Received: interpolation={interpolation!r}"
            )
        self.interpolation = interpolation
        self.padding = check_padding(padding)
        if conv_kwargs.get("data_format", "channels_last") != "channels_last":
            raise ValueError(
                "ResizeConv2D works on channels-last tensors. "
                f"Received: data_format={conv_kwargs['data_format']!r}"
            )
        self.conv_kwargs = dict(conv_kwargs)
        self.conv = keras.layers.Conv2D(
            filters,
            self.kernel_size,
            padding=self.padding,
            name="conv",
            dtype=self.dtype_policy,
            **conv_kwargs,
        )
        self.input_spec = keras.layers.InputSpec(ndim=4)

    def build(self, input_shape):
        self.conv.build(self._upsampled_shape(input_shape))
        self.built = True

    def call(self, inputs):
        return self.conv(upsample(inputs, self.size, self.interpolation))

    def compute_output_shape(self, input_shape):
        return self.conv.compute_output_shape(self._upsampled_shape(input_shape))

    def _upsampled_shape(self, input_shape):
        n, h, w, c = input_shape
        return (
            n,
            None if h is None else h * self.size[0],
            None if w is None else w * self.size[1],
            c,
        )

    def get_config(self):
        conv_config = self.conv.get_config()  # serialised initializers, activations, ...
        return {
            **super().get_config(),
            "filters": self.filters,
            "kernel_size": self.kernel_size,
            "size": self.size,
            "interpolation": self.interpolation,
            "padding": self.padding,
            **{key: conv_config.get(key, value) for key, value in self.conv_kwargs.items()},
        }


def upsample(x, size, interpolation="nearest"):
    """Upsample a channels-last 4-D tensor by integer factors ``size = (sh, sw)``.

    "nearest" repeats pixels; "bilinear" interpolates between neighbours with half-pixel centres
    and repeated edges, which is what ``tf.image.resize`` and ``UpSampling2D`` compute.
    """
    if interpolation == "nearest":
        return ops.repeat(ops.repeat(x, size[0], axis=1), size[1], axis=2)
    return _bilinear_axis(_bilinear_axis(x, size[0], axis=1), size[1], axis=2)


def _bilinear_axis(x, factor, axis):
    if factor == 1:
        return x
    first, last = (x[:, :1], x[:, -1:]) if axis == 1 else (x[:, :, :1], x[:, :, -1:])
    body_head, body_tail = (x[:, :-1], x[:, 1:]) if axis == 1 else (x[:, :, :-1], x[:, :, 1:])
    previous = ops.concatenate([first, body_head], axis=axis)  # x[i - 1], edge repeated
    following = ops.concatenate([body_tail, last], axis=axis)  # x[i + 1], edge repeated
    phases = []
    for r in range(factor):
        # Output pixel factor*i + r sits at input coordinate i + d (half-pixel centres).
        d = (r + 0.5) / factor - 0.5
        neighbour = following if d > 0 else previous
        phases.append(x * (1 - abs(d)) + neighbour * abs(d) if d != 0 else x)
    stacked = ops.stack(phases, axis=axis + 1)  # (N, H, factor, W, C) or (N, H, W, factor, C)
    shape = ops.shape(x)
    if axis == 1:
        return ops.reshape(stacked, (-1, shape[1] * factor, shape[2], shape[3]))
    return ops.reshape(stacked, (-1, shape[1], shape[2] * factor, shape[3]))
