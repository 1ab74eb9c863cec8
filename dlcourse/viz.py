"""Plots for the lessons: image grids with class scores, mask overlays, boxes, learning curves.

Every function returns the matplotlib ``Figure`` and never calls ``plt.show()`` (the lesson shows
it, the tests close it). Colours of segmentation classes come from ``dlcourse.data.COLORMAP``, so
a class looks the same in every lesson. Inputs may be NumPy arrays or tensors.

Example:

>>> from dlcourse.data import make_scenes
>>> scenes = make_scenes(3, image_size=32, seed=0)
>>> fig = show_masks(scenes.images, scenes.masks)
>>> len(fig.axes), [t.get_text() for t in fig.legends[0].get_texts()]
(3, ['circle', 'square', 'triangle'])
>>> plt.close(fig)  # in a lesson: plt.show() or display(fig)
"""

from __future__ import annotations

import math

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.lines import Line2D
from matplotlib.patches import Patch, Rectangle

from dlcourse.data import CLASS_NAMES, COLORMAP, colorize_mask

_TRUE_COLOUR = "lime"
_PANEL_INCHES = 2.4


def _numpy(x) -> np.ndarray:
    return x.numpy() if hasattr(x, "numpy") else np.asarray(x)


def _images(images) -> np.ndarray:
    """(N, H, W, 3) or (N, H, W) floats in [0, 1], from one image or a batch."""
    images = _numpy(images)
    if images.ndim == 2 or (images.ndim == 3 and images.shape[-1] in (1, 3)):
        images = images[None]
    if images.ndim == 4 and images.shape[-1] == 1:
        images = images[..., 0]
    if images.ndim not in (3, 4) or (images.ndim == 4 and images.shape[-1] != 3):
        raise ValueError(
            f"Expected images of shape (N, H, W, 3), (N, H, W) or one image. Received: {images.shape}"
        )
    if np.issubdtype(images.dtype, np.integer):
        images = images / 255.0
    return np.clip(images.astype(np.float32), 0.0, 1.0)


def _same_length(n: int, what: str, values) -> list:
    values = list(values)
    if len(values) != n:
        raise ValueError(f"Expected {n} {what}, one per image. Received: {len(values)}")
    return values


def _grid(n: int, ncols: int | None, rows_per_item: int = 1, extra_height: float = 0.0):
    """A figure with `n` axes in a grid (no spare axes), and the list of axes."""
    if n < 1:
        raise ValueError(f"Expected at least one image. Received: {n}")
    ncols = min(n, ncols or 6)
    nrows = math.ceil(n / ncols)
    fig = plt.figure(figsize=(_PANEL_INCHES * ncols, (_PANEL_INCHES + extra_height) * nrows))
    axes = [fig.add_subplot(nrows, ncols, i + 1) for i in range(n)]
    for ax in axes:
        ax.set_axis_off()
    return fig, axes


def _segmentation_names(class_names, masks) -> tuple[str, ...]:
    """Names of the segmentation ids: ``background`` first, as many as needed."""
    if class_names is None:
        count = max(3, int(np.max(masks, initial=0)))
        class_names = CLASS_NAMES[:count]
    names = tuple(class_names)
    return names if names and names[0] == "background" else ("background", *names)


def _legend(fig, names) -> None:
    handles = [Patch(color=COLORMAP[i] / 255, label=name) for i, name in enumerate(names) if i]
    fig.legend(handles=handles, loc="lower center", ncol=min(len(handles), 8), frameon=False)


def show_images(images, titles=None, ncols=None, scores=None, class_names=None, top_k=3):
    """A grid of images, titled, or annotated with their top-k class scores ("circle 0.90").

    Args:
        images: ``(N, H, W, 3)`` (or ``(N, H, W)``) floats in ``[0, 1]``, or a single image.
        titles: ``N`` strings shown above the images (first line when `scores` is given).
        ncols: images per row (default up to 6).
        scores: ``(N, C)`` class scores (e.g. softmax outputs), written under each title.
        class_names: the ``C`` class names for `scores` (default ``CLASS_NAMES``).
        top_k: how many of the best scores to write.

    Returns:
        The ``Figure``, one axes per image.
    """
    images = _images(images)
    n = len(images)
    titles = _same_length(n, "titles", titles) if titles is not None else [""] * n
    lines = [[str(t)] if t != "" else [] for t in titles]
    if scores is not None:
        scores = _numpy(scores)
        if scores.ndim != 2 or len(scores) != n:
            raise ValueError(f"Expected scores of shape ({n}, C). Received: {scores.shape}")
        names = tuple(class_names) if class_names is not None else CLASS_NAMES
        if len(names) < scores.shape[1]:
            raise ValueError(
                f"Expected at least {scores.shape[1]} class names. Received: {len(names)}"
            )
        for i in range(n):
            best = np.argsort(-scores[i], kind="stable")[:top_k]
            lines[i] += [f"{names[c]} {scores[i, c]:.2f}" for c in best]
    height = 0.18 * max((len(x) for x in lines), default=0)
    fig, axes = _grid(n, ncols, extra_height=height)
    for ax, image, text in zip(axes, images, lines, strict=True):
        ax.imshow(image, cmap="gray" if image.ndim == 2 else None, vmin=0, vmax=1)
        ax.set_title("\n".join(text), fontsize=9)
    fig.tight_layout()
    return fig


def _overlay(image: np.ndarray, mask: np.ndarray, alpha: float) -> np.ndarray:
    if image.ndim == 2:
        image = np.repeat(image[..., None], 3, axis=-1)
    colours = colorize_mask(mask) / 255.0
    blend = (1 - alpha) * image + alpha * colours
    return np.where(mask[..., None] > 0, blend, image)


def show_masks(images, masks, *, alpha=0.6, class_names=None, titles=None, ncols=None):
    """Semantic masks drawn over their images with the course's colormap, and a legend.

    Args:
        images: ``(N, H, W, 3)`` floats in ``[0, 1]``.
        masks: ``(N, H, W)`` (or ``(N, H, W, 1)``) integer masks, 0 = background, ``c + 1`` for
            class ``c``, or a model's ``(N, H, W, C + 1)`` probabilities (argmax is taken); or a
            dict ``{"true": masks, "predicted": probabilities, ...}`` to compare: one row per
            image, one column for the image and one per entry.
        alpha: opacity of the colours over object pixels (background is left as it is).
        class_names: object class names (or segmentation names starting with
            ``"background"``); default as many ``CLASS_NAMES`` as needed, at least 3.
        titles: ``N`` titles (single-mask form only).
        ncols: images per row (single-mask form only).

    Returns:
        The ``Figure``; its legend has one entry per object class.
    """
    images = _images(images)
    n = len(images)
    columns = dict(masks) if isinstance(masks, dict) else {"": masks}
    for key, value in columns.items():
        value = _numpy(value)
        if value.ndim == 4 and value.shape[-1] == 1:
            value = value[..., 0]
        elif value.ndim == 4 and np.issubdtype(value.dtype, np.floating):
            value = value.argmax(axis=-1)  # per-pixel class probabilities, as a model outputs
        if value.ndim == 2:
            value = value[None]
        if value.shape != images.shape[:3]:
            raise ValueError(
                f"Expected masks of shape {images.shape[:3]} to match the images. "
                f"Received: {value.shape}" + (f" for {key!r}" if key else "")
            )
        columns[key] = value
    if not 0 <= alpha <= 1:
        raise ValueError(f"Expected 0 <= alpha <= 1. Received: alpha={alpha!r}")
    names = _segmentation_names(class_names, np.max([m.max(initial=0) for m in columns.values()]))
    if isinstance(masks, dict):
        fig = plt.figure(figsize=(_PANEL_INCHES * (len(columns) + 1), _PANEL_INCHES * n + 0.4))
        for i in range(n):
            ax = fig.add_subplot(n, len(columns) + 1, i * (len(columns) + 1) + 1)
            ax.imshow(images[i], vmin=0, vmax=1)
            ax.set_axis_off()
            ax.set_title("image" if i == 0 else "", fontsize=9)
            for j, (key, value) in enumerate(columns.items()):
                ax = fig.add_subplot(n, len(columns) + 1, i * (len(columns) + 1) + j + 2)
                ax.imshow(_overlay(images[i], value[i], alpha))
                ax.set_axis_off()
                ax.set_title(str(key) if i == 0 else "", fontsize=9)
    else:
        titles = _same_length(n, "titles", titles) if titles is not None else [""] * n
        fig, axes = _grid(n, ncols, extra_height=0.1)
        for ax, image, mask, title in zip(axes, images, columns[""], titles, strict=True):
            ax.imshow(_overlay(image, mask, alpha))
            ax.set_title(str(title), fontsize=9)
    fig.tight_layout(rect=(0, 0.08, 1, 1))
    _legend(fig, names)
    return fig


def _box_list(boxes, n: int, what: str) -> list[np.ndarray]:
    """Per image a float (k, 4) array, from (N, 4), (N, k, 4) or a list of (k_i, 4)/(4,)."""
    if isinstance(boxes, np.ndarray) or hasattr(boxes, "numpy"):
        boxes = _numpy(boxes)
        if boxes.ndim == 2:
            boxes = boxes[:, None]
    boxes = _same_length(n, what, boxes)
    out = []
    for b in boxes:
        b = _numpy(b).astype(np.float32).reshape(-1, 4) if np.size(b) else np.zeros((0, 4))
        out.append(b)
    return out


def _per_box(values, boxes: list[np.ndarray], what: str) -> list[np.ndarray]:
    if values is None:
        return [np.full(len(b), None) for b in boxes]
    if isinstance(values, np.ndarray) or hasattr(values, "numpy"):
        values = _numpy(values)
        if values.ndim == 1:
            values = values[:, None]
    values = _same_length(len(boxes), what, values)
    out = []
    for i, (v, b) in enumerate(zip(values, boxes, strict=True)):
        v = np.atleast_1d(_numpy(v))
        # Padded detection targets (class -1) have more entries than boxes: keep the first k.
        if len(v) < len(b):
            raise ValueError(f"Expected {len(b)} {what} for image {i}. Received: {len(v)}")
        out.append(v[: len(b)])
    return out


def _draw_boxes(ax, boxes, labels, scores, names, size, box_format, true: bool) -> None:
    height, width = size
    scale = np.array([width, height, width, height], dtype=np.float32)
    if box_format == "rel_xywh":
        boxes = boxes * scale
    for box, label, score in zip(boxes, labels, scores, strict=True):
        x, y, w, h = (float(v) for v in box)
        if label is not None and int(label) < 0:  # padding of detection targets
            continue
        colour = _TRUE_COLOUR
        if not true:
            colour = COLORMAP[int(label) + 1] / 255 if label is not None else "red"
        ax.add_patch(
            Rectangle(
                (x - 0.5, y - 0.5),  # pixel x covers [x - 0.5, x + 0.5] in imshow's coordinates
                w,
                h,
                fill=False,
                edgecolor=colour,
                linewidth=2 if true else 1.5,
                linestyle="--" if true else "-",
            )
        )
        text = [] if label is None else [names[int(label)]]
        text += [] if score is None else [f"{float(score):.2f}"]
        if text and not true:
            ax.text(
                x - 0.5,
                y - 1,
                " ".join(text),
                color="black",
                fontsize=7,
                va="bottom",
                bbox={"facecolor": colour, "alpha": 0.8, "pad": 1, "lw": 0},
            )


def show_boxes(
    images,
    boxes,
    labels=None,
    scores=None,
    class_names=None,
    true_boxes=None,
    box_format="xywh",
    *,
    true_labels=None,
    titles=None,
    ncols=None,
):
    """Boxes drawn on images: predicted ones solid and labelled, true ones dashed.

    Args:
        images: ``(N, H, W, 3)`` floats in ``[0, 1]``.
        boxes: per image one box ``(N, 4)``, several ``(N, k, 4)``, or a list of ``(k_i, 4)``;
            ``(x, y, w, h)`` with ``(x, y)`` the upper-left corner.
        labels: class ids of the boxes (``(N,)``, ``(N, k)`` or a list); ``-1`` entries (padding)
            are skipped. Predicted boxes take their class's colour.
        scores: confidences of the boxes, same layout as `labels`, written after the class name.
        class_names: names of the class ids (default ``CLASS_NAMES``).
        true_boxes: ground-truth boxes, same layouts as `boxes`, drawn dashed in lime.
        box_format: ``"xywh"`` (pixels) or ``"rel_xywh"`` (normalised by width and height).
        true_labels: class ids of the true boxes (only to skip ``-1`` padding).
        titles: ``N`` titles.
        ncols: images per row.

    Returns:
        The ``Figure``, one axes per image (with a legend when `true_boxes` is given).
    """
    if box_format not in ("xywh", "rel_xywh"):
        raise ValueError(f"Expected box_format 'xywh' or 'rel_xywh'. Received: {box_format!r}")
    images = _images(images)
    n = len(images)
    names = tuple(class_names) if class_names is not None else CLASS_NAMES
    predicted = _box_list(boxes, n, "box sets")
    labels = _per_box(labels, predicted, "labels")
    scores = _per_box(scores, predicted, "scores")
    truth = _box_list(true_boxes, n, "true box sets") if true_boxes is not None else None
    titles = _same_length(n, "titles", titles) if titles is not None else [""] * n
    fig, axes = _grid(n, ncols, extra_height=0.1)
    for i, ax in enumerate(axes):
        ax.imshow(images[i], vmin=0, vmax=1)
        ax.set_title(str(titles[i]), fontsize=9)
        if truth is not None:
            true_ids = (
                _per_box(true_labels, truth, "true labels")[i]
                if true_labels is not None
                else np.full(len(truth[i]), None)
            )
            _draw_boxes(
                ax,
                truth[i],
                true_ids,
                np.full(len(truth[i]), None),
                names,
                images.shape[1:3],
                box_format,
                true=True,
            )
        _draw_boxes(
            ax, predicted[i], labels[i], scores[i], names, images.shape[1:3], box_format, true=False
        )
    fig.tight_layout(rect=(0, 0.06 if truth is not None else 0, 1, 1))
    if truth is not None:
        fig.legend(
            handles=[
                Line2D([], [], color=_TRUE_COLOUR, linestyle="--", label="true"),
                Line2D([], [], color="gray", label="predicted (class colour)"),
            ],
            loc="lower center",
            ncol=2,
            frameon=False,
        )
    return fig


def plot_history(history, metrics=None):
    """Learning curves: one panel per metric, training and validation (``val_``) together.

    Args:
        history: a Keras ``History`` (what ``fit`` returns) or its ``.history`` dict.
        metrics: names to plot (without ``val_``); default every training metric.

    Returns:
        The ``Figure``, one axes per metric.
    """
    logs = history.history if hasattr(history, "history") else history
    if not isinstance(logs, dict) or not logs:
        raise ValueError(f"Expected a Keras History or a non-empty dict. Received: {history!r}")
    available = [k for k in logs if not k.startswith("val_")]
    metrics = (
        available if metrics is None else [metrics] if isinstance(metrics, str) else list(metrics)
    )
    unknown = [m for m in metrics if m not in logs]
    if unknown or not metrics:
        raise ValueError(f"Expected metrics among {available}. Received: metrics={metrics!r}")
    fig = plt.figure(figsize=(3.6 * len(metrics), 2.8))
    for i, name in enumerate(metrics):
        ax = fig.add_subplot(1, len(metrics), i + 1)
        for key, label in ((name, "train"), (f"val_{name}", "validation")):
            if key in logs:
                values = np.asarray(logs[key], dtype=float)
                ax.plot(np.arange(1, len(values) + 1), values, marker=".", label=label)
        ax.set_xlabel("epoch")
        ax.set_title(name)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def show_scene_tasks(scene, class_names=None):
    """One scene, four ways: classification, semantic segmentation, boxes, instance masks.

    Args:
        scene: a ``dlcourse.data.Scene`` (e.g. ``make_scenes(1)[0]``).
        class_names: default ``scene.class_names``.

    Returns:
        The ``Figure`` with four axes, titled by task, and a legend of the classes.
    """
    names = tuple(class_names) if class_names is not None else scene.class_names
    image = _images(scene.image)[0]
    fig = plt.figure(figsize=(4 * _PANEL_INCHES, _PANEL_INCHES + 0.9))
    axes = [fig.add_subplot(1, 4, i + 1) for i in range(4)]
    for ax in axes:
        ax.set_axis_off()
    objects = ", ".join(names[int(c)] for c in scene.labels) or "nothing"
    axes[0].imshow(image, vmin=0, vmax=1)
    axes[0].set_title(f"classification\n{objects}", fontsize=9)
    axes[1].imshow(_overlay(image, np.asarray(scene.mask), 0.75))
    axes[1].set_title("semantic segmentation\n(instances merged)", fontsize=9)
    axes[2].imshow(image, vmin=0, vmax=1)
    _draw_boxes(
        axes[2],
        scene.boxes,
        scene.labels,
        np.full(len(scene.labels), None),
        names,
        image.shape[:2],
        "xywh",
        true=False,
    )
    axes[2].set_title("localization / detection\n(x, y, w, h)", fontsize=9)
    # Each instance its own colour, whatever its class: what instance segmentation separates.
    palette = plt.get_cmap("tab10")
    instances = image.copy()
    for j, pixels in enumerate(scene.instance_masks):
        instances[pixels] = 0.25 * image[pixels] + 0.75 * np.array(palette(j % 10)[:3])
    axes[3].imshow(instances)
    count = len(scene.labels)
    axes[3].set_title(
        f"instance segmentation\n{count} instance{'' if count == 1 else 's'}", fontsize=9
    )
    fig.tight_layout(rect=(0, 0.1, 1, 1))
    _legend(fig, ("background", *names))
    return fig


def _stage(layer_name: str) -> str:
    """The stage a layer belongs to: its name up to the first ``_`` (``enc1_conv`` → ``enc1``)."""
    return layer_name.split("_")[0]


def model_stages(model, input_size=(32, 32)) -> list[dict]:
    """The stages of a functional model, in order, with what each computes at one input size.

    A *stage* is the run of layers whose names share the prefix before the first ``_`` (the
    course's builders name layers ``enc1_conv``, ``enc1_bn``, ``enc1_relu``, ``down1_pool``, …).

    Args:
        model: a functional ``keras.Model`` with one input ``(None, None, channels)`` or of a
            fixed size.
        input_size: ``(height, width)`` of the image the shapes are computed for.

    Returns:
        A list of dicts, input first: ``name``, ``layers`` (layer class names), ``shape``
        (``(height, width, channels)`` of the stage's output), ``params``, ``inputs`` (names of
        the earlier stages it reads from).
    """
    from dlcourse.models.graph import layer_calls

    try:
        calls = list(layer_calls(model))
    except (AttributeError, ValueError):  # a model without a graph (unbuilt Sequential)
        calls = []
    if not calls:
        raise ValueError(f"Expected a functional model with layers. Received: {model!r}")
    owner, stages = {}, {}
    for layer, node in calls:
        name = _stage(layer.name)
        stage = stages.setdefault(name, {"name": name, "layers": [], "params": 0, "inputs": []})
        stage["layers"].append(type(layer).__name__)
        stage["params"] += layer.count_params() if layer.built else 0
        for tensor in node.input_tensors:
            source = owner.get(id(tensor))
            if source is not None and source != name and source not in stage["inputs"]:
                stage["inputs"].append(source)
        for tensor in node.outputs:
            owner[id(tensor)] = name
        stage["output"] = node.outputs[0]
    ordered = list(stages.values())
    import keras

    probe = keras.Model(model.inputs, [s.pop("output") for s in ordered])
    channels = model.inputs[0].shape[-1]
    outputs = probe([np.zeros((1, *input_size, channels), "float32")])
    for stage, out in zip(ordered, outputs, strict=True):
        stage["shape"] = tuple(int(v) for v in out.shape[1:])
    return ordered


def draw_model(model, input_size=(32, 32), title: str | None = None):
    """Draw a functional model as a row of stages: box height ∝ resolution, width ∝ channels.

    Each stage of :func:`model_stages` is a box labelled with its name, its layers and its
    output ``height×width×channels``; its height is proportional to the output height, so an
    encoder–decoder draws as a V (down, then up again) and a same-resolution network as a flat
    band. Arrows join consecutive stages; a connection that jumps over stages (the switches of
    a max unpooling, a skip connection) is drawn as an arc above the boxes.

    Args:
        model: a functional ``keras.Model`` (e.g. from :func:`dlcourse.models.build_encoder_decoder`).
        input_size: ``(height, width)`` the shapes are computed for.
        title: figure title; default the model's name.

    Returns:
        The ``Figure`` (one axes; one rectangle per stage, in order).
    """
    stages = model_stages(model, input_size)
    tallest = max(s["shape"][0] for s in stages)
    widest = max(s["shape"][-1] for s in stages)
    width = 1.6
    fig, ax = plt.subplots(figsize=(max(6.0, 1.25 * len(stages)), 4.2))
    centres, top = {}, 2.3
    for i, stage in enumerate(stages):
        h, w, c = stage["shape"]
        height = 2.0 * h / tallest
        box = width * (0.35 + 0.65 * c / widest)
        x = i * 2.0
        centres[stage["name"]] = x
        ax.add_patch(
            Rectangle((x - box / 2, -height / 2), box, height, facecolor="tab:blue", alpha=0.35)
        )
        kinds = sorted(set(stage["layers"]), key=stage["layers"].index)
        label = "\n".join(k.replace("Normalization", "Norm") for k in kinds)
        ax.text(x, 1.15, stage["name"], ha="center", va="bottom", fontsize=8, weight="bold")
        ax.text(x, -1.15, f"{h}×{w}×{c}\n{label}", ha="center", va="top", fontsize=6.5)
    for i, stage in enumerate(stages):
        for source in stage["inputs"]:
            x0, x1 = centres[source], centres[stage["name"]]
            if i > 0 and source == stages[i - 1]["name"]:
                ax.annotate("", (x1 - 0.55, 0), (x0 + 0.55, 0), arrowprops={"arrowstyle": "->"})
            else:
                top = max(top, 1.6 + 0.14 * abs(x1 - x0))
                ax.annotate(
                    "",
                    (x1, 1.05),
                    (x0, 1.05),
                    arrowprops={
                        "arrowstyle": "->",
                        "color": "tab:red",
                        "connectionstyle": "arc3,rad=-0.25",
                    },
                )
    ax.set_xlim(-1.2, 2.0 * (len(stages) - 1) + 1.2)
    ax.set_ylim(-2.6, top)
    ax.set_axis_off()
    ax.set_title(title or model.name, fontsize=10)
    fig.tight_layout()
    return fig
