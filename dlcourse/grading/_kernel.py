"""The kernel process's own start: cap its output, then run IPython's kernel.

The launcher execs ``python -I -B _kernel.py MAX_CHARS -f CONNECTION [kernel args]`` (isolated
mode: no current folder, no script folder, no user site-packages on ``sys.path``, no ``PYTHON*``
variables). Standard library and ipykernel only: nothing here may import a student's file.

Output is capped where it is written, before it becomes a message: every text written to
``sys.stdout``/``sys.stderr`` (and to file descriptors 1 and 2, which ipykernel forwards through
the same streams, subprocesses included) counts against ``MAX_CHARS`` per execution request; the
rest is dropped after one notice. So a 1 GB ``print`` or a 200,000-character line of ``\\r``
never leaves the kernel, and the grader parses at most ``MAX_CHARS`` of stream text per cell.
Code that removes this cap reaches the grader's own transport limits (``execute.py``).
"""

import sys
import threading

NOTICE = "\n[dlcourse: output truncated at {:,} characters]\n"
"""Written once per execution request when its output reaches the cap; the grader reports it."""


def cap_stream_output(limit: int) -> None:
    """Make ipykernel's output streams drop text beyond ``limit`` characters per request."""
    from ipykernel import iostream

    write = iostream.OutStream.write
    lock = threading.Lock()
    used: dict = {}  # request msg_id -> characters written (only the current request kept)
    notice = NOTICE.format(limit)

    def capped_write(self, string):
        if not isinstance(string, str):
            return write(self, string)  # ipykernel's own TypeError
        parent = self.parent_header or {}
        key = parent.get("msg_id")
        with lock:
            if key not in used:
                used.clear()
            before = used.get(key, 0)
            used[key] = before + len(string)
        if before + len(string) <= limit:
            return write(self, string)
        if before <= limit:
            write(self, string[: limit - before] + notice)
        return len(string)

    iostream.OutStream.write = capped_write


def main(argv: list[str]) -> None:
    limit, kernel_args = int(argv[0]), argv[1:]
    cap_stream_output(limit)
    from ipykernel import kernelapp

    # IPython >= 9.7 honours -I (sys.flags.safe_path); older versions need ignore_cwd
    kernelapp.launch_new_instance([*kernel_args, "--InteractiveShellApp.ignore_cwd=True"])


if __name__ == "__main__":
    main(sys.argv[1:])
