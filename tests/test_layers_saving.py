"""Every course layer is registered under ``dlcourse>`` and a model using all of them round-trips."""

import keras
import numpy as np
import pytest

from dlcourse import layers


@pytest.mark.parametrize("name", layers.__all__)
def test_registered_under_the_package_name(name):
    cls = getattr(layers, name)
    assert keras.saving.get_registered_name(cls) == f"dlcourse>{name}"
    assert keras.saving.get_registered_object(f"dlcourse>{name}") is cls


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


def test_model_with_every_layer_round_trips(tmp_path):
    """Saved and loaded with no `custom_objects`: importing `dlcourse.layers` registered them."""
    model = _model_with_every_layer()
    model.save(tmp_path / "every_layer.keras")
    loaded = keras.saving.load_model(tmp_path / "every_layer.keras")
    assert [type(layer) for layer in loaded.layers] == [type(layer) for layer in model.layers]
    x = np.random.default_rng(0).normal(size=(2, 6, 8, 2)).astype("float32")
    for got, expected in zip(loaded(x), model(x), strict=True):
        np.testing.assert_array_equal(got, expected)


def test_load_model_registers_the_course_objects_in_a_fresh_process(tmp_path):
    """The documented path: ``dlcourse.load_model`` in a process that imported nothing else of
    the package. The control: plain ``keras.saving.load_model`` there does not know the layers."""
    import subprocess
    import sys

    path = tmp_path / "every_layer.keras"
    _model_with_every_layer().save(path)
    load = (
        "import sys, dlcourse\n"
        "assert 'tensorflow' not in sys.modules\n"
        f"model = dlcourse.load_model({str(path)!r})\n"
        "print(sorted(type(layer).__name__ for layer in model.layers\n"
        "             if type(layer).__module__.startswith('dlcourse.')))\n"
    )
    fresh = subprocess.run([sys.executable, "-c", load], capture_output=True, text=True)
    assert fresh.returncode == 0, fresh.stderr
    expected = sorted(
        type(layer).__name__
        for layer in _model_with_every_layer().layers
        if type(layer).__module__.startswith("dlcourse.")
    )
    assert len(expected) == 5
    assert fresh.stdout.strip() == str(expected)

    plain = f"import keras\nkeras.saving.load_model({str(path)!r})\n"
    control = subprocess.run([sys.executable, "-c", plain], capture_output=True, text=True)
    assert control.returncode != 0
    assert "dlcourse>" in control.stderr


def test_a_saved_encoder_decoder_loads_where_only_the_models_were_imported(tmp_path):
    """``training.experiments`` reloads cached models in a fresh process; it imports
    ``dlcourse.models``, which must register the course layers those models use."""
    import subprocess
    import sys

    from dlcourse.models import build_encoder_decoder

    path = tmp_path / "max_unpool.keras"
    build_encoder_decoder(3, upsampling="max_unpool", filters=(4, 8)).save(path)
    code = (
        "import keras\n"
        "from dlcourse.training import experiments\n"
        f"model = keras.models.load_model({str(path)!r})\n"
        "print(sorted({type(layer).__name__ for layer in model.layers} & "
        "{'MaxPoolingWithArgmax2D', 'MaxUnpooling2D'}))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == "['MaxPoolingWithArgmax2D', 'MaxUnpooling2D']"
