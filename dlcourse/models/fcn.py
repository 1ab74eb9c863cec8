"""The naive fully convolutional network and the receptive field (lesson 04).

The naive FCN keeps the full resolution all the way: ``depth`` 3×3 convolutions and a 1×1
per-pixel softmax. Its receptive field grows by only ``kernel_size - 1`` pixels per layer
(:func:`receptive_field`), while its cost grows with ``H·W`` at every layer.
"""

from __future__ import annotations

import math
from fractions import Fraction

from dlcourse.models.graph import layer_calls
from dlcourse.quiet import import_keras

keras = import_keras()
layers = keras.layers


def conv_block(x, filters, name, *, kernel_size=3, strides=1, batch_norm=True, bn_momentum=0.9):
    """``{name}_conv`` (+ ``{name}_bn``) + ``{name}_relu``: a same-padded convolution block."""
    x = layers.Conv2D(
        filters,
        kernel_size,
        strides=strides,
        padding="same",
        use_bias=not batch_norm,
        name=f"{name}_conv",
    )(x)
    if batch_norm:
        x = layers.BatchNormalization(momentum=bn_momentum, name=f"{name}_bn")(x)
    return layers.ReLU(name=f"{name}_relu")(x)


def classifier(x, num_classes):
    """The 1×1 convolution with a per-pixel softmax every segmentation model ends with."""
    return layers.Conv2D(num_classes, 1, activation="softmax", name="classifier")(x)


def check_num_classes(num_classes):
    if not isinstance(num_classes, int) or num_classes < 2:
        raise ValueError(
            f"Expected num_classes >= 2 (background included). Received: num_classes={num_classes!r}"
        )


def build_naive_fcn(
    depth: int = 6,
    width: int = 32,
    num_classes: int = 4,
    input_shape=(None, None, 3),
    *,
    kernel_size: int = 3,
    batch_norm: bool = False,
    bn_momentum: float = 0.9,
):
    """A stack of same-resolution convolutions and a 1×1 per-pixel softmax; no pooling.

    ``conv1 .. conv{depth}`` (``width`` filters, ``kernel_size``, SAME padding, ReLU; with
    ``batch_norm`` each is followed by ``conv{i}_bn``, the conv then has no bias) and
    ``classifier`` (1×1, softmax). Receptive field: ``depth * (kernel_size - 1) + 1``.

    Args:
        depth: number of convolutions (≥ 1).
        width: filters of each convolution.
        num_classes: ``C + 1`` segmentation classes (background included).
        input_shape: ``(H, W, channels)``; ``None`` for any size.
        kernel_size: odd int.
        batch_norm: add BatchNormalization (momentum ``bn_momentum``) after each convolution.

    Input shape: ``(N, H, W, channels)``. Output shape: ``(N, H, W, num_classes)`` probabilities.

    Example:
    >>> m = build_naive_fcn(depth=6, width=32, num_classes=4)
    >>> m.output_shape, m.count_params(), receptive_field(m)
    ((None, None, None, 4), 47268, 13)
    """
    if not isinstance(depth, int) or depth < 1:
        raise ValueError(f"Expected depth >= 1. Received: depth={depth!r}")
    if not isinstance(width, int) or width < 1:
        raise ValueError(f"Expected width >= 1. Received: width={width!r}")
    if not isinstance(kernel_size, int) or kernel_size < 1 or kernel_size % 2 == 0:
        raise ValueError(
            f"Expected an odd positive kernel_size. Received: kernel_size={kernel_size!r}"
        )
    check_num_classes(num_classes)
    inputs = keras.Input(tuple(input_shape), name="image")
    x = inputs
    for i in range(1, depth + 1):
        if batch_norm:
            x = conv_block(x, width, f"conv{i}", kernel_size=kernel_size, bn_momentum=bn_momentum)
        else:
            x = layers.Conv2D(
                width, kernel_size, padding="same", activation="relu", name=f"conv{i}"
            )(x)
    return keras.Model(inputs, classifier(x, num_classes), name=f"naive_fcn_d{depth}_w{width}")


def _pair(value):
    return value[0] if isinstance(value, list | tuple) else value


def _step(layer, node, r, j):
    """(receptive field, jump) after ``layer``, both in input pixels along the height."""
    if isinstance(layer, keras.Model):  # a nested model: compose its own field and jump
        inner_r, inner_j = _field(layer)
        return r + (inner_r - 1) * j, j * inner_j
    cfg = layer.get_config()
    kind = type(layer).__name__
    if kind == "Conv2DTranspose":  # an output pixel gathers from ceil(k / s) input pixels
        k, s = _pair(cfg["kernel_size"]), _pair(cfg["strides"])
        return r + (math.ceil(k / s) - 1) * j, j / s
    if "kernel_size" in cfg and "size" in cfg:  # resize-convolution: upsample, then convolve
        j = j / _pair(cfg["size"])
        return r + (_pair(cfg["kernel_size"]) - 1) * j, j
    if "kernel_size" in cfg:
        k = (_pair(cfg["kernel_size"]) - 1) * _pair(cfg.get("dilation_rate", 1)) + 1
        return r + (k - 1) * j, j * _pair(cfg.get("strides", 1))
    if "Unpooling" in kind or "UpSampling" in kind:
        return r, j / _pair(cfg.get("size", cfg.get("strides") or cfg.get("pool_size")))
    if "pool_size" in cfg:
        k = _pair(cfg["pool_size"])
        return r + (k - 1) * j, j * _pair(cfg.get("strides") or k)
    if kind == "Flatten":  # a dense layer after it sees the whole feature map
        h = node.input_tensors[0].shape[1]
        if h is None:
            raise ValueError(f"Expected a known height before Flatten {layer.name!r}.")
        return r + (h - 1) * j, j
    return r, j


def receptive_field(model_or_layers) -> int:
    """Receptive field, in input pixels, of one output pixel (along the height).

    Args:
        model_or_layers: a list of ``(kernel, stride)`` pairs (a chain of convolutions or
            poolings, first layer first), or a functional ``keras.Model``. For a model, every
            layer is read from its config: convolutions and poolings (kernel, stride,
            dilation), upsampling and unpooling layers (divide the jump), ``Conv2DTranspose``
            (``ceil(k / s)`` input pixels per output pixel), resize-convolutions, ``Flatten``
            (the whole map); where branches merge the largest field counts.

    The rule: ``r ← r + (k − 1)·j`` and ``j ← j·s`` per layer, starting from ``r = j = 1``.

    Example:
    >>> receptive_field([(3, 1)] * 3)
    7
    >>> receptive_field([(3, 1), (2, 2), (3, 1), (2, 2), (3, 1)])
    18
    """
    if isinstance(model_or_layers, list | tuple):
        r, j = 1, 1
        for k, s in model_or_layers:
            r, j = r + (k - 1) * j, j * s
        return int(r)
    r, _ = _field(model_or_layers)
    return int(r) if r == int(r) else float(r)


def _field(model):
    """(receptive field, jump) of a functional model's outputs (the largest field over outputs)."""
    fields = {id(t): (Fraction(1), Fraction(1)) for t in model.inputs}
    for layer, node in layer_calls(model):
        if isinstance(layer, layers.InputLayer):
            continue
        known = [fields[id(t)] for t in node.input_tensors]
        if "Unpooling" in type(layer).__name__:  # switches and `like` only give the size
            r, j = max(f[0] for f in known), known[0][1]
        else:
            r, j = max(f[0] for f in known), min(f[1] for f in known)
        r, j = _step(layer, node, r, j)
        fields.update({id(t): (r, j) for t in node.outputs})
    return max(fields[id(t)] for t in model.outputs)
