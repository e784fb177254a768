#!/usr/bin/env python3
"""Developer entry point; needs only Python 3.11+.

    python3 dev.py demo    # a worker on the embedded SQLite broker running the examples
    python3 dev.py test    # lint, type-check and run the test suite
    python3 dev.py lint    # ruff, mypy and the import layers only
    python3 dev.py celery-suite [pytest args]
                           # Celery's own integration suite against celeriac, on Redis
                           # (downloads Celery's sdist once; see docs/coming-from-celery.md)

Each command creates ./.venv and installs what it needs on first use.
"""

from __future__ import annotations

import ast
import os
import re
import shutil
import subprocess
import sys
import tarfile
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
PY = VENV / "bin" / "python"
ALL = "[test,redis,amqp,postgres,dashboard]"
EXTRAS = {"demo": "", "test": ALL, "lint": ALL, "celery-suite": ALL}

#: Celery's integration suite: the sdist it comes from and where it is kept (git-ignored).
CELERY_VERSION = "5.5.3"
SUITE = ROOT / ".celery-suite"
SUITE_REDIS = "redis://127.0.0.1:6379/1"  # no test in tests/ uses database 1


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


def rewrite_imports(source: str) -> str:
    """Celery's imports made celeriac's: ``import celery`` becomes ``import celeriac as
    celery`` and each ``from celery... import`` (or kombu) a call of the shim's
    ``imported``, which gives celeriac's names, Celery's test helpers, or placeholders that
    fail only the tests using them. Line numbers are kept."""
    lines = source.splitlines(keepends=True)
    for node in ast.walk(ast.parse(source)):
        indent = " " * getattr(node, "col_offset", 0)
        if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            if node.module.partition(".")[0] not in ("celery", "kombu"):
                continue
            names = [alias.name for alias in node.names]
            targets = ", ".join(alias.asname or alias.name for alias in node.names)
            code = (
                f"{indent}{targets}, = __import__('t.integration._celeriac_shim', "
                f"fromlist=['imported']).imported({node.module!r}, {names!r})\n"
            )
        elif isinstance(node, ast.Import):
            modules = [alias.name for alias in node.names]
            if modules == ["celery"]:
                code = f"{indent}import celeriac as celery\n"
            elif modules == ["pytest_subtests"]:  # pytest 9 has subtests built in
                code = f"{indent}pass\n"
            else:
                continue
        else:
            continue
        first, last = node.lineno - 1, node.end_lineno or node.lineno
        lines[first:last] = [code] + ["\n"] * (last - first - 1)
    return "".join(lines)


def celery_suite(args: list[str]) -> int:
    """Run Celery's t/integration against celeriac, with a real worker process (the CLI)."""
    sdist = SUITE / f"celery-{CELERY_VERSION}.tar.gz"
    if not sdist.exists():
        SUITE.mkdir(exist_ok=True)
        pip = [str(PY), "-m", "pip", "download", "-q", f"celery=={CELERY_VERSION}", "--no-deps"]
        if run(*pip, "--no-binary", ":all:", "-d", str(SUITE)):
            return 1
    work = SUITE / f"run-{os.getpid()}"  # one per run: runs on other Redis DBs can overlap
    prefix = f"celery-{CELERY_VERSION}/"
    with tarfile.open(sdist) as tar:
        for member in tar.getmembers():
            name = member.name.removeprefix(prefix)
            wanted = name == "t/__init__.py" or name.startswith("t/integration/")
            source = tar.extractfile(member) if member.isfile() and wanted else None
            if source is not None:
                (work / name).parent.mkdir(parents=True, exist_ok=True)
                (work / name).write_bytes(source.read())
    for path in (work / "t").rglob("*.py"):  # and the commands they run: celeriac's
        source = re.sub(r"""\[(\s*)(["'])celery\2,""", r"[\1\2celeriac\2,", path.read_text())
        path.write_text(rewrite_imports(source))
    shim = ROOT / "tests" / "celery_suite"
    shutil.copy(shim / "shim.py", work / "t" / "integration" / "_celeriac_shim.py")
    shutil.copy(shim / "worker.py", work / "t" / "integration" / "_celeriac_worker.py")
    with (work / "t" / "integration" / "conftest.py").open("a") as conftest:
        conftest.write("\nfrom ._celeriac_shim import *  # noqa\n")
    (work / "conftest.py").write_text('pytest_plugins = ("celeriac.contrib.pytest",)\n')
    (work / "pytest.ini").write_text(
        "[pytest]\npython_classes = test_*\ntimeout = 300\n"
        # test_security imports cryptography, which is not installed: the rest still runs
        "addopts = --continue-on-collection-errors\n"
        "filterwarnings = ignore:unknown setting 'cassandra_\n"
    )
    path = os.pathsep.join([str(VENV / "bin"), os.environ.get("PATH", "")])
    env = {**os.environ, "PYTHONPATH": str(work), "PATH": path}
    env.setdefault("CELERY_SUITE_WORKER_LOG", str(SUITE / "worker.log"))
    env.setdefault("TEST_BROKER", SUITE_REDIS)
    env.setdefault("TEST_BACKEND", env["TEST_BROKER"])
    print(f"+ broker {env['TEST_BROKER']}, result backend {env['TEST_BACKEND']}", flush=True)
    command = [str(PY), "-m", "pytest", "-p", "no:cacheprovider", *(args or ["t/integration"])]
    print("+", " ".join(command), flush=True)
    try:
        return subprocess.call(command, cwd=work, env=env)
    finally:
        shutil.rmtree(work, ignore_errors=True)


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
    if command == "celery-suite":
        return celery_suite(argv[1:])
    code = lint()
    pytest = [str(PY), "-m", "pytest", "-q", "-p", "no:cacheprovider"]
    if argv[1:]:
        return code or run(*pytest, *argv[1:])
    # Two test processes, each with its own Redis server, schemas and vhost (tests/services.py);
    # then, alone, the tests that stop a service both would share.
    parallel = run(*pytest, "-n", "2", "-m", "not serial")
    return code or run(*pytest, "-m", "serial") or parallel


if __name__ == "__main__":
    os.environ.setdefault("PYTHONDONTWRITEBYTECODE", "1")
    sys.exit(main(sys.argv[1:]))
