"""An nbgrader course folder, the course's lessons, and where submissions come from.

Layout (nbgrader's, so ``nbgrader`` commands and formgrader work on the same folder)::

    COURSE/
      nbgrader_config.py          written once (course id, gradebook path)
      gradebook.db                nbgrader's gradebook (release writes the cells, grade the scores)
      source/<assignment>/        instructor versions, with solutions and hidden tests
      release/<assignment>/       student versions (stubs, no hidden tests, no outputs)
      submitted/<student>/<assignment>/<notebook>.ipynb
      autograded/<student>/<assignment>/<notebook>.ipynb   executed, with hidden tests (instructor)
      feedback/<student>/<assignment>/<notebook>.html      for the student (no hidden tests)
      grades.csv

An assignment is any folder of ``source/``: a course lesson copied there by ``release`` (named
like the lesson file, e.g. ``01_image_classification``) or one the instructor wrote.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import re
import shutil
import unicodedata
from pathlib import Path

from dlcourse.grading.sandbox import package_dir

STUDENT_ID = re.compile(r"[^A-Za-z0-9._@+-]+")


def lessons_dir() -> Path | None:
    """The course's lessons: ``$DLCOURSE_LESSONS``, else ``lessons/`` next to the package."""
    env = os.environ.get("DLCOURSE_LESSONS")
    candidates = [Path(env)] if env else []
    candidates += [package_dir().parent / "lessons", package_dir() / "lessons"]
    return next((c for c in candidates if c.is_dir()), None)


def course_lessons() -> dict[str, Path]:
    """Lesson name (file stem, e.g. ``01_image_classification``) -> its source notebook."""
    folder = lessons_dir()
    if folder is None:
        return {}
    return {p.stem: p for p in sorted(folder.glob("[0-9][0-9]_*.ipynb"))}


def safe_name(text: str) -> str:
    """A student or assignment id that is a harmless single path component."""
    name = STUDENT_ID.sub("_", text).strip("._-")
    return name[:80] or "unnamed"


def student_id(text: str) -> str:
    """``safe_name`` made one-to-one for ids it would merge: a name with any non-ASCII character
    (``zoë``, its NFD form ``zoe\u0308``) keeps a short hash of its exact text, so it never
    becomes the plain ``zoe`` (or ``zo``) of another student."""
    name = safe_name(text)
    if text.isascii():
        return name
    digest = hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:8]
    return f"{name[:71]}-{digest}"


def id_key(student: str) -> str:
    """What two ids look like to a person, a spreadsheet or a case-insensitive, normalising
    file system (macOS, Windows): NFKC-normalised and case-folded."""
    return unicodedata.normalize("NFKC", student).casefold()


def look_alikes(students) -> dict[str, list[str]]:
    """student -> the other ids that differ from it only in case or Unicode form."""
    groups: dict[str, list[str]] = {}
    for s in students:
        groups.setdefault(id_key(s), []).append(s)
    return {s: [o for o in g if o != s] for g in groups.values() if len(g) > 1 for s in g}


def linked(path: Path) -> str | None:
    """Why a submitted notebook is refused as a link, or None for an ordinary file.

    ``path`` is ``submitted/<student>/<assignment>/<file>``: the file, its assignment folder and
    its student folder must not be symbolic links, and the file must have one name only (a hard
    link to the instructor's ``source/`` notebook or to ``/etc/passwd`` is the same file).
    """
    for level, what in ((path, "the file"), (path.parent, "its folder"),
                        (path.parent.parent, "the student's folder")):  # fmt: skip
        if level.is_symlink():
            return f"{what} is a symbolic link, not a file (submit a copy of the notebook)"
    try:
        links = path.lstat().st_nlink
    except OSError:
        return None
    if path.is_file() and links > 1:
        return f"a hard link ({links} names for one file), not a copy of its own"
    return None


@dataclasses.dataclass
class Course:
    root: Path

    def __post_init__(self):
        self.root = Path(self.root).resolve()

    source = property(lambda self: self.root / "source")
    release_dir = property(lambda self: self.root / "release")
    submitted = property(lambda self: self.root / "submitted")
    autograded = property(lambda self: self.root / "autograded")
    feedback = property(lambda self: self.root / "feedback")
    gradebook = property(lambda self: self.root / "gradebook.db")
    grades_csv = property(lambda self: self.root / "grades.csv")
    db_url = property(lambda self: f"sqlite:///{self.root / 'gradebook.db'}")

    def init(self) -> None:
        """Create the folder and an nbgrader config so that nbgrader's own commands work here."""
        self.source.mkdir(parents=True, exist_ok=True)
        config = self.root / "nbgrader_config.py"
        if not config.exists():
            config.write_text(
                "# Written by `dlcourse release`; nbgrader's commands read it too.\n"
                "c = get_config()  # noqa: F821\n"
                'c.CourseDirectory.course_id = "dlcourse"\n'
                'c.CourseDirectory.db_url = "sqlite:///gradebook.db"\n'
                "# Test cells are restored from the gradebook; deleted ones are put back.\n"
                "c.OverwriteCells.add_missing_cells = True\n"
            )

    def assignments(self) -> list[str]:
        if not self.source.is_dir():
            return []
        return sorted(
            p.name for p in self.source.iterdir() if p.is_dir() and any(p.glob("*.ipynb"))
        )

    def notebooks(self, assignment: str) -> list[Path]:
        return sorted((self.source / assignment).glob("*.ipynb"))

    def resolve(self, name: str, *, copy: bool = True) -> str:
        """The assignment a name means: a folder of ``source/``, or a course lesson (``01``,
        ``01_image_classification``, a path to its notebook), copied into ``source/`` if needed.

        Raises:
            LookupError: nothing matches; the message lists what exists.
        """
        path = Path(name)
        if path.suffix == ".ipynb" and path.is_file():
            stem = safe_name(path.stem)
            if copy and not (self.source / stem).exists():
                (self.source / stem).mkdir(parents=True)
                shutil.copy2(path, self.source / stem / f"{stem}.ipynb")
            return stem
        mine = self.assignments()
        if name in mine:
            return name
        lessons = course_lessons()
        matches = [
            n
            for n in sorted(set(lessons) | set(mine))
            if n == name or n.split("_", 1)[0] == name.zfill(2) or n.startswith(name + "_")
        ]
        if len(matches) > 1:
            raise LookupError(f"{name!r} is ambiguous: {', '.join(matches)}")
        if not matches:
            known = sorted(set(lessons) | set(mine))
            raise LookupError(
                f"No lesson or assignment {name!r}. Known: {', '.join(known) or 'none'}"
            )
        match = matches[0]
        if match not in mine and copy:
            (self.source / match).mkdir(parents=True, exist_ok=True)
            shutil.copy2(lessons[match], self.source / match / f"{match}.ipynb")
        return match

    def all_names(self) -> list[str]:
        """Every course lesson and every assignment of ``source/``."""
        return sorted(set(course_lessons()) | set(self.assignments()))


@dataclasses.dataclass
class Submission:
    student: str
    assignment: str
    folder: Path  # submitted/<student>/<assignment>
    look_alikes: list[str] = dataclasses.field(default_factory=list)  # ids only case/form apart


def find_submissions(course: Course, assignment: str) -> list[Submission]:
    """Every ``submitted/<student>/<assignment>/`` folder, sorted by student."""
    out = []
    if course.submitted.is_dir():
        for student in sorted(p for p in course.submitted.iterdir() if p.is_dir()):
            folder = student / assignment
            if folder.is_dir():
                out.append(Submission(student.name, assignment, folder))
    return out


def collect(course: Course, folder: Path, assignments: list[str]) -> list[tuple[Path, Path]]:
    """Import a folder of downloaded notebooks (LMS, Colab, e-mail) into ``submitted/``.

    Each ``.ipynb`` under ``folder`` belongs to the assignment whose name occurs in its file name
    (or to the only assignment given); the student id is the file name without the assignment's
    name (``alice_01_image_classification.ipynb`` -> ``alice``), or the name of the folder it is
    in when nothing is left (``alice/01_image_classification.ipynb``). Returns (from, to) pairs.
    """
    moved = []
    for path in sorted(Path(folder).rglob("*.ipynb")):
        if ".ipynb_checkpoints" in path.parts or path.is_symlink():
            continue
        if path.stat().st_nlink > 1:
            continue
        stem = path.stem
        target = next((a for a in sorted(assignments, key=len, reverse=True) if a in stem), None)
        if target is None:
            short = [a for a in assignments if a.split("_", 1)[0] + "_" in stem]
            target = (
                short[0] if len(short) == 1 else (assignments[0] if len(assignments) == 1 else None)
            )
        if target is None:
            continue
        rest = stem.replace(target, " ") if target in stem else stem
        rest = re.sub(r"(?i)\b(copy of|submission)\b", " ", rest).strip(" _-.()")
        if re.search(r"[^\W\d_]", rest):
            student = student_id(rest)
        elif path.parent != Path(folder):
            # Moodle names a student's folder "Full Name_12345_assignsubmission_file_"
            parent = re.sub(r"_\d+_assignsubmission_\w*$", "", path.parent.name)
            student = student_id(parent)
        else:
            student = student_id(stem)
        notebooks = [p.name for p in course.notebooks(target)]
        name = notebooks[0] if len(notebooks) == 1 else path.name
        dest = course.submitted / student / target / name
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, dest)
        moved.append((path, dest))
    return moved
