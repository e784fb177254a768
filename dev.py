#!/usr/bin/env python3
"""Developer entry point; needs only Python 3.11+.

    python3 dev.py demo    # a worker on the embedded SQLite broker running the examples
    python3 dev.py test    # lint, type-check and run the test suite
    python3 dev.py lint    # ruff, mypy and the import layers only

Each command creates ./.venv and installs what it needs on first use.
"""

from __future__ import annotations

import os
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
PY = VENV / "bin" / "python"
EXTRAS = {"demo": "", "test": "[test,redis,amqp,postgres]", "lint": "[test,redis,amqp,postgres]"}


def ensure_venv(extras: str) -> None:
    if not PY.exists():
        print(f"creating {VENV} ...", flush=True)
        venv.EnvBuilder(with_pip=True).create(VENV)
    marker = VENV / f".installed{extras or '[core]'}"
    stamp = str((ROOT / "pyproject.toml").stat().st_mtime)
    if marker.exists() and marker.read_text() == stamp:
        return
    print(f"installing celeriac{extras} into {VENV} ...", flush=True)
    subprocess.run([str(PY), "-m", "pip", "install", "-q", "--upgrade", "pip"], check=True)
    subprocess.run(
        [str(PY), "-m", "pip", "install", "-q", "-e", f".{extras}"], cwd=ROOT, check=True
    )
    marker.write_text(stamp)


def run(*cmd: str) -> int:
    print("+", " ".join(cmd), flush=True)
    return subprocess.call(cmd, cwd=ROOT)


def lint() -> int:
    return (
        run(str(VENV / "bin" / "ruff"), "check", "src", "tests", "examples", "bench", "dev.py")
        or run(str(VENV / "bin" / "mypy"))
        or run(str(VENV / "bin" / "lint-imports"), "--no-cache")
    )


def main(argv: list[str]) -> int:
    command = argv[0] if argv else "help"
    if command not in EXTRAS:
        print(__doc__)
        return 2
    ensure_venv(EXTRAS[command])
    if command == "demo":
        return run(str(PY), "examples/demo/run_demo.py")
    if command == "lint":
        return lint()
    code = lint()
    pytest = run(str(PY), "-m", "pytest", "-q", "-p", "no:cacheprovider", *argv[1:])
    return code or pytest


if __name__ == "__main__":
    os.environ.setdefault("PYTHONDONTWRITEBYTECODE", "1")
    sys.exit(main(sys.argv[1:]))
