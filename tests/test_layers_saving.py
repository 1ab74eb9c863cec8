"""A `.keras` model with every course layer loads in a fresh process after a bare `import dlcourse`."""

import subprocess
import sys
import textwrap

import keras
import numpy as np

from dlcourse import layers

LOADER = textwrap.dedent(
    """
    import sys
    import numpy as np
    import dlcourse  # registers the layers; nothing else is imported from dlcourse
    import keras

    model = keras.saving.load_model(sys.argv[1])
    outputs = model(np.load(sys.argv[2]))
    np.savez(sys.argv[3], *[np.asarray(o) for o in outputs])
    print(sorted({type(layer).__module__.split(".")[0] for layer in model.layers}))
    """
)


def _model_with_every_layer():
    inputs = keras.Input((None, None, 2), name="image")
    pooled, switches = layers.MaxPoolingWithArgmax2D(2, name="pool")(inputs)
    unpooled = layers.MaxUnpooling2D(2, name="unpool")([pooled, switches, inputs])
    nearest = layers.NearestUnpooling2D(2, name="nearest")(pooled)
    nails = layers.BedOfNailsUnpooling2D(2, name="nails")(pooled)
    resized = layers.ResizeConv2D(2, 3, interpolation="bilinear", name="resize")(pooled)
    transposed = keras.layers.Conv2DTranspose(
        2,
        4,
        strides=2,
        padding="same",
        name="transposed",
        kernel_initializer=layers.BilinearUpsamplingInitializer(),
    )(pooled)
    return keras.Model(inputs, [unpooled, nearest, nails, resized, transposed])


def test_every_layer_loads_in_a_fresh_process(tmp_path):
    model = _model_with_every_layer()
    x = np.random.default_rng(0).normal(size=(2, 6, 8, 2)).astype("float32")
    model.save(tmp_path / "every_layer.keras")
    np.save(tmp_path / "x.npy", x)
    result = subprocess.run(
        [
            sys.executable,
            "-c",
            LOADER,
            str(tmp_path / "every_layer.keras"),
            str(tmp_path / "x.npy"),
            str(tmp_path / "out.npz"),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert "dlcourse" in result.stdout
    loaded = np.load(tmp_path / "out.npz")
    for i, expected in enumerate(model(x)):
        np.testing.assert_allclose(loaded[f"arr_{i}"], expected, rtol=1e-6, atol=1e-6)
