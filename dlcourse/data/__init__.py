"""The course's offline data: generated scenes of shapes, with every annotation, and pipelines.

``make_scenes`` draws coloured shapes (``CLASS_NAMES``) on noisy, textured backgrounds and returns
the targets of every vision task for the same images: class id, semantic mask, boxes and instance
masks (formats in ``docs/CONVENTIONS.md``). ``task_arrays`` and ``make_dataset`` turn them into
``model.fit`` inputs. Pure NumPy and deterministic per seed; importing this package does not
import matplotlib (plots live in ``dlcourse.viz``).

Example:

>>> from dlcourse.data import make_scenes, task_arrays
>>> scenes = make_scenes(8, image_size=32, objects=1, seed=0)
>>> scenes
Scenes(n=8, image_size=(32, 32), classes=('circle', 'square', 'triangle'), objects per scene 1–1)
>>> x, y = task_arrays(scenes, "localization")
>>> x.shape, y["class"].shape, y["box"].shape
((8, 32, 32, 3), (8,), (8, 4))
"""

from dlcourse.data.collection import Scene, Scenes
from dlcourse.data.masks import (
    COLORMAP,
    colorize_mask,
    count_regions,
    dilate,
    outline_distance,
    resize_mask,
    segmentation_names,
)
from dlcourse.data.patches import sample_patches
from dlcourse.data.pipelines import TASKS, make_dataset, task_arrays
from dlcourse.data.scenes import MIN_CONTRAST, MIN_VISIBLE_PIXELS, make_scenes
from dlcourse.data.shapes import CLASS_NAMES, MIN_OBJECT_SIZE, shape_template

__all__ = [
    "CLASS_NAMES",
    "COLORMAP",
    "MIN_CONTRAST",
    "MIN_OBJECT_SIZE",
    "MIN_VISIBLE_PIXELS",
    "TASKS",
    "Scene",
    "Scenes",
    "colorize_mask",
    "count_regions",
    "dilate",
    "make_dataset",
    "make_scenes",
    "outline_distance",
    "resize_mask",
    "sample_patches",
    "segmentation_names",
    "shape_template",
    "task_arrays",
]
