"""``fw check --in-flight`` and ``fw dev``'s warning on save: the in-flight instances that
the code as it is now would break (``framework.runtime.inflight``), said plainly."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from rich.console import Console
from rich.text import Text

from framework.cli.output import console, labelled, run

if TYPE_CHECKING:
    from framework.runtime.inflight import InFlightReport


def check_in_flight_of(root: Path) -> InFlightReport:
    """Replay the in-flight instances of the app at ``root`` in its configured store (its
    connections closed before returning); a store or config problem is a one-line error."""

    async def main() -> InFlightReport:
        from framework.runtime.app import App
        from framework.runtime.inflight import check_in_flight

        return await check_in_flight(App.for_root(root))

    return run(main)


def breakage_lines(report: InFlightReport) -> list[str]:
    """One line per broken instance: id, workflow, status, the step, and the problem."""
    return [
        f"{b.instance_id} ({b.workflow}, {b.status})"
        + (f" at step {b.step!r}" if b.step else "")
        + f": {b.problem}"
        for b in report.broken
    ]


def show_in_flight(report: InFlightReport, to: Console = console) -> None:
    """Print the report: a summary line, then each instance the code would break."""
    from framework.runtime.inflight import PATCH_HINT

    broken = len(report.broken)
    summary = (
        f"fw check --in-flight: {report.checked} in-flight instance"
        f"{'' if report.checked == 1 else 's'} with a journal replayed against this code: "
        + (f"{broken} would break" if broken else "none would break")
    )
    for line in breakage_lines(report):
        to.print(labelled("breaks:", "red", line))
    if broken:
        to.print(labelled("hint:", "yellow", PATCH_HINT))
    to.print(Text(summary, style="red" if broken else "green"))
