"""Walk the layer calls of a functional model in order (for the cost counter and receptive field).

``layer.input``/``layer.output`` are ambiguous for a nested model (they are its own inputs, not
the tensors it was called on) and for a layer called more than once, so the calls are read from
the layer's call nodes instead: Keras 3's ``Node`` (``input_tensors``, ``outputs``,
``arguments``), the same structure Keras's own functional code walks.
"""

from __future__ import annotations

from dlcourse.quiet import import_keras

keras = import_keras()


def layer_calls(model):
    """Yield ``(layer, node)`` for each call of a layer in ``model``, every input before its use.

    Only calls whose inputs come from ``model``'s own graph are yielded (a layer shared with
    another model contributes only the calls made here).
    """
    known = {id(t) for t in model.inputs}
    pending = [(layer, node) for layer in model.layers for node in layer._inbound_nodes]
    while pending:
        left = []
        for layer, node in pending:
            if isinstance(layer, keras.layers.InputLayer):
                ready = id(node.outputs[0]) in known
            else:
                ready = bool(node.input_tensors) and all(id(t) in known for t in node.input_tensors)
            if ready:
                known.update(id(t) for t in node.outputs)
                yield layer, node
            else:
                left.append((layer, node))
        if len(left) == len(pending):  # calls from other graphs: never ready here
            return
        pending = left
