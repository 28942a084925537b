#!/usr/bin/env python3
"""The course's commands, the same on Linux, macOS and Windows (only Python 3.10+ needed).

    python3 tasks.py course        set up, then execute every notebook in order
    python3 tasks.py test          set up, then lint, unit tests and every notebook (nbval)

and also:

    python3 tasks.py setup         create .venv and install the pinned requirements
    python3 tasks.py notebook 06   execute one notebook (a number or a file name)
    python3 tasks.py strip         clear the outputs of every notebook before a commit
    python3 tasks.py learner       the hand-out for learners (solutions stubbed) in build/learner/
    python3 tasks.py site          the course as web pages and reveal.js slides, in build/site/
                                   [--executed DIR] (default build/notebooks) [--out DIR]
    python3 tasks.py ship NAME CHECKPOINT "COMMAND" ["NOTE"] [--tta none|flip|shifts]
                                   (maintainers) copy a trained checkpoint into the package as
                                   pretrained weights NAME, float16, with its model card

Set-up creates a virtual environment in .venv (or $FER_VENV) and installs
requirements.txt and fer_helpers into it, once; it reinstalls only when
requirements.txt or pyproject.toml change. Every other task runs inside it.
Executed notebooks go to build/notebooks/; the sources stay without outputs.
`setup` and `test` also install Chromium (Debian's package) when it is missing,
for the browser test of the site, and fetch onnxruntime-web (`npm pack`, a pinned
version, into build/vendor/) for the site's live demo; `site` executes only the
notebooks that have no up-to-date executed copy.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
NOTEBOOKS = ROOT / "notebooks"
EXECUTED = ROOT / "build" / "notebooks"
VENV = Path(os.environ.get("FER_VENV") or ROOT / ".venv")
BIN = VENV / ("Scripts" if os.name == "nt" else "bin")
PYTHON = BIN / ("python.exe" if os.name == "nt" else "python")
STAMP = VENV / "fer-course-installed.txt"
CHROMIUM = Path("/usr/bin/chromium")  # Debian's package; the browser test drives it


def run(*command: str | Path, env: dict[str, str] | None = None) -> None:
    """Run a command from the repository root; stop with its exit status if it fails."""
    print("+", " ".join(str(c) for c in command), flush=True)
    result = subprocess.run([str(c) for c in command], cwd=ROOT, env=env)
    if result.returncode != 0:
        sys.exit(result.returncode)


def requirements_hash() -> str:
    digest = hashlib.sha256()
    for name in ("requirements.txt", "pyproject.toml"):
        digest.update((ROOT / name).read_bytes())
    return digest.hexdigest()


def setup() -> None:
    """Create the virtual environment and install everything the course needs, once."""
    if not PYTHON.exists():
        print(f"creating a virtual environment in {VENV}", flush=True)
        venv.create(VENV, with_pip=True)
    if STAMP.exists() and STAMP.read_text().strip() == requirements_hash():
        return
    print("installing the course requirements (a few minutes the first time) ...", flush=True)
    run(PYTHON, "-m", "pip", "install", "-q", "-r", "requirements.txt", "-e", ".")
    STAMP.write_text(requirements_hash() + "\n")


def ensure_chromium() -> None:
    """Install Debian's Chromium for the site's browser test, where apt-get and root allow it.

    Elsewhere it says what to install; the browser test then skips, saying why.
    """
    if CHROMIUM.exists():
        return
    can_apt = sys.platform.startswith("linux") and shutil.which("apt-get")
    if not (can_apt and hasattr(os, "geteuid") and os.geteuid() == 0):
        print(
            f"note: no Chromium at {CHROMIUM}; the browser test of the site will be skipped. "
            "On Debian or Ubuntu: `sudo apt-get install chromium` (elsewhere, see README).",
            flush=True,
        )
        return
    print("installing Chromium (Debian's package) for the browser test ...", flush=True)
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    for command in (["apt-get", "update", "-q"], ["apt-get", "install", "-y", "-q", "chromium"]):
        print("+", " ".join(command), flush=True)
        if subprocess.run(command, env=env, stdout=subprocess.DEVNULL).returncode != 0:
            # The course works without it; only the browser test needs it (and says so).
            print(f"note: `{' '.join(command)}` failed: no Chromium for the browser test")
            return


def ensure_demo_runtime() -> None:
    """Fetch onnxruntime-web for the site's live demo into build/vendor/ (npm pack, once).

    `site` fetches it too when it is missing; without npm the site is built without the demo.
    """
    fetch = "from fer_helpers.course.demo import fetch_runtime; print(fetch_runtime())"
    result = subprocess.run([str(PYTHON), "-c", fetch], cwd=ROOT, capture_output=True, text=True)
    if result.returncode != 0:
        why = (result.stderr.strip().splitlines() or ["?"])[-1]
        print(f"note: no onnxruntime-web for the site's live demo: {why}", flush=True)


def in_venv() -> bool:
    return Path(sys.prefix).resolve() == VENV.resolve()


def notebook_paths(which: str | None = None) -> list[Path]:
    paths = sorted(NOTEBOOKS.glob("[0-9][0-9]_*.ipynb"))
    if which is None:
        return paths
    chosen = [p for p in paths if p.name.startswith(which.zfill(2)) or p.name == which]
    if not chosen:
        sys.exit(f"no notebook {which!r} in {NOTEBOOKS}: have {', '.join(p.name for p in paths)}")
    return chosen


def execute(paths: list[Path], into: Path = EXECUTED) -> None:
    """Execute notebooks top to bottom into build/notebooks/, as Restart & Run All would."""
    import nbformat

    from fer_helpers.course.kernels import AskingClient as Client

    into.mkdir(parents=True, exist_ok=True)
    for path in paths:
        start = time.perf_counter()
        print(f"executing {path.relative_to(ROOT)} ...", flush=True)
        notebook = nbformat.read(path, as_version=4)
        client = Client(
            notebook,
            timeout=None,
            kernel_name="python3",
            resources={"metadata": {"path": str(NOTEBOOKS)}},
        )
        try:
            client.execute()
        finally:
            nbformat.write(notebook, into / path.name)
        seconds = time.perf_counter() - start
        print(f"  done in {seconds:.0f} s -> {shown(into / path.name)}", flush=True)


def shown(path: Path) -> Path:
    """A path as the user would type it: relative to the repository when inside it."""
    return path.relative_to(ROOT) if path.is_relative_to(ROOT) else path


def site(argv: list[str]) -> None:
    """Web pages and slide decks of the executed notebooks, with an index, in build/site/."""
    from fer_helpers.course.site import build_site, stale_notebooks

    parser = argparse.ArgumentParser(prog="python3 tasks.py site", description=site.__doc__)
    parser.add_argument("--executed", type=Path, default=EXECUTED, help="executed notebooks")
    parser.add_argument("--out", type=Path, default=ROOT / "build" / "site", help="site folder")
    args = parser.parse_args(argv)
    executed, out = args.executed.resolve(), args.out.resolve()
    start = time.perf_counter()
    todo = stale_notebooks(notebook_paths(), executed)
    if todo:
        print(f"{len(todo)} notebook(s) without an up-to-date executed copy: executing them")
        execute(todo, executed)
    built = build_site(notebook_paths(), executed, out)
    for page in built.pages:
        print(f"  {page.stem}: page and slides in {built.seconds[page.stem]:.1f} s")
    if built.demo:
        print(
            f"  live demo: {shown(built.demo.page)}, {built.demo.model} in onnxruntime-web, "
            f"{built.seconds['demo']:.1f} s"
        )
    for note in built.notes:
        print(f"  note: {note}")
    print(
        f"site: {shown(out / 'index.html')}, {len(built.pages)} pages and decks "
        f"(slides/) in {built.seconds['total']:.0f} s"
        + (f"; {time.perf_counter() - start:.0f} s with executing" if todo else ""),
        flush=True,
    )


def strip() -> None:
    """Clear outputs and execution counts, so notebooks are committed clean."""
    for path in notebook_paths():
        notebook = json.loads(path.read_text())
        for cell in notebook["cells"]:
            if cell["cell_type"] == "code":
                cell["outputs"], cell["execution_count"] = [], None
        path.write_text(json.dumps(notebook, indent=1, ensure_ascii=False) + "\n")


def split_tta_option(argv: list[str]) -> tuple[list[str], str | None]:
    """`ship`'s arguments without `--tta MODE` / `--tta=MODE`, and MODE (None if absent).

    Raises ValueError for a missing or unknown mode, or for `--tta` given twice.
    """
    from fer_helpers.inference import TTA_MODES

    options = [at for at, arg in enumerate(argv) if arg == "--tta" or arg.startswith("--tta=")]
    if not options:
        return argv, None
    if len(options) > 1:
        raise ValueError("--tta given more than once")
    at = options[0]
    if "=" in argv[at]:
        tta, rest = argv[at].split("=", 1)[1], argv[:at] + argv[at + 1 :]
    elif at + 1 < len(argv):
        tta, rest = argv[at + 1], argv[:at] + argv[at + 2 :]
    else:
        raise ValueError("--tta needs a mode")
    if tta not in TTA_MODES:
        raise ValueError(f"unknown --tta mode {tta!r}; expected one of {', '.join(TTA_MODES)}")
    return rest, tta


def ship(argv: list[str]) -> None:
    """Ship a checkpoint as pretrained weights with a model card (scored on validation)."""
    usage = (
        'usage: python3 tasks.py ship NAME CHECKPOINT "COMMAND THAT TRAINED IT" ["NOTE"]'
        " [--tta none|flip|shifts]"
    )
    try:  # the test-time augmentation it is scored with from now on
        argv, tta = split_tta_option(argv)
    except ValueError as error:
        sys.exit(f"{error}\n{usage}")
    if len(argv) not in (3, 4):
        sys.exit(usage)
    from fer_helpers.data import load_data
    from fer_helpers.pretrained import model_card_path, publish

    name, checkpoint, command, *note = argv
    summary = publish(checkpoint, name, load_data(), command, *note, tta=tta)
    print(
        f"shipped {name}: validation accuracy {summary['accuracy']:.2%}, balanced "
        f"{summary['balanced_accuracy']:.2%}; card {shown(model_card_path(name))}"
    )


def test() -> None:
    """Lint, then unit tests and every notebook under nbval in tiny mode, in one pytest run."""
    run(PYTHON, "-m", "ruff", "check", "fer_helpers", "tests", "notebooks", "tasks.py")
    env = dict(os.environ, FER_TINY="1")
    run(
        PYTHON,
        "-m",
        "pytest",
        "tests",
        "notebooks",
        "--nbval-lax",
        "--nbval-current-env",
        "-p",
        "no:cacheprovider",
        env=env,
    )


def absolute_data_dir() -> None:
    """FER2013_DIR relative to where the command runs, not to notebooks/ (the kernels' folder)."""
    given = os.environ.get("FER2013_DIR")
    if given and given != "synthetic":
        os.environ["FER2013_DIR"] = str(Path(given).expanduser().resolve())


def main(argv: list[str]) -> None:
    absolute_data_dir()
    task, *rest = argv or ["--help"]
    if task in ("-h", "--help", "help"):
        print(__doc__)
        return
    if task not in ("setup", "course", "test", "notebook", "strip", "learner", "site", "ship"):
        sys.exit(f"unknown task {task!r}: see `python3 tasks.py --help`")
    if task == "strip":
        strip()
        return
    if not in_venv():
        setup()
        if task in ("setup", "test"):
            ensure_chromium()
            ensure_demo_runtime()
        if task != "setup":
            # Go on inside the environment, where torch, nbclient and pytest are installed.
            sys.exit(subprocess.run([str(PYTHON), __file__, task, *rest], cwd=ROOT).returncode)
        return
    if task == "course":
        execute(notebook_paths())
    elif task == "notebook":
        if not rest:
            sys.exit("which notebook? e.g. `python3 tasks.py notebook 01`")
        execute(notebook_paths(rest[0]))
    elif task == "test":
        test()
    elif task == "site":
        site(rest)
    elif task == "ship":
        ship(rest)
    elif task == "learner":
        from fer_helpers.course.handouts import write_handout

        dest = ROOT / "build" / "learner"
        start = time.perf_counter()
        written = write_handout(ROOT, dest)
        seconds = time.perf_counter() - start
        print(
            f"wrote {len(written)} files into {shown(dest)}/ in {seconds:.1f} s:"
            " hand the folder out as it is (its README.md says what is inside)"
        )


if __name__ == "__main__":
    main(sys.argv[1:])
