"""Google Colab: repair what Colab's own package pins break, without touching its TensorFlow.

Colab pins ``protobuf`` 5.x while shipping a ``tensorflow-metadata`` whose generated code needs
protobuf 6: ``import tensorflow_datasets`` then logs a 77-line protobuf error and leaves a module
without ``load``. ``tensorflow-metadata<1.18`` was generated for protobuf 5 and repairs it;
TensorFlow, Keras, NumPy and protobuf stay as Colab has them. The lessons' install cell runs
``python -m dlcourse.course.colab repair`` after installing the course; ``.ci/colab`` runs the
same against Colab's pins (``.ci/colab-pins.txt``).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys

REPAIR_REQUIREMENT = "tensorflow-metadata<1.18"
"""What repairs ``import tensorflow_datasets`` on protobuf 5 (the last series built for it)."""

_PROBE = (
    "import tensorflow_datasets as tfds\n"
    "if not hasattr(tfds, 'load'):\n"
    "    raise SystemExit('tensorflow_datasets imported without load')\n"
)
_PROTOBUF_SIGNS = ("protobuf", "gencode", "Descriptors cannot be created")


def probe_tfds(python: str = sys.executable, timeout: float = 600) -> tuple[bool, str]:
    """``(ok, last_error_line)``: whether ``import tensorflow_datasets`` works in a fresh process."""
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    done = subprocess.run(
        [python, "-c", _PROBE], capture_output=True, text=True, timeout=timeout, env=env
    )
    if done.returncode == 0:
        return True, ""
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    protobuf = [line for line in lines if any(s in line for s in _PROTOBUF_SIGNS)]
    return False, (protobuf or lines or [f"exit status {done.returncode}"])[-1].strip()


def is_protobuf_error(line: str) -> bool:
    return any(sign in line for sign in _PROTOBUF_SIGNS)


def repair(python: str = sys.executable, pip_args: tuple[str, ...] = ()) -> int:
    """Install ``tensorflow-metadata<1.18`` only if ``import tensorflow_datasets`` fails on protobuf.

    Prints one line saying what it found and did. Returns 0 when tfds imports afterwards; 1 when
    it still fails (the lessons then use the offline look-alike for the Oxford-IIIT Pets).
    """
    ok, error = probe_tfds(python)
    if ok:
        print("dlcourse colab repair: tensorflow_datasets imports; nothing to repair")
        return 0
    if not is_protobuf_error(error):
        print(
            f"dlcourse colab repair: tensorflow_datasets fails ({error}); not a protobuf "
            "mismatch, left as it is: lesson 09 uses the offline look-alike"
        )
        return 1
    subprocess.run(
        [python, "-m", "pip", "install", "-q", *pip_args, REPAIR_REQUIREMENT], check=True
    )
    ok, after = probe_tfds(python)
    if ok:
        print(
            f"dlcourse colab repair: tensorflow_datasets failed on protobuf ({error[:80]}...); "
            f"installed {REPAIR_REQUIREMENT}: it imports now"
        )
        return 0
    print(
        f"dlcourse colab repair: installed {REPAIR_REQUIREMENT}, tensorflow_datasets still fails "
        f"({after}): lesson 09 uses the offline look-alike"
    )
    return 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m dlcourse.course.colab",
        description="Repair Colab's tensorflow_datasets/protobuf conflict (the install cell runs it).",
    )
    parser.add_argument("command", choices=["repair"])
    parser.add_argument("--python", default=sys.executable, help="the interpreter to repair")
    parser.add_argument(
        "--strict",
        action="store_true",
        help="exit 1 when tfds still fails (CI); by default exit 0, so the install cell goes on",
    )
    args = parser.parse_args(argv)
    status = repair(args.python)
    return status if args.strict else 0


if __name__ == "__main__":
    sys.exit(main())
