"""Start one submission's Jupyter kernel: limits, an unprivileged user, a private working folder.

Runs as a script, ``python -I _launch.py SPEC.json``, as the first process inside the sandbox (or
directly, when the instructor chose to grade without one). It imports nothing from ``dlcourse``
(importing the package would import TensorFlow before the limits are set) and only the standard
library. In order:

1. read the kernel's connection file while still the grader's user (it is not readable by others);
2. when started as root with a target uid: drop to that uid (``nobody``), so the kernel has no
   privileges and ``RLIMIT_NPROC`` (which root ignores) caps fork bombs;
3. create the working folder and copy the staged files (the submission's notebook and the lesson's
   released data files) into it, so the student's code writes only to the private, size-capped /tmp;
   in the sandbox the kernel's ZMQ sockets go there too (``ipc``), not into a folder of the host;
4. set the resource limits (address space, CPU seconds, file size, processes, no core dumps);
5. ``execve`` the kernel (``_kernel.py``: output caps, then IPython's kernel) in isolated mode
   (``python -I``: neither the working folder nor any other folder the student can write is on
   ``sys.path``), with exactly the environment of the spec (nothing of the grader's environment,
   no ``JPY_PARENT_PID``).
"""

import json
import os
import resource
import shutil
import sys


def _limit(name: str, soft: int, hard: int | None = None) -> None:
    kind = getattr(resource, name, None)
    if kind is None:
        return
    hard = soft if hard is None else hard
    try:
        _, current_hard = resource.getrlimit(kind)
        if current_hard != resource.RLIM_INFINITY:
            soft, hard = min(soft, current_hard), min(hard, current_hard)
        resource.setrlimit(kind, (soft, hard))
    except (ValueError, OSError) as e:  # e.g. macOS refuses RLIMIT_AS: grade without that cap
        print(f"dlcourse launcher: {name} not set ({e})", file=sys.stderr)


def main(spec_path: str) -> None:
    with open(spec_path) as f:
        spec = json.load(f)
    with open(spec["connection_file"]) as f:
        connection = f.read()

    uid, gid = spec.get("uid"), spec.get("gid")
    if uid is not None and os.getuid() == 0:
        os.setgroups([])
        os.setgid(gid)
        os.setuid(uid)

    home, work, ipc = spec["home"], spec["workdir"], spec.get("ipc")
    for folder in (home, work, spec["tmpdir"], *([ipc] if ipc else [])):
        os.makedirs(folder, mode=0o700, exist_ok=True)
    if ipc:  # the grader reaches these sockets through /proc/<sandbox>/root
        info = json.loads(connection)
        info["ip"] = os.path.join(ipc, "k")
        connection = json.dumps(info)
    stage = spec.get("stage")
    if stage and os.path.isdir(stage):
        shutil.copytree(stage, work, dirs_exist_ok=True)
    connection_file = os.path.join(home, "kernel.json")
    fd = os.open(connection_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(connection)

    limits = spec["limits"]
    _limit("RLIMIT_CORE", 0)
    if limits.get("fsize"):
        _limit("RLIMIT_FSIZE", limits["fsize"])
    if limits.get("memory"):
        _limit("RLIMIT_AS", limits["memory"])
    if limits.get("cpu"):
        # SIGXCPU at the soft limit; SIGKILL at the hard one if the student's code catches SIGXCPU.
        _limit("RLIMIT_CPU", limits["cpu"], limits["cpu"] + 2)
    if limits.get("nproc") and os.getuid() != 0:
        # counted per user over the whole machine: the grader adds what its user already runs
        _limit("RLIMIT_NPROC", limits["nproc"] + limits.get("nproc_base", 0))

    os.chdir(work)
    python = spec["python"]
    kernel = [spec["kernel"], str(spec["max_output_chars"]), "-f", connection_file]
    argv = [python, "-I", "-B", *kernel, *spec.get("kernel_args", [])]
    os.execve(python, argv, spec["env"])


if __name__ == "__main__":
    main(sys.argv[1])
