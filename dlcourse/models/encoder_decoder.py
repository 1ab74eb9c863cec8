"""The encoder–decoder with every downsampling and upsampling the course compares (lessons 05–06).

Layout for ``filters=(16, 32, 64)`` (``L = len(filters) - 1 = 2`` downsamplings)::

    image H×W ─ enc1 (16) ─ down1 ─ enc2 (32) ─ down2 ─ bottleneck (64)     [H/4]
                   │                   │                     │
                   │                   │                   dec2 (64→32)      [H/4]
                   │                   └──── (skip2) ──────  up2 → H/2
                   │                                       dec1 (→16)        [H/2]
                   └──────────────── (skip1) ────────────  up1 → H
                                                           head (16) ─ classifier (1×1 softmax)

Every block is a 3×3 convolution (+ BatchNorm, momentum 0.9) + ReLU. Each upsampling receives as
many channels as the encoder level it returns to, so max unpooling can reuse the switches of the
matching pooling (SegNet), and is followed by a 3×3 convolution (``dec`` or ``head``), so every
method gets the same learnable capacity after it.
"""

from __future__ import annotations

from dlcourse.models.fcn import check_num_classes, classifier, conv_block
from dlcourse.quiet import import_keras

keras = import_keras()
layers = keras.layers

DOWNSAMPLING_METHODS = ("pool", "strided_conv")
UPSAMPLING_METHODS = ("nearest", "bed_of_nails", "max_unpool", "transpose", "resize_conv")
"""Accepted values of ``upsampling=``: the fixed unpoolings first, the learnable ones last."""


def _course_layers():
    from dlcourse import layers as course_layers

    return course_layers


def _downsample(x, method, level, filters, max_unpool, batch_norm, bn_momentum):
    """Returns ``(x, switches)``; ``switches`` is None unless max unpooling will need them."""
    if method == "strided_conv":
        return conv_block(
            x, filters, f"down{level}", strides=2, batch_norm=batch_norm, bn_momentum=bn_momentum
        ), None
    if max_unpool:
        pool = _course_layers().MaxPoolingWithArgmax2D(pool_size=2, name=f"down{level}_pool")
        return pool(x)
    return layers.MaxPooling2D(2, name=f"down{level}_pool")(x), None


def _upsample(x, method, level, filters, switches, like, kernel_size, batch_norm, bn_momentum):
    name = f"up{level}_{method}"
    if method == "nearest":
        return _course_layers().NearestUnpooling2D(size=2, name=name)(x)
    if method == "bed_of_nails":
        return _course_layers().BedOfNailsUnpooling2D(size=2, name=name)(x)
    if method == "max_unpool":
        return _course_layers().MaxUnpooling2D(pool_size=2, name=name)([x, switches, like])
    if method == "transpose":
        x = layers.Conv2DTranspose(
            filters, kernel_size, strides=2, padding="same", use_bias=not batch_norm, name=name
        )(x)
    else:  # resize_conv
        x = _course_layers().ResizeConv2D(
            filters,
            kernel_size,
            size=2,
            interpolation="nearest",
            padding="same",
            use_bias=not batch_norm,
            name=name,
        )(x)
    if batch_norm:
        x = layers.BatchNormalization(momentum=bn_momentum, name=f"up{level}_bn")(x)
    return layers.ReLU(name=f"up{level}_relu")(x)


def build_encoder_decoder(
    num_classes: int,
    *,
    filters=(16, 32, 64),
    downsampling: str = "pool",
    upsampling: str = "nearest",
    skips: bool = False,
    batch_norm: bool = True,
    bn_momentum: float = 0.9,
    up_kernel_size: int = 3,
    input_shape=(None, None, 3),
):
    """An encoder–decoder segmentation model (a U-Net when ``skips=True``).

    Layer names: ``enc{i}_conv/_bn/_relu``; ``down{i}_pool`` (``MaxPooling2D``, or
    ``MaxPoolingWithArgmax2D`` for max unpooling) or ``down{i}_conv/_bn/_relu`` (3×3, stride
    2); ``bottleneck_*``; ``dec{i}_*``; ``up{i}_{upsampling}`` (+ ``up{i}_bn``/``up{i}_relu``
    after the learnable ``transpose`` and ``resize_conv``); ``skip{i}_concat``; ``head_*``;
    ``classifier``. Level ``i = 1`` is the full resolution.

    Args:
        num_classes: ``C + 1`` segmentation classes (background included).
        filters: channels per level, full resolution first; ``len(filters) - 1`` downsamplings.
        downsampling: one of ``DOWNSAMPLING_METHODS``: ``"pool"`` (2×2 max pooling) or
            ``"strided_conv"`` (a learnable 3×3 convolution with stride 2).
        upsampling: one of ``UPSAMPLING_METHODS``: ``"nearest"``, ``"bed_of_nails"``,
            ``"max_unpool"`` (needs ``downsampling="pool"``: it reuses the pooling switches),
            ``"transpose"`` (``Conv2DTranspose``, stride 2) or ``"resize_conv"`` (nearest
            upsampling then a convolution).
        skips: concatenate each encoder level's features after the matching upsampling.
        batch_norm: BatchNormalization after every convolution (convolutions then have no bias).
        bn_momentum: 0.9 rather than Keras's 0.99: the moving statistics keep up on short
            runs (after ``n`` updates a fraction ``momentum ** n`` of the initial statistics is
            left: 0.37 after 100 steps at 0.99, 3e-5 at 0.9).
        up_kernel_size: kernel of ``transpose`` and ``resize_conv``.
        input_shape: ``(H, W, channels)``. Unknown ``H, W`` are fine; they must be multiples of
            ``2 ** (len(filters) - 1)`` except with ``"max_unpool"``, which restores any size.

    Input shape: ``(N, H, W, channels)``. Output shape: ``(N, H, W, num_classes)`` probabilities.

    Example:
    >>> m = build_encoder_decoder(4, upsampling="transpose", skips=True)
    >>> m.output_shape, m.get_layer("up2_transpose").output.shape
    ((None, None, None, 4), (None, None, None, 32))
    """
    check_num_classes(num_classes)
    if downsampling not in DOWNSAMPLING_METHODS:
        raise ValueError(
            f"Expected downsampling one of {DOWNSAMPLING_METHODS}. "
            f"Received: downsampling={downsampling!r}"
        )
    if upsampling not in UPSAMPLING_METHODS:
        raise ValueError(
            f"Expected upsampling one of {UPSAMPLING_METHODS}. Received: upsampling={upsampling!r}"
        )
    if upsampling == "max_unpool" and downsampling != "pool":
        raise ValueError(
            "Expected downsampling='pool' with upsampling='max_unpool' (max unpooling puts values "
            f"back where the matching max pooling found them). Received: downsampling={downsampling!r}"
        )
    filters = tuple(filters)
    if len(filters) < 2 or any(not isinstance(f, int) or f < 1 for f in filters):
        raise ValueError(
            f"Expected at least two positive ints in filters. Received: filters={filters!r}"
        )
    factor = 2 ** (len(filters) - 1)
    if upsampling != "max_unpool":
        for size in input_shape[:2]:
            if size is not None and size % factor:
                raise ValueError(
                    f"Expected height and width divisible by {factor} (2 ** (len(filters) - 1)) "
                    f"with upsampling={upsampling!r}. Received: input_shape={tuple(input_shape)}"
                )
    block = {"batch_norm": batch_norm, "bn_momentum": bn_momentum}
    max_unpool = upsampling == "max_unpool"

    inputs = keras.Input(tuple(input_shape), name="image")
    x, levels = inputs, []
    for i, f in enumerate(filters[:-1], start=1):
        x = conv_block(x, f, f"enc{i}", **block)
        features = x
        x, switches = _downsample(x, downsampling, i, f, max_unpool, batch_norm, bn_momentum)
        levels.append((features, switches))
    x = conv_block(x, filters[-1], "bottleneck", **block)
    for i in range(len(filters) - 1, 0, -1):
        features, switches = levels[i - 1]
        x = conv_block(x, filters[i - 1], f"dec{i}", **block)
        x = _upsample(x, upsampling, i, filters[i - 1], switches, features, up_kernel_size, **block)
        if skips:
            x = layers.Concatenate(name=f"skip{i}_concat")([x, features])
    x = conv_block(x, filters[0], "head", **block)
    name = f"encoder_decoder_{downsampling}_{upsampling}" + ("_skips" if skips else "")
    return keras.Model(inputs, classifier(x, num_classes), name=name)
