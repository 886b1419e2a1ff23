"""`job run|list|cancel`: background jobs (the app starts them; `run` is their child side)."""

from __future__ import annotations

import argparse
from pathlib import Path

from rebase_core import jobs
from rebase_core.settings import Settings


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("job", help="background jobs started by the app")
    jsub = parser.add_subparsers(dest="job_command", metavar="<action>")
    jsub.required = True
    run = jsub.add_parser("run", help="run a job folder in this process")
    run.add_argument("folder", type=Path)
    run.set_defaults(handler=lambda a, s: jobs.run_job(a.folder, s))
    lst = jsub.add_parser("list", help="list jobs, newest first")
    lst.set_defaults(handler=_list)
    cancel = jsub.add_parser("cancel", help="ask a job to stop")
    cancel.add_argument("folder", type=Path)
    cancel.set_defaults(handler=_cancel)


def _cancel(args: argparse.Namespace, settings: Settings) -> int:
    jobs.cancel_job(args.folder)
    return 0


def _list(args: argparse.Namespace, settings: Settings) -> int:
    for job in jobs.list_jobs(settings):
        p = job.progress
        print(f"{job.id}  {job.kind:16} {job.state:9} {p.done}/{p.total or '?'} {p.message}")  # noqa: T201
    return 0
