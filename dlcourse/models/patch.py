"""The sliding-window patch classifier and its fully convolutional twin (lesson 03).

A patch classifier looks at a ``P×P`` patch and predicts the class of its centre pixel. Run over
every pixel (:func:`sliding_window_predict`) it segments an image at the price of ``H·W`` forward
passes. :func:`to_fully_convolutional` turns the same weights into a model that predicts every
pixel in one pass: the convolutions slide by themselves, and the dense layers become
convolutions (the first one with a kernel as large as the feature map it read, the others 1×1).
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from dlcourse.quiet import import_keras
from dlcourse.validate import positive_int

keras = import_keras()
layers = keras.layers

PADDING_MODES = ("reflect", "zero")
_PER_PIXEL = (
    layers.Activation,
    layers.BatchNormalization,
    layers.Dropout,
    layers.ReLU,
    layers.LeakyReLU,
    layers.SpatialDropout2D,
)


@keras.saving.register_keras_serializable(package="dlcourse")
class ReflectionPadding2D(layers.Layer):
    """Pad height and width by ``padding`` pixels on every side, mirroring without the edge.

    The same as ``np.pad(..., mode="reflect")``; unknown height and width are fine (each must
    exceed ``padding``). Used by the fully convolutional twin so that its border pixels see what
    :func:`sliding_window_predict` shows the patch classifier.

    Input shape: ``(N, H, W, C)``. Output shape: ``(N, H + 2p, W + 2p, C)``.
    """

    def __init__(self, padding=1, **kwargs):
        super().__init__(**kwargs)
        if not isinstance(padding, int) or padding < 0:
            raise ValueError(f"Expected a non-negative int padding. Received: padding={padding!r}")
        self.padding = padding

    def call(self, inputs):
        p = self.padding
        return keras.ops.pad(inputs, [[0, 0], [p, p], [p, p], [0, 0]], mode="reflect")

    def compute_output_shape(self, input_shape):
        n, h, w, c = input_shape
        p = 2 * self.padding
        return (n, None if h is None else h + p, None if w is None else w + p, c)

    def get_config(self):
        return {**super().get_config(), "padding": self.padding}


def build_patch_classifier(
    patch_size: int = 15,
    num_classes: int = 4,
    *,
    filters=(16, 32),
    kernel_size: int = 3,
    dense_units: int = 64,
    input_channels: int = 3,
):
    """A CNN that classifies the centre pixel of a ``patch_size × patch_size`` patch.

    ``conv1 .. convK`` (``kernel_size``, VALID padding, stride 1, ReLU) → ``flatten`` →
    ``dense`` (ReLU) → ``classifier`` (softmax over ``num_classes``). No pooling and no
    strides, so :func:`to_fully_convolutional` yields a twin with an output pixel for every
    input pixel.

    Args:
        patch_size: odd int, the patch side (and the receptive field).
        num_classes: ``C + 1`` segmentation classes (background included).
        filters: filters of each VALID convolution.
        kernel_size: odd int.
        dense_units: width of the hidden dense layer.
        input_channels: channels of the image.

    Input shape: ``(N, P, P, input_channels)``. Output shape: ``(N, num_classes)`` probabilities.

    Example:
    >>> m = build_patch_classifier(patch_size=9, num_classes=4, filters=(8,), dense_units=16)
    >>> m.output_shape, [layer.name for layer in m.layers]
    ((None, 4), ['patch', 'conv1', 'flatten', 'dense', 'classifier'])
    """
    if not isinstance(patch_size, int) or patch_size < 1 or patch_size % 2 == 0:
        raise ValueError(
            f"Expected an odd positive patch_size. Received: patch_size={patch_size!r}"
        )
    if not isinstance(kernel_size, int) or kernel_size < 1 or kernel_size % 2 == 0:
        raise ValueError(
            f"Expected an odd positive kernel_size. Received: kernel_size={kernel_size!r}"
        )
    if patch_size - len(filters) * (kernel_size - 1) < 1:
        raise ValueError(
            f"Expected patch_size > len(filters) * (kernel_size - 1) so that the VALID "
            f"convolutions leave a feature map. Received: patch_size={patch_size}, "
            f"filters={filters!r}, kernel_size={kernel_size}"
        )
    if num_classes < 2:
        raise ValueError(f"Expected num_classes >= 2. Received: num_classes={num_classes!r}")
    inputs = keras.Input((patch_size, patch_size, input_channels), name="patch")
    x = inputs
    for i, f in enumerate(filters, start=1):
        x = layers.Conv2D(f, kernel_size, padding="valid", activation="relu", name=f"conv{i}")(x)
    x = layers.Flatten(name="flatten")(x)
    x = layers.Dense(dense_units, activation="relu", name="dense")(x)
    outputs = layers.Dense(num_classes, activation="softmax", name="classifier")(x)
    return keras.Model(inputs, outputs, name="patch_classifier")


def _patch_size(patch_model) -> int:
    shape = patch_model.input_shape
    if len(shape) != 4 or shape[1] is None or shape[1] != shape[2] or shape[1] % 2 == 0:
        raise ValueError(
            "Expected a patch model with a square, odd, fixed input size (N, P, P, C). "
            f"Received: input_shape={shape}"
        )
    return shape[1]


def _check_padding(padding):
    if padding not in PADDING_MODES:
        raise ValueError(f"Expected padding one of {PADDING_MODES}. Received: padding={padding!r}")


def _clone(layer, x):
    new = layer.__class__.from_config(layer.get_config())
    y = new(x)
    new.set_weights(layer.get_weights())
    return y


def to_fully_convolutional(patch_model, padding: str = "reflect"):
    """The fully convolutional twin of a patch classifier, with a copy of the same weights.

    The twin pads the image by ``P // 2`` on every side (``padding="reflect"`` or ``"zero"``,
    as :func:`sliding_window_predict` does), then applies the same layers: VALID convolutions
    and per-pixel layers (activations, BatchNorm, Dropout) as they are; the first ``Dense``
    after ``Flatten`` becomes a convolution whose kernel is the dense kernel reshaped to
    ``(h, w, c, units)`` (``h×w×c`` being what ``Flatten`` read); later ``Dense`` layers become
    1×1 convolutions. Every output pixel then equals the patch classifier's prediction for the
    patch centred on it. The weights are copied: retrain the patch model, rebuild the twin.

    Args:
        patch_model: a sequential-shaped model with a fixed odd square input ``(P, P, C)`` made of
            VALID stride-1 ``Conv2D``, per-pixel layers, one ``Flatten`` and ``Dense`` layers
            (as :func:`build_patch_classifier` builds).
        padding: ``"reflect"`` or ``"zero"``.

    Input shape: ``(N, H, W, C)``, any ``H, W > P // 2``. Output shape: ``(N, H, W, K)``.

    Example:
    >>> m = build_patch_classifier(patch_size=9, num_classes=4, filters=(8,), dense_units=16)
    >>> fcn = to_fully_convolutional(m)
    >>> fcn(np.zeros((1, 20, 30, 3), "float32")).shape
    TensorShape([1, 20, 30, 4])
    """
    _check_padding(padding)
    size = _patch_size(patch_model)
    channels = patch_model.input_shape[-1]
    inputs = keras.Input((None, None, channels), name="image")
    pad = size // 2
    if padding == "reflect":
        x = ReflectionPadding2D(pad, name="pad")(inputs)
    else:
        x = layers.ZeroPadding2D(pad, name="pad")(inputs)
    flat_shape = None  # (h, w, c) read by Flatten, until the first Dense consumes it
    for layer in patch_model.layers:
        if isinstance(layer, layers.InputLayer):
            continue
        if isinstance(layer, layers.Conv2D):
            cfg = layer.get_config()
            if cfg["padding"] != "valid" or tuple(cfg["strides"]) != (1, 1):
                raise ValueError(
                    f"Expected VALID stride-1 convolutions. Received: layer {layer.name!r} with "
                    f"padding={cfg['padding']!r}, strides={cfg['strides']!r}"
                )
            if flat_shape is not None:
                raise ValueError(f"Expected no convolution after Flatten. Received: {layer.name!r}")
            x = _clone(layer, x)
        elif isinstance(layer, _PER_PIXEL):
            x = _clone(layer, x)
        elif isinstance(layer, layers.Flatten):
            flat_shape = tuple(layer.input.shape[1:])
        elif isinstance(layer, layers.Dense):
            if flat_shape is None:
                raise ValueError(f"Expected Flatten before Dense layer {layer.name!r}.")
            kernel, *bias = layer.get_weights()
            kernel_size = flat_shape[:2]
            conv = layers.Conv2D(
                layer.units,
                kernel_size,
                activation=layer.get_config()["activation"],
                use_bias=layer.use_bias,
                name=f"{layer.name}_as_conv",
            )
            x = conv(x)
            conv.set_weights([kernel.reshape(*flat_shape, layer.units), *bias])
            flat_shape = (1, 1, layer.units)
        else:
            raise ValueError(
                "Expected only Conv2D, Flatten, Dense and per-pixel layers in the patch model. "
                f"Received: layer {layer.name!r} of type {type(layer).__name__}"
            )
    return keras.Model(inputs, x, name=f"{patch_model.name}_fully_convolutional")


class SlidingWindowResult(NamedTuple):
    """What :func:`sliding_window_predict` returns."""

    probabilities: np.ndarray
    """``(H, W, K)`` (or ``(N, H, W, K)``) per-pixel class probabilities."""
    forward_passes: int
    """Patches classified: one per pixel, ``N·H·W``."""
    model_calls: int
    """Batched calls of the model (``ceil(N·H·W / batch_size)``)."""


def sliding_window_predict(patch_model, image, batch_size: int = 1024, padding: str = "reflect"):
    """Segment an image by classifying the patch centred on every pixel, one after another.

    The image is padded by ``P // 2`` (``"reflect"`` or ``"zero"``, as the twin of
    :func:`to_fully_convolutional` does), every ``P×P`` patch is cut out and the patches go
    through ``patch_model`` in batches of ``batch_size`` (cut per batch, so memory stays small).

    Args:
        patch_model: model mapping ``(N, P, P, C)`` patches to ``(N, K)`` probabilities.
        image: ``(H, W, C)`` or ``(N, H, W, C)`` float array.
        batch_size: patches per model call.
        padding: ``"reflect"`` or ``"zero"``.

    Returns:
        ``SlidingWindowResult(probabilities, forward_passes, model_calls)``.

    Example:
    >>> m = build_patch_classifier(patch_size=9, num_classes=4, filters=(8,), dense_units=16)
    >>> result = sliding_window_predict(m, np.zeros((12, 10, 3), "float32"), batch_size=50)
    >>> result.probabilities.shape, result.forward_passes, result.model_calls
    ((12, 10, 4), 120, 3)
    """
    _check_padding(padding)
    positive_int(batch_size, "batch_size")
    size = _patch_size(patch_model)
    images = np.asarray(image, dtype="float32")
    single = images.ndim == 3
    if single:
        images = images[None]
    n, h, w, c = images.shape
    p = size // 2
    mode = "reflect" if padding == "reflect" else "constant"
    padded = np.pad(images, [(0, 0), (p, p), (p, p), (0, 0)], mode=mode)
    # windows[i, y, x] is the patch centred on pixel (y, x) of image i: a view, no copy.
    windows = np.lib.stride_tricks.sliding_window_view(padded, (size, size), axis=(1, 2))
    outputs, calls = [], 0
    for start in range(0, n * h * w, batch_size):
        index = np.unravel_index(np.arange(start, min(start + batch_size, n * h * w)), (n, h, w))
        batch = windows[index].transpose(0, 2, 3, 1)  # (B, C, P, P) -> (B, P, P, C)
        outputs.append(keras.ops.convert_to_numpy(patch_model(batch, training=False)))
        calls += 1
    probs = np.concatenate(outputs).reshape(n, h, w, -1)
    return SlidingWindowResult(probs[0] if single else probs, n * h * w, calls)
