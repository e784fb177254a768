"""``python manage.py course NAME [--wait]``: run one of the course's snippets."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from newapp.course import SNIPPETS


class Command(BaseCommand):
    help = "Send the tasks of one of the course's snippets (--wait: print their results)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("name", nargs="?", help=", ".join(SNIPPETS))
        parser.add_argument("--wait", action="store_true", help="wait for the results")
        parser.add_argument("--timeout", type=float, default=60.0)

    def handle(self, *args: Any, **options: Any) -> None:
        name = options["name"]
        if name is None:
            for known, run in SNIPPETS.items():
                self.stdout.write(f"{known:22} {(run.__doc__ or '').strip().splitlines()[0]}")
            return
        if name not in SNIPPETS:
            raise CommandError(f"unknown snippet {name!r}: one of {', '.join(SNIPPETS)}")
        for result in SNIPPETS[name]():
            if not options["wait"]:
                self.stdout.write(result.id)
                continue
            try:
                value = result.get(timeout=options["timeout"], propagate=False)
            except TimeoutError:
                value = "(no result yet)"
            self.stdout.write(f"{result.id} {result.state} {value!r}")
