#!/usr/bin/env python3
"""celeriac's benchmark suite: celeriac against Celery and nine other task queues.

    python3 bench/run.py            # the full suite (make bench); results in bench/results/
    python3 bench/run.py --quick    # a tiny smoke run; results in bench/.tmp/quick/

Needs Python 3.11+ and Redis, RabbitMQ and PostgreSQL on 127.0.0.1 (see bench/README.md).
The first run creates bench/.venv and installs celeriac (from this checkout) and the peers
into it; later runs re-use it while its stamp matches. Then this script re-executes itself
in that environment and runs every workload, printing a line per run.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import subprocess
import sys
import venv
from pathlib import Path

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
VENV = BENCH / ".venv"
VENV_PYTHON = VENV / "bin" / "python"
STAMP = VENV / ".bench-installed"

# Lower bounds only. arq caps redis-py below 6 while taskiq-redis needs redis-py 8, so arq
# is installed without its dependency pins (its own dependencies, click and redis, are here).
REQUIREMENTS = [
    "celery[redis]>=5.3",
    "dramatiq[redis]>=1.16",
    "rq>=2.0",
    "huey>=2.5",
    "taskiq>=0.11",
    "taskiq-redis>=1.0",
    "saq>=0.26",
    "streaq>=7.0",
    # Taskiq's worker and celeriac's asyncio pool run on uvloop when it is installed
    "uvloop>=0.19",
    "pgqueuer[asyncpg]>=1.6",
    "procrastinate>=3.10",
    "click>=8.0",
    "redis[hiredis]>=5.0",
    "matplotlib>=3.7",
]
WITHOUT_DEPS = ["arq>=0.26"]
CELERIAC = f"{ROOT}[redis,amqp,postgres]"

WORKLOADS = ["floor", "enqueue", "bulk", "drain", "latency", "results", "brokers", "sweep",
             "memory", "events", "asyncio", "rabbitmq", "postgres", "scaleout"]  # fmt: skip


# -- the environment ------------------------------------------------------------------------


def stamp_text() -> str:
    pyproject = (ROOT / "pyproject.toml").read_bytes()
    recipe = "\n".join([sys.version, CELERIAC, *REQUIREMENTS, *WITHOUT_DEPS])
    return hashlib.sha256(recipe.encode() + pyproject).hexdigest()


def pip(*args: str) -> None:
    subprocess.run([str(VENV_PYTHON), "-m", "pip", "install", "-q", *args], cwd=ROOT, check=True)


def ensure_venv() -> None:
    """Create bench/.venv and install into it, unless its stamp says it is up to date."""
    if not VENV_PYTHON.exists():
        print(f"creating {VENV} ...", flush=True)
        venv.EnvBuilder(with_pip=True).create(VENV)
    if STAMP.exists() and STAMP.read_text() == stamp_text():
        return
    print("installing celeriac and the peers into bench/.venv ...", flush=True)
    pip("-e", CELERIAC, *REQUIREMENTS)
    pip("--no-deps", *WITHOUT_DEPS)
    STAMP.write_text(stamp_text())


def compile_sources() -> None:
    """Byte-compile celeriac's sources and the bench's own modules. The peers come from
    wheels, compiled when installed; celeriac is installed editable from src/, and where
    PYTHONDONTWRITEBYTECODE is set (or the tree is read-only) its every worker start would
    otherwise compile it again, which is not what an installed celeriac does."""
    for tree in (ROOT / "src" / "celeriac", BENCH):
        subprocess.run(
            [str(VENV_PYTHON), "-m", "compileall", "-q", "-x", r"[/\\]\.venv[/\\]", str(tree)],
            check=True,
        )


def in_bench_venv() -> bool:
    return Path(sys.prefix).resolve() == VENV.resolve()


# -- the command line -----------------------------------------------------------------------


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="tiny sizes, one run each")
    parser.add_argument("--repeat", type=int, help="runs per workload (default 3; quick 1)")
    parser.add_argument("--systems", help="comma-separated subset, e.g. celeriac,celery")
    parser.add_argument("--workloads", help=f"comma-separated subset of: {', '.join(WORKLOADS)}")
    parser.add_argument("--out", type=Path, help="where results.json/.png/.md go")
    parser.add_argument(
        "--from-json",
        type=Path,
        metavar="PATH",
        help="run nothing: print the table and redo the chart and Markdown from a results.json",
    )
    return parser.parse_args(argv)


def main(argv: list[str]) -> int:
    if sys.hexversion < 0x030B0000:
        print("bench/run.py needs Python 3.11 or newer", file=sys.stderr)
        return 2
    args = parse(argv)
    if not in_bench_venv():
        ensure_venv()
        compile_sources()
        os.execv(str(VENV_PYTHON), [str(VENV_PYTHON), str(Path(__file__).resolve()), *argv])
    from suite import run_suite

    return run_suite(args, WORKLOADS)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
