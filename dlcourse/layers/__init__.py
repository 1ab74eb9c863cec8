"""The course's Keras layers: the lecture's upsampling toolbox.

Every layer is registered with ``keras.saving.register_keras_serializable(package="dlcourse")``,
so a ``.keras`` model that uses one loads again once this package is imported (or through
``dlcourse.load_model``); each is tested against
the NumPy functions of ``dlcourse.reference``.

- ``NearestUnpooling2D``, ``BedOfNailsUnpooling2D`` (``unpooling.py``): fixed unpooling.
- ``MaxPoolingWithArgmax2D`` + ``MaxUnpooling2D`` (``max_unpooling.py``): max unpooling with
  switches, used as a pair.
- ``ResizeConv2D`` (``resize_conv.py``): resize, then convolve — upsampling without checkerboards.
- ``BilinearUpsamplingInitializer`` (``initializers.py``): a ``Conv2DTranspose`` kernel that starts
  as bilinear interpolation (the FCN trick).
"""

from dlcourse.quiet import import_keras

import_keras()  # quietly, before the modules below import keras

from dlcourse.layers.initializers import BilinearUpsamplingInitializer  # noqa: E402
from dlcourse.layers.max_unpooling import MaxPoolingWithArgmax2D, MaxUnpooling2D  # noqa: E402
from dlcourse.layers.resize_conv import ResizeConv2D  # noqa: E402
from dlcourse.layers.unpooling import BedOfNailsUnpooling2D, NearestUnpooling2D  # noqa: E402

__all__ = [
    "BedOfNailsUnpooling2D",
    "BilinearUpsamplingInitializer",
    "MaxPoolingWithArgmax2D",
    "MaxUnpooling2D",
    "NearestUnpooling2D",
    "ResizeConv2D",
]
