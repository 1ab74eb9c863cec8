"""What a model costs: parameters, multiply-adds and activation memory, counted from its graph.

Lessons 04–07 compare models by cost as well as by quality (a naive full-resolution FCN against an
encoder–decoder, one shared backbone against two networks). :func:`model_cost` walks a functional
model's layer calls (:func:`dlcourse.models.graph.layer_calls`) and counts each layer at one input
size, for a batch of one image.
"""

from __future__ import annotations

import numpy as np

from dlcourse.models.graph import layer_calls
from dlcourse.quiet import import_keras

keras = import_keras()

__all__ = ["model_cost"]


def _conv_macs(layer, in_shape, out_shape) -> int:
    """Multiply-adds of one call (batch 1) of a convolution-like or dense layer; 0 otherwise."""
    kind = type(layer).__name__
    cfg = layer.get_config()
    if kind == "Dense":
        return int(np.prod(out_shape[1:-1], dtype=np.int64)) * in_shape[-1] * cfg["units"]
    if "kernel_size" not in cfg:
        return 0
    k = int(np.prod(cfg["kernel_size"]))
    out_pixels = int(np.prod(out_shape[1:-1], dtype=np.int64))
    in_pixels = int(np.prod(in_shape[1:-1], dtype=np.int64))
    c_in, c_out = in_shape[-1], out_shape[-1]
    if kind == "Conv2DTranspose":  # every input pixel scatters a k×k×c_out kernel
        return in_pixels * k * c_in * c_out
    if kind == "DepthwiseConv2D":  # c_out = c_in * depth_multiplier, one k×k filter each
        return out_pixels * k * c_out
    if kind == "SeparableConv2D":  # depthwise to c_in * m channels, then pointwise to c_out
        mid = c_in * cfg["depth_multiplier"]
        return out_pixels * k * mid + out_pixels * mid * c_out
    # Conv1D/2D/3D and layers built around one convolution at their output resolution
    # (ResizeConv2D: upsample, then convolve).
    return out_pixels * k * (c_in // cfg.get("groups", 1)) * c_out


def model_cost(model, input_shape) -> dict:
    """What a model costs at one input size, for a batch of one image.

    Args:
        model: a built functional ``keras.Model`` (single input).
        input_shape: ``(H, W, C)`` without the batch axis.

    Returns:
        A dict with ``params`` (all weights, trainable or not), ``multiply_adds`` (of the
        Conv/Conv2DTranspose/Depthwise/Separable/ResizeConv2D/Dense layers; biases, BatchNorm,
        activations and pooling are not counted), ``activation_bytes`` (the sum of the sizes of
        every layer's output, the input layer included, times the item size: 4 bytes for float32
        — what training keeps for the backward pass, roughly) and ``layers``: one dict per layer
        with ``name``, ``type``, ``output_shape``, ``params``, ``multiply_adds``,
        ``activation_bytes``. Multiply by the batch size for a batch (not ``params``); FLOPs are
        about ``2 * multiply_adds``. A nested model is one row holding its own totals.

    Example:
    >>> inputs = keras.Input((None, None, 3))
    >>> x = keras.layers.Conv2D(8, 3, padding="same", name="conv")(inputs)
    >>> cost = model_cost(keras.Model(inputs, x), (32, 32, 3))
    >>> cost["params"], cost["multiply_adds"], cost["activation_bytes"]
    (224, 221184, 45056)
    """
    shapes = {id(t): ((1, *input_shape), t.dtype) for t in model.inputs}

    def concrete(t):
        if isinstance(t, keras.KerasTensor) and id(t) in shapes:
            return keras.KerasTensor(shapes[id(t)][0], dtype=shapes[id(t)][1])
        return t

    table, counted = [], set()
    for layer, node in layer_calls(model):
        if isinstance(layer, keras.layers.InputLayer):
            in_shape, out_specs = None, [shapes[id(node.outputs[0])]]
        else:
            args, kwargs = node.arguments.convert(concrete)
            spec = keras.tree.flatten(layer.compute_output_spec(*args, **kwargs))
            out_specs = [(tuple(s.shape), s.dtype) for s in spec]
            shapes.update({id(t): s for t, s in zip(node.outputs, out_specs, strict=True)})
            in_shape = shapes[id(node.input_tensors[0])][0]
        out_shape = out_specs[0][0]
        act = sum(int(np.prod(s)) * np.dtype(d).itemsize for s, d in out_specs)
        if isinstance(layer, keras.Model):  # a nested model (a backbone): count inside it
            inner = model_cost(layer, in_shape[1:])["layers"]
            macs = sum(r["multiply_adds"] for r in inner)
            act = sum(r["activation_bytes"] for r in inner if r["type"] != "InputLayer")
        else:
            macs = _conv_macs(layer, in_shape, out_shape) if in_shape else 0
        table.append(
            {
                "name": layer.name,
                "type": type(layer).__name__,
                "output_shape": out_shape[1:],
                # a layer called twice costs twice, but its weights exist once
                "params": 0 if id(layer) in counted else int(layer.count_params()),
                "multiply_adds": int(macs),
                "activation_bytes": int(act),
            }
        )
        counted.add(id(layer))
    return {
        "params": int(sum(r["params"] for r in table)),
        "multiply_adds": int(sum(r["multiply_adds"] for r in table)),
        "activation_bytes": int(sum(r["activation_bytes"] for r in table)),
        "layers": table,
    }
