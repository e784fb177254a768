"""Rows of figures, and their table, targets, JSON file and chart."""

from __future__ import annotations

import json
import statistics
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

MAIN = "celeriac and its peers on Redis (one worker, concurrency 2)"
FLOOR = "Floor: redis-py on the same Redis"
BROKERS = "celeriac on each broker"
SWEEP = "celeriac drain on Redis by pool and concurrency"
MEMORY = "celeriac worker memory"
EVENTS = "celeriac with events off and on (Redis)"
SCALEOUT = "celeriac scale-out: four workers of concurrency 1 against one, on one queue"
SCALEOUT_BROKERS = {
    "celeriac": "Redis",
    "celeriac-postgres": "PostgreSQL",
    "celeriac-amqp": "RabbitMQ",
}
SCALEOUT_POOL = "solo"  # the pool of the target's rows (the other's rows are for comparison)
ASYNCIO = "asyncio: tasks that sleep 0.1 s, one worker at concurrency 500 (Redis)"
# the section's rows: tasks/s with start-up and steady (first task to last), and the steady
# rate's share of the ideal
ASYNCIO_RATE = "asyncio sleep"
ASYNCIO_STEADY = "asyncio sleep, steady"
ASYNCIO_SHARE = "asyncio sleep, steady, of ideal"
ASYNCIO_PEERS = {"arq": "arq", "taskiq": "Taskiq", "saq": "SAQ", "streaq": "streaq"}
RABBITMQ = "celeriac and Celery on RabbitMQ (one worker, concurrency 2)"
#: sections whose rows are compared with a celeriac system other than "celeriac" (Redis)
POSTGRES = "celeriac and the PostgreSQL task queues (one worker, concurrency 2)"
POSTGRES_PEERS = {"pgqueuer": "PgQueuer", "procrastinate": "Procrastinate"}
OURS = {RABBITMQ: "celeriac-amqp", POSTGRES: "celeriac-postgres"}
RATIO_NOTE = (
    "celeriac ÷ peer = celeriac's median divided by the peer's median for the same workload: "
    "for throughputs above 1 means celeriac is faster; for latencies and memory below 1 "
    "means celeriac is lower."
)


@dataclass
class Row:
    section: str
    workload: str
    unit: str
    system: str
    label: str
    version: str
    status: str = "ok"  # ok | failed | n/a
    reason: str = ""
    samples: list[float] = field(default_factory=list)
    runs: list[dict[str, Any]] = field(default_factory=list)
    key: str = "value"  # which figure of each run this row shows

    @property
    def median(self) -> float | None:
        return statistics.median(self.samples) if self.samples else None

    @property
    def note(self) -> str:
        """What limited the runs, e.g. a time budget that ran out (the first such note)."""
        for run in self.runs:
            if run.get("note") and self.key in run.get("note_on", ["value"]):
                return str(run["note"])
        return ""

    def figure(self) -> str:
        if self.status == "failed":
            return f"failed: {self.reason}"
        if self.status == "n/a":
            return f"n/a ({self.reason})"
        return fmt(self.median) + (f" ({self.note})" if self.note else "")

    def spread(self) -> str:
        if self.status != "ok" or len(self.samples) < 2:
            return ""
        return f"{fmt(min(self.samples))}-{fmt(max(self.samples))}"


def fmt(value: float | None) -> str:
    if value is None:
        return "—"
    if isinstance(value, int):  # a count (the scale-out's tasks run twice or lost)
        return f"{value:,}"
    if value >= 100:
        return f"{value:,.0f}"
    if value >= 10:
        return f"{value:.1f}"
    return f"{value:.2f}"


def find(rows: list[Row], section: str, workload: str, system: str) -> Row | None:
    for row in rows:
        if (row.section, row.workload, row.system) == (section, workload, system):
            return row
    return None


def median_of(rows: list[Row], section: str, workload: str, system: str) -> float | None:
    row = find(rows, section, workload, system)
    return row.median if row and row.status == "ok" else None


def ratio(rows: list[Row], row: Row) -> str:
    compared = row.section in (MAIN, ASYNCIO) or row.section in OURS
    ours_name = OURS.get(row.section, "celeriac")
    if not compared or row.system.startswith("celeriac") or row.status != "ok":
        return ""  # no ratio of celeriac to itself (another broker or setting)
    if row.unit == "%":  # a share, of the ideal: the ratio is the rate row's
        return ""
    ours = median_of(rows, row.section, row.workload, ours_name)
    theirs = row.median
    if ours is None or not theirs:
        return ""
    value = ours / theirs
    return f"{value:.2f}" if value >= 0.1 else f"{value:.2g}"


# -- the table ------------------------------------------------------------------------------

HEADERS = ["Workload", "System", "Version", "Median", "Min-max", "celeriac ÷ peer"]


def table_rows(rows: list[Row]) -> list[list[str]]:
    return [
        [
            f"{row.workload} ({row.unit})",
            row.label,
            row.version,
            row.figure(),
            row.spread(),
            ratio(rows, row),
        ]
        for row in rows
    ]


def _first_seen(values: list[str]) -> list[str]:
    return list(dict.fromkeys(values))


def sections(rows: list[Row]) -> list[tuple[str, list[Row]]]:
    """Rows by section, and within a section by workload, each in order of appearance."""
    grouped = []
    for name in _first_seen([row.section for row in rows]):
        members = [row for row in rows if row.section == name]
        order = _first_seen([row.workload for row in members])
        members.sort(key=lambda row: order.index(row.workload))
        grouped.append((name, members))
    return grouped


def text_table(rows: list[Row]) -> str:
    out: list[str] = []
    for name, members in sections(rows):
        cells = table_rows(members)
        widths = [max(len(h), *(len(c[i]) for c in cells)) for i, h in enumerate(HEADERS)]
        out.append(f"\n{name}")
        out.append("  ".join(h.ljust(w) for h, w in zip(HEADERS, widths, strict=True)))
        out.append("  ".join("-" * w for w in widths))
        for cell in cells:
            out.append("  ".join(c.ljust(w) for c, w in zip(cell, widths, strict=True)))
    return "\n".join(out)


def markdown_table(rows: list[Row]) -> str:
    out: list[str] = []
    for name, members in sections(rows):
        out += [f"**{name}**", "", "| " + " | ".join(HEADERS) + " |"]
        out.append("|" + "|".join(["---"] * 3 + ["---:"] * 3) + "|")
        out += ["| " + " | ".join(cell) + " |" for cell in table_rows(members)]
        out.append("")
    return "\n".join(out)


# -- targets --------------------------------------------------------------------------------


def targets(rows: list[Row]) -> list[dict[str, Any]]:
    def main(workload: str, system: str = "celeriac") -> float | None:
        return median_of(rows, MAIN, workload, system)

    enq, drain = main("enqueue"), main("drain")
    floor = median_of(rows, FLOOR, "INCR round trips", "redis-py")
    enq_row = find(rows, MAIN, "enqueue", "celeriac")
    paired = [r["of_floor"] for r in enq_row.runs if "of_floor" in r] if enq_row else []
    # the share of the floor: of the pairs measured back to back, else of the floor's run
    enq_share, floor_ref = (statistics.median(paired), 1.0) if paired else (enq, floor)
    pipelined = median_of(rows, FLOOR, "pipelined INCR", "redis-py")
    sqlite = median_of(rows, BROKERS, "drain", "celeriac-sqlite")

    def events(figure: str) -> float | None:
        return median_of(rows, EVENTS, figure, "celeriac")

    def aio(system: str = "celeriac") -> float | None:
        return median_of(rows, ASYNCIO, ASYNCIO_STEADY, system)

    def rabbit(workload: str, system: str = "celeriac-amqp") -> float | None:
        return median_of(rows, RABBITMQ, workload, system)

    def pg_vs_peers(workload: str, higher: bool) -> tuple[float | None, float | None]:
        """celeriac's median on PostgreSQL and the best of the peers' (None: not measured,
        also when one peer's figure is missing: the target names both)."""
        theirs = [median_of(rows, POSTGRES, workload, peer) for peer in POSTGRES_PEERS]
        known = [value for value in theirs if value is not None]
        pick = max if higher else min
        ours = median_of(rows, POSTGRES, workload, "celeriac-postgres")
        return ours, (pick(known) if len(known) == len(theirs) else None)

    peers_named = " and ".join(POSTGRES_PEERS.values())

    def scaled(system: str) -> float | None:
        return median_of(rows, SCALEOUT, f"4 ÷ 1 ({SCALEOUT_POOL})", system)

    def spoiled() -> int | None:
        """Tasks run twice or lost in every scale-out run (None: none measured)."""
        counted = [
            sum(row.samples)
            for row in rows
            if row.section == SCALEOUT and row.key in ("twice", "lost") and row.status == "ok"
        ]
        return int(sum(counted)) if counted else None

    checks: list[tuple[str, float | None, float | None, str, float, bool]] = [
        # (name, measured, reference, unit shown, bound, higher is better)
        ("enqueue ≥ 4x Celery", enq, main("enqueue", "celery"), "x", 4, True),
        ("enqueue ≥ 85% of redis-py round trips/s", enq_share, floor_ref, "%", 0.85, True),
        ("bulk enqueue ≥ 100,000 tasks/s", main("bulk enqueue"), 1, "tasks/s", 100_000, True),
        ("bulk enqueue ≥ 50% of pipelined INCR/s", main("bulk enqueue"), pipelined, "%", 0.5, True),
        ("drain ≥ 10x Celery prefork (c=2)", drain, main("drain", "celery"), "x", 10, True),
        ("latency p50 ≤ 0.5 ms", main("latency p50"), 1, "ms", 0.5, False),
        ("latency p99 ≤ 2 ms", main("latency p99"), 1, "ms", 2, False),
        ("SQLite drain ≥ 2,000 tasks/s", sqlite, 1, "tasks/s", 2_000, True),
        *(
            (f"{label}: 4 workers ≥ 1.8x one (c=1)", scaled(system), 1, "x", 1.8, True)
            for system, label in SCALEOUT_BROKERS.items()
        ),
        ("scale-out: no task run twice or lost", spoiled(), 1, "tasks", 0, False),
        (
            "RabbitMQ drain ≥ 5x Celery on RabbitMQ",
            rabbit("drain"),
            rabbit("drain", "celery-amqp"),
            "x",
            5,
            True,
        ),
        (
            "RabbitMQ enqueue ≥ 2x Celery with confirms",
            rabbit("enqueue"),
            rabbit("enqueue", "celery-amqp-confirm"),
            "x",
            2,
            True,
        ),
        (
            "RabbitMQ enqueue ≥ Celery's default (no confirms)",
            rabbit("enqueue"),
            rabbit("enqueue", "celery-amqp"),
            "x",
            1,
            True,
        ),
        (
            "RabbitMQ enqueue, confirm_publish off, ≥ Celery's default",
            rabbit("enqueue", "celeriac-amqp-unconfirmed"),
            rabbit("enqueue", "celery-amqp"),
            "x",
            1,
            True,
        ),
        *(
            (f"PostgreSQL {workload} ≥ {peers_named}", *pg_vs_peers(workload, True), "x", 1, True)
            for workload in ("enqueue", "bulk enqueue", "drain")
        ),
        *(
            (f"PostgreSQL {workload} ≤ {peers_named}", *pg_vs_peers(workload, False), "x", 1, False)
            for workload in ("latency p50", "latency p99")
        ),
        ("drain with events ≥ 90% of without", events("drain on/off"), 1, "%", 0.9, True),
        ("drain CPU with events ≤ 110% of without", events("drain CPU on/off"), 1, "%", 1.1, False),
        ("enqueue with task-sent ≥ 90% of without", events("enqueue on/off"), 1, "%", 0.9, True),
        (
            "asyncio sleep, steady, ≥ 80% of ideal (c / 0.1 s)",
            median_of(rows, ASYNCIO, ASYNCIO_SHARE, "celeriac"),
            100,
            "%",
            0.8,
            True,
        ),
        *(
            (f"asyncio sleep, steady, ≥ 3x {label}", aio(), aio(peer), "x", 3, True)
            for peer, label in ASYNCIO_PEERS.items()
        ),
        (
            "idle worker RSS ≤ Celery's",
            main("idle worker RSS"),
            main("idle worker RSS", "celery"),
            "x",
            1,
            False,
        ),
        (
            "idle worker PSS ≤ Dramatiq's",
            main("idle worker PSS"),
            main("idle worker PSS", "dramatiq"),
            "x",
            1,
            False,
        ),
    ]
    found = []
    for name, measured, reference, unit, bound, higher in checks:
        if measured is None or not reference:
            found.append({"target": name, "measured": "not measured", "met": None})
            continue
        value = measured / reference
        shown = f"{value * 100:.0f}%" if unit == "%" else f"{fmt(value)} {unit}".strip()
        if unit == "tasks":
            shown = f"{value:,.0f} tasks"
        met = value >= bound if higher else value <= bound
        found.append({"target": name, "measured": shown, "value": value, "met": met})
    return found


def targets_text(found: list[dict[str, Any]]) -> str:
    lines = ["\nTargets"]
    for item in found:
        verdict = {True: "met", False: "MISSED", None: "—"}[item["met"]]
        lines.append(f"  {verdict:<7} {item['target']:<42} {item['measured']}")
    return "\n".join(lines)


def targets_markdown(found: list[dict[str, Any]]) -> str:
    lines = ["| Target | Measured | |", "|---|---:|---|"]
    for item in found:
        verdict = {True: "met", False: "missed", None: "—"}[item["met"]]
        lines.append(f"| {item['target']} | {item['measured']} | {verdict} |")
    return "\n".join(lines)


# -- files ----------------------------------------------------------------------------------

DOCS_START, DOCS_END = "<!-- results -->", "<!-- /results -->"


def update_docs(path: Path, header: dict[str, Any], markdown: str) -> None:
    """Put the latest full run's tables between the results markers of ``path``."""
    text = path.read_text()
    if DOCS_START not in text or DOCS_END not in text:
        return
    machine = header["machine"]
    intro = (
        f"Run of {header['started']} ({header['duration_s'] / 60:.0f} min), "
        f"{machine['cores']} cores ({machine['cpu']}), Python {machine['python']}, "
        f"Redis {machine['redis']}, celeriac at {machine['celeriac_commit']}. "
        f"{RATIO_NOTE}\n\n![benchmark chart](../bench/results/results.png)\n\n"
    )
    head, rest = text.split(DOCS_START, 1)
    tail = rest.split(DOCS_END, 1)[1]
    path.write_text(f"{head}{DOCS_START}\n{intro}{markdown}{DOCS_END}{tail}")


def write_json(path: Path, header: dict[str, Any], rows: list[Row]) -> None:
    document = {
        **header,
        "ratio": RATIO_NOTE,
        "rows": _json_rows(rows),
        "targets": targets(rows),
    }
    path.write_text(json.dumps(document, indent=1, default=str) + "\n")


def _json_rows(rows: list[Row]) -> list[dict[str, Any]]:
    """Rows with their raw runs; rows made from the same runs point to the first one."""
    first: dict[int, str] = {}
    out = []
    for row in rows:
        item = {**asdict(row), "median": row.median, "note": row.note}
        where = f"{row.section} / {row.workload} / {row.label}"
        if id(row.runs) in first:
            item["runs"] = f"the runs of: {first[id(row.runs)]}"
        else:
            first[id(row.runs)] = where
        out.append(item)
    return out


PANELS = [
    (MAIN, "enqueue", "enqueue, tasks/s"),
    (MAIN, "bulk enqueue", "bulk enqueue, tasks/s"),
    (MAIN, "drain", "drain, c=2, start-up included, tasks/s"),
    (MAIN, "results round trips", "results, round trips/s"),
    (MAIN, "latency p50", "latency p50, ms (lower is better)"),
    (MAIN, "idle worker PSS", "idle worker PSS, MB (lower is better)"),
    (BROKERS, "drain", "celeriac drain by broker, tasks/s"),
    (SWEEP, "drain", "celeriac drain by pool, tasks/s"),
    (ASYNCIO, ASYNCIO_STEADY, "asyncio, c=500, sleep 0.1 s, steady tasks/s"),
    (RABBITMQ, "enqueue", "RabbitMQ enqueue, tasks/s"),
    (RABBITMQ, "drain", "RabbitMQ drain, c=2, tasks/s"),
    (POSTGRES, "drain", "PostgreSQL drain, c=2, tasks/s"),
]


def write_chart(path: Path, rows: list[Row], title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(3, 4, figsize=(22, 15))
    for ax, (section, workload, heading) in zip(axes.flat, PANELS, strict=True):
        members = [r for r in rows if (r.section, r.workload) == (section, workload)]
        if members:
            _panel(ax, members, heading)
        else:  # a section this run left out
            ax.set_title(heading, fontsize=11)
            ax.text(0.5, 0.5, "not measured", ha="center", va="center", transform=ax.transAxes)
            ax.set_axis_off()
    fig.suptitle(title, fontsize=13)
    fig.tight_layout(rect=(0, 0, 1, 0.96))
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _short(value: float, _: object = None) -> str:
    return f"{value / 1000:g}k" if abs(value) >= 1000 else f"{value:g}"


def _panel(ax: Any, members: list[Row], heading: str) -> None:
    from matplotlib.ticker import FuncFormatter, MaxNLocator

    labels = [r.label for r in members]
    values = [r.median or 0.0 for r in members]
    colours = ["#d9534f" if r.system.startswith("celeriac") else "#5b7aa8" for r in members]
    positions = list(range(len(members)))
    ax.barh(positions, values, color=colours)
    ax.set_yticks(positions, labels, fontsize=10)
    ax.invert_yaxis()
    positive = [v for v in values if v > 0]
    if positive and max(positive) / min(positive) > 30:
        ax.set_xscale("log")
        heading += " (log scale)"
    else:
        ax.xaxis.set_major_locator(MaxNLocator(5))
        ax.xaxis.set_major_formatter(FuncFormatter(_short))
    ax.set_title(heading, fontsize=11)
    for pos, row, value in zip(positions, members, values, strict=True):
        text = fmt(value) if row.status == "ok" else row.status
        ax.text(value if value > 0 else 0, pos, f" {text}", va="center", fontsize=9)
    if positive:
        left, right = ax.get_xlim()
        ax.set_xlim(left, right * (3 if ax.get_xscale() == "log" else 1.25))
    ax.grid(axis="x", alpha=0.3)
