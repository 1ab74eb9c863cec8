"""Benchmark: how close a training step of each course model comes to the machine's peak FLOP/s.

**Peak** (the limit, measured in the same run): a large float32 matmul (``2 n³`` FLOPs) and a large
3×3 convolution (``2 × multiply-adds``), each one ``tf.function`` without XLA, as Keras runs on a CPU.
The peak is the faster of the two.

**Achieved**: one training step (``train_on_batch``: forward, backward, Adam update) of the naive
FCN, the encoder–decoder of every upsampling method and the classification + localization network,
on a fixed batch of generated scenes. Its FLOPs follow the usual convention

    training FLOPs per step = 3 × 2 × multiply-adds (batch of 1) × batch

(2 FLOPs per multiply-add; the backward pass costs about twice the forward pass: one product for
the gradient with respect to the input, one for the weights). Multiply-adds come from
``dlcourse.metrics.model_cost`` (convolutions, transposed convolutions, dense layers; BatchNorm,
activations, pooling and unpooling are not counted, so layers that only move memory show up as a
lower share of the peak). The share of the peak is achieved FLOP/s ÷ peak FLOP/s.

The peak operations and the model steps are timed round-robin (``repeats`` rounds, each timing
every model step once and each peak operation three times), so a change of load on a shared
machine hits all of them alike; the share is computed from the best time of each (the peak, an
upper bound, gets three times the chances to meet a quiet moment, so the share errs low) and, in
the JSON, from the medians. ``cpu_per_wall`` (process
CPU seconds per wall second during the step) says how many cores the step kept busy.

**Arithmetic alone** (:func:`arithmetic_step`), per model: the forward and backward passes of only
the layers whose multiply-adds are counted, each on the tensor it gets in the model, timed in
the same rounds. Its share of the peak is what narrow layers allow on this machine; the step's
distance from it is the memory-bound rest (BatchNorm, activations, pooling, unpooling, loss,
optimizer).

Run ``python -m benchmarks.bench_efficiency [--quick]`` (prints JSON) or call ``run()``;
``--options`` compares training settings (:func:`options`).
"""

from __future__ import annotations

import argparse
import json

import numpy as np

CONVENTION = "training FLOPs = 3 x 2 x multiply-adds x batch (forward 1x, backward 2x)"
SIZES = {
    # matmul n; conv batch, side, channels; models' batch and image side; timing rounds
    "full": {"matmul": 2048, "conv": (16, 64, 128), "batch": 32, "image_size": 64, "repeats": 6},
    "quick": {"matmul": 512, "conv": (4, 32, 64), "batch": 8, "image_size": 32, "repeats": 3},
}


def _peak_ops(matmul_n: int, conv: tuple[int, int, int]) -> dict:
    """``name -> (callable, flops, description)`` for the matmul and the convolution."""
    import tensorflow as tf

    a = tf.random.stateless_uniform((matmul_n, matmul_n), seed=(1, 2))
    b = tf.random.stateless_uniform((matmul_n, matmul_n), seed=(3, 4))
    batch, side, channels = conv
    x = tf.random.stateless_uniform((batch, side, side, channels), seed=(5, 6))
    k = tf.random.stateless_uniform((3, 3, channels, channels), seed=(7, 8))

    # Reduced to a scalar so that fetching the result costs nothing next to the product.
    @tf.function(jit_compile=False)
    def matmul():
        return tf.reduce_sum(tf.linalg.matmul(a, b))

    @tf.function(jit_compile=False)
    def convolution():
        return tf.reduce_sum(tf.nn.conv2d(x, k, 1, "SAME"))

    conv_macs = batch * side * side * 9 * channels * channels
    return {
        "matmul": (lambda: matmul().numpy(), 2 * matmul_n**3, f"{matmul_n}x{matmul_n} float32"),
        "conv": (
            lambda: convolution().numpy(),
            2 * conv_macs,
            f"3x3, {channels}->{channels} channels, batch {batch}, {side}x{side}",
        ),
    }


def _segmenter(method: str, num_classes: int):
    """The model lessons 05–06 train (``dlcourse.training.experiments.build_segmenter`` where present)."""
    try:
        from dlcourse.training.experiments import build_segmenter
    except ImportError:  # the experiments module is newer than this checkout
        from dlcourse.models import build_encoder_decoder, build_naive_fcn

        if method == "naive_fcn":
            return build_naive_fcn(6, 32, num_classes, batch_norm=True)
        return build_encoder_decoder(num_classes, upsampling=method)
    return build_segmenter(method, num_classes)


def _models(batch: int, size: int) -> dict:
    """``name -> (build, x, y, input_shape)``: every model with a fixed batch of scenes."""
    from dlcourse.data import make_scenes, task_arrays
    from dlcourse.detection.localization import build_localizer, compile_localizer
    from dlcourse.models import UPSAMPLING_METHODS

    scenes = make_scenes(batch, image_size=size, seed=0)
    x, y = task_arrays(scenes, "segmentation")
    num_classes = 4  # 3 object classes + background

    def segmenter(method):
        def build():
            import keras

            model = _segmenter(method, num_classes)
            model.compile(optimizer="adam", loss=keras.losses.SparseCategoricalCrossentropy())
            return model

        return build

    single = make_scenes(batch, image_size=size, objects=1, seed=0)
    xl, yl = task_arrays(single, "localization")
    models = {name: (segmenter(name), x, y) for name in ("naive_fcn", *UPSAMPLING_METHODS)}
    models["localizer"] = (
        lambda: compile_localizer(build_localizer(3, (size, size, 3))),
        xl,
        yl,
    )
    return models


CEILING = "arithmetic alone: "


def arithmetic_step(model, x, cost: dict):
    """``(step, multiply_adds)``: forward and backward of only the layers ``model_cost`` counts
    (convolutions, transposed convolutions, dense), each alone on the input it gets in the model
    for the batch ``x``, with the gradients of its input and weights (a random upstream gradient:
    no loss, BatchNorm, separate activation layers, pooling, unpooling or optimizer); ``step()``
    returns ``(outputs, gradients)``. Its share of the peak is the most a training step of this
    model could reach on this machine with these layer shapes; ``multiply_adds`` is the per-image
    count of the layers included."""
    import tensorflow as tf

    chosen, inputs = _counted_layers(model, x, cost)
    upstream = [
        tf.random.stateless_normal(layer.compute_output_shape(tuple(t.shape)), seed=(i, 1))
        for i, (layer, t) in enumerate(zip(chosen, inputs, strict=True))
    ]
    weights = [w.value for layer in chosen for w in layer.trainable_weights]

    @tf.function(jit_compile=False)
    def step():
        with tf.GradientTape() as tape:
            tape.watch(inputs)
            outputs = [layer(t) for layer, t in zip(chosen, inputs, strict=True)]
        grads = tape.gradient(outputs, [*inputs, *weights], output_gradients=upstream)
        # The outputs are returned so that the forward passes run: a convolution's gradients
        # need its input, weights and upstream gradient but not its output, so TensorFlow
        # prunes a forward pass nothing reads, and the step would do 2 of the 3 counted parts.
        return outputs, grads

    return step, cost["multiply_adds"]


def _counted_layers(model, x, cost: dict):
    """``(layers, inputs)``: the layers ``cost`` counts multiply-adds for, with the tensor each
    gets in ``model`` for the batch ``x``; a nested model (a backbone) is opened up."""
    import keras
    import tensorflow as tf

    from dlcourse.metrics import model_cost
    from dlcourse.models.graph import layer_calls

    counted = {r["name"] for r in cost["layers"] if r["multiply_adds"] > 0}
    # the tensor each call receives in this graph (a nested model's own .input is its inside)
    calls = [(layer, node) for layer, node in layer_calls(model) if layer.name in counted]
    targets = [layer for layer, _ in calls]
    probe = keras.Model(model.inputs, [node.input_tensors[0] for _, node in calls])
    values = [tf.constant(t) for t in keras.tree.flatten(probe([x], training=False))]
    layers, inputs = [], []
    for layer, value in zip(targets, values, strict=True):
        if isinstance(layer, keras.Model):
            inner = model_cost(layer, tuple(value.shape[1:]))
            more, their_inputs = _counted_layers(layer, value.numpy(), inner)
            layers += more
            inputs += their_inputs
        else:
            layers.append(layer)
            inputs.append(value)
    return layers, inputs


def run(quick: bool = False) -> dict:
    """Peak FLOP/s and each model's training-step FLOP/s, timed round-robin.

    Returns:
        ``{"convention", "config", "peak": {"matmul": {...}, "conv": {...}, "gflops_best",
        "gflops_median"}, "models": {name: {"params", "multiply_adds", "gflop_per_step",
        "best_s", "median_s", "cpu_per_wall", "gflops_best", "share_of_peak",
        "share_of_peak_median"} | {"error"}}}``.
    """
    import dlcourse

    dlcourse.register_keras_objects()  # and the quiet TensorFlow import
    from dlcourse.metrics import model_cost, time_call

    cfg = SIZES["quick" if quick else "full"]
    batch, size = cfg["batch"], cfg["image_size"]
    steps, flops, info = {}, {}, {}
    for name, (fn, n_flops, what) in _peak_ops(cfg["matmul"], cfg["conv"]).items():
        steps[name], flops[name], info[name] = fn, n_flops, {"what": what}
    for name, (build, x, y) in _models(batch, size).items():
        try:
            model = build()
            cost = model_cost(model, (size, size, 3))
            steps[name] = lambda m=model, x=x, y=y: m.train_on_batch(x, y)
            flops[name] = 6 * cost["multiply_adds"] * batch
            info[name] = {"params": cost["params"], "multiply_adds": cost["multiply_adds"]}
            for _ in range(2):  # tracing, allocation
                steps[name]()
        except Exception as exc:  # one broken model does not hide the others
            steps.pop(name, None)
            info[name] = {"error": f"{type(exc).__name__}: {exc}"}
            continue
        try:
            steps[CEILING + name], counted = arithmetic_step(model, x, cost)
            flops[CEILING + name] = 6 * counted * batch
            info[CEILING + name] = {"multiply_adds": counted}
            for _ in range(2):
                steps[CEILING + name]()
        except Exception as exc:  # the ceiling is extra: the model's row stays
            steps.pop(CEILING + name, None)
            info.pop(CEILING + name, None)
            info[name]["arithmetic_alone"] = {"error": f"{type(exc).__name__}: {exc}"}
    for name in ("matmul", "conv"):
        steps[name]()  # tracing
    walls = {name: [] for name in steps}
    cpus = {name: [] for name in steps}
    peak_samples = (
        3  # per round: a peak is an upper bound, so it gets more chances at a quiet moment
    )
    for _ in range(cfg["repeats"]):
        for name, fn in steps.items():
            for _ in range(peak_samples if name in ("matmul", "conv") else 1):
                _, wall, cpu = time_call(fn)
                walls[name].append(wall)
                cpus[name].append(cpu)
    for name in steps:
        best, median = min(walls[name]), float(np.median(walls[name]))
        info[name].update(
            gflop_per_step=round(flops[name] / 1e9, 3),
            best_s=round(best, 5),
            median_s=round(median, 5),
            cpu_per_wall=round(float(np.median(cpus[name]) / median), 2),
            gflops_best=round(flops[name] / best / 1e9, 2),
            gflops_median=round(flops[name] / median / 1e9, 2),
        )
    peak = {name: info.pop(name) for name in ("matmul", "conv")}
    peak_best = max(p["gflops_best"] for p in peak.values())
    peak_median = max(p["gflops_median"] for p in peak.values())
    for row in info.values():
        if "error" not in row:
            row["share_of_peak"] = round(row["gflops_best"] / peak_best, 4)
            row["share_of_peak_median"] = round(row["gflops_median"] / peak_median, 4)
    for name in [n for n in info if n.startswith(CEILING)]:
        ceiling = info.pop(name)
        info[name[len(CEILING) :]]["arithmetic_alone"] = ceiling
    return {
        "convention": CONVENTION,
        "config": {"batch": batch, "image_size": size, "repeats": cfg["repeats"], "quick": quick},
        "peak": {**peak, "gflops_best": peak_best, "gflops_median": peak_median},
        "models": info,
    }


def markdown(result: dict, machine: str) -> str:
    """Two tables: the peak operations, then each model's share of the peak."""
    peak, cfg = result["peak"], result["config"]
    lines = [
        f"| peak operation | what | GFLOP/s best ({machine}) | GFLOP/s median |",
        "| --- | --- | ---: | ---: |",
    ]
    for name in ("matmul", "conv"):
        p = peak[name]
        lines.append(
            f"| {name} | {p['what']} | {p['gflops_best']:.1f} | {p['gflops_median']:.1f} |"
        )
    lines += [
        "",
        f"Training step, batch {cfg['batch']} of {cfg['image_size']}×{cfg['image_size']} scenes; "
        f"{result['convention']}; share = achieved ÷ peak ({peak['gflops_best']:.1f} GFLOP/s), "
        f"best of {cfg['repeats']} rounds taken round-robin (peak: best of 3 per round).",
        "",
        f"| model | params | GFLOP/step | step ms best ({machine}) | cores busy | "
        "achieved GFLOP/s | **share of peak** | its arithmetic alone: ms, share of peak |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for name, row in result["models"].items():
        if "error" in row:
            lines.append(f"| {name} | failed: {row['error'][:120]} | | | | | | |")
            continue
        alone = row.get("arithmetic_alone")
        if alone is None:
            alone = "—"
        elif "error" in alone:
            alone = f"failed: {alone['error'][:80]}"
        else:
            alone = f"{alone['best_s'] * 1000:.1f} ms, {alone['share_of_peak']:.1%}"
        lines.append(
            f"| {name} | {row['params']:,} | {row['gflop_per_step']:.2f} | "
            f"{row['best_s'] * 1000:.1f} | {row['cpu_per_wall']:.1f} | {row['gflops_best']:.1f} | "
            f"**{row['share_of_peak']:.1%}** | {alone} |"
        )
    lines += [
        "",
        "Its arithmetic alone: the forward and backward passes of only the layers counted "
        "above (convolutions, transposed convolutions, dense), each on the input it gets in the "
        "model, with a random upstream gradient: no loss, BatchNorm, separate activation "
        "layers, pooling, unpooling or optimizer (an activation built into a layer, such as the "
        "output's softmax, stays in). Its share is the most a training step of these layer "
        "shapes reaches on this machine; narrow layers (3–64 channels) keep it below the peak, "
        "which is measured on 128 channels. The step ÷ this time is what the rest of the step "
        "costs on top.",
    ]
    return "\n".join(lines)


def headline(result: dict) -> list[tuple[str, str]]:
    peak = result["peak"]
    ok = {k: v for k, v in result["models"].items() if "error" not in v}
    rows = [
        (
            "peak FLOP/s (matmul / 3×3 conv)",
            f"{peak['matmul']['gflops_best']:.0f} / {peak['conv']['gflops_best']:.0f} GFLOP/s",
        )
    ]
    if ok:
        shares = {k: v["share_of_peak"] for k, v in ok.items()}
        rows.append(("training step, share of peak", _share_range(
            shares, "the peak operations met a busier moment than the steps; not a valid "
            "measurement, see the load average",
        )))  # fmt: skip
        alone = {k: v["arithmetic_alone"]["share_of_peak"] for k, v in ok.items()
                 if "share_of_peak" in v.get("arithmetic_alone", {})}  # fmt: skip
        if alone:
            rows.append((
                "its convolutions and dense layers alone (no BatchNorm, pooling, loss, optimizer)",
                _share_range(
                    alone, "not a valid measurement: the peak operations met a busier moment, "
                    "or the timed step did less than its FLOP count says",
                ),
            ))  # fmt: skip
    return rows


def _share_range(shares: dict, invalid: str) -> str:
    """``"20% (a) to 40% (b)"``, the lowest and highest of ``shares`` (model: share of peak),
    with ``invalid`` said when a share is above the peak."""
    low, high = min(shares, key=shares.get), max(shares, key=shares.get)
    text = f"{shares[low]:.0%} ({low}) to {shares[high]:.0%} ({high})"
    return text + (f" (above 100 %: {invalid})" if shares[high] > 1 else "")


OPTIONS = ("default", "jit_compile", "batch_64", "batch_128", "fused_batchnorm")
"""The training settings :func:`options` compares (docs/MEASUREMENTS.md has the result)."""


def fuse_batchnorm(model) -> int:
    """Make every BatchNormalization layer of ``model`` train through TensorFlow's fused kernel
    (``FusedBatchNormV3``: statistics, normalisation and its gradient in one oneDNN op each)
    instead of Keras 3's composition of ``ops.moments`` and ``ops.batch_normalization``; returns
    how many layers changed. Same result up to rounding (the fused op's variance is unbiased, so
    it is rescaled for the moving average as Keras computes it). A TensorFlow-only measurement
    for ``--options fused_batchnorm``, done before the first step traces the model."""
    import types

    import tensorflow as tf

    from benchmarks.bench_peers import batchnorm_layers

    def call(self, inputs, training=None, mask=None):
        # 4-D and channels last; Keras 3.13 (Colab's pin) has no batch renormalization attribute
        fusable = self._reduction_axes == [0, 1, 2] and not getattr(self, "renorm", False)
        if not (training and self.trainable and fusable) or mask is not None:
            return type(self).call(self, inputs, training=training, mask=mask)
        empty = tf.constant([], tf.float32)
        y, mean, variance, *_ = tf.raw_ops.FusedBatchNormV3(
            x=inputs, scale=self.gamma.value, offset=self.beta.value, mean=empty,
            variance=empty, epsilon=self.epsilon, is_training=True, data_format="NHWC",
        )  # fmt: skip
        n = tf.cast(tf.reduce_prod(tf.shape(inputs)[:-1]), tf.float32)
        variance = variance * (n - 1.0) / n
        m = self.momentum
        self.moving_mean.assign(self.moving_mean * m + mean * (1.0 - m))
        self.moving_variance.assign(self.moving_variance * m + variance * (1.0 - m))
        return y

    layers = [layer for layer in batchnorm_layers(model) if layer.center and layer.scale]
    for layer in layers:
        layer.call = types.MethodType(call, layer)
    return len(layers)


def options(names=None, repeats: int = 5, models=None) -> dict:
    """Each model's share of the peak under other training settings, measured round-robin.

    ``default`` is :func:`run`'s step (batch 32, graph mode, no XLA); ``jit_compile`` compiles the
    step with XLA; ``batch_64`` / ``batch_128`` feed more images per step (FLOPs scale with the
    batch, so the share compares directly); ``fused_batchnorm`` trains BatchNorm through
    TensorFlow's fused kernel (:func:`fuse_batchnorm`). Every (model, setting) step and the peak matmul are
    timed once per round, ``repeats`` rounds; the share uses the best times. Thread settings are
    not a setting here: TensorFlow already uses both cores for one op (``cpu_per_wall`` ≈ 1.9 in
    :func:`run`), and inter-op parallelism cannot add a core that is not there.
    """
    import dlcourse

    dlcourse.register_keras_objects()
    from dlcourse.metrics import model_cost, time_call

    cfg = SIZES["full"]
    size = cfg["image_size"]
    names = list(names or OPTIONS)
    steps, flops, rows = {}, {}, {}
    peak = _peak_ops(cfg["matmul"], cfg["conv"])["matmul"]
    steps["peak"], flops["peak"] = peak[0], peak[1]
    for option in names:
        batch = {"batch_64": 64, "batch_128": 128}.get(option, cfg["batch"])
        for name, (build, x, y) in _models(batch, size).items():
            if models and name not in models:
                continue
            key = f"{name}/{option}"
            try:
                model = build()
                if option == "jit_compile":
                    model.jit_compile = True  # before the first step builds the train function
                if option == "fused_batchnorm" and not fuse_batchnorm(model):
                    raise ValueError(
                        f"Expected BatchNormalization layers in {name}. Received: none"
                    )
                cost = model_cost(model, (size, size, 3))
                steps[key] = lambda m=model, x=x, y=y: m.train_on_batch(x, y)
                flops[key] = 6 * cost["multiply_adds"] * batch
                for _ in range(2):
                    steps[key]()
                rows[key] = {"model": name, "option": option, "batch": batch}
            except Exception as exc:
                steps.pop(key, None)
                rows[key] = {
                    "model": name,
                    "option": option,
                    "error": f"{type(exc).__name__}: {exc}",
                }
    steps["peak"]()
    walls = {k: [] for k in steps}
    for _ in range(repeats):
        for key, fn in steps.items():
            for _ in range(3 if key == "peak" else 1):
                walls[key].append(time_call(fn)[1])
    peak_gflops = flops["peak"] / min(walls["peak"]) / 1e9
    for key, row in rows.items():
        if "error" in row:
            continue
        best = min(walls[key])
        row.update(
            step_ms=round(best * 1000, 1),
            ms_per_image=round(best * 1000 / row["batch"], 2),
            share_of_peak=round(flops[key] / best / 1e9 / peak_gflops, 4),
        )
    return {"peak_gflops": round(peak_gflops, 1), "repeats": repeats, "rows": rows}


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="tiny sizes, a smoke run")
    parser.add_argument(
        "--options", nargs="*", default=None, metavar="OPTION",
        help=f"compare training settings instead ({', '.join(OPTIONS)})",
    )  # fmt: skip
    parser.add_argument("--models", nargs="*", default=None)
    args = parser.parse_args(argv)
    if args.options is not None:
        print(json.dumps(options(args.options or None, models=args.models), indent=2))
        return
    print(json.dumps(run(args.quick), indent=2))


if __name__ == "__main__":
    main()
