"""``rnnkit runs rehash RUN``: re-record the digests of a run directory whose files were edited on purpose.

Every file a run is loaded from has a digest recorded when it was written (``rnnkit.runs.schema``), and a run
whose files changed since is refused, naming the file. A user who edits one on purpose (renames a class in
config.json, fixes a token in tokenizer.json) says so here: the run is first loaded as it now is, with every
check but the digests (an edit that breaks it is refused, and nothing is written), then its digests are
recorded again and what changed is printed.

The parser imports no torch (``--help`` stays instant); the verb imports the run's task when it runs.
"""

from __future__ import annotations

import argparse
from pathlib import Path


def add_commands(subparsers) -> None:
    runs = subparsers.add_parser("runs", help="check and re-record the digests of a run directory's files",
                                 description="Run directories: every file a run is loaded from has a digest "
                                             "recorded when it was saved, and a run whose files changed is "
                                             "refused. 'rehash' re-records them after an edit made on purpose.")
    runs.set_defaults(group_parser=runs)
    verbs = runs.add_subparsers(dest="verb", metavar="<verb>")
    p = verbs.add_parser("rehash", help="re-record the digests of RUN's files after checking that it loads "
                                        "as it is now (for files edited on purpose); prints what changed")
    p.add_argument("run", metavar="RUN", help="run directory (--run-dir of a train command)")
    p.set_defaults(func=cmd_rehash)


def cmd_rehash(args: argparse.Namespace) -> int:
    changes = rehash(args.run)
    for line in changes:
        print(line)
    if changes:
        print(f"{args.run}: digests re-recorded; the run loads as its files are now")
    else:
        print(f"{args.run}: nothing changed: every file is as its recorded digest says")
    return 0


def rehash(path: str | Path) -> list[str]:
    """Re-record the digests of the run in ``path`` (config.json's own; for a finished run those of its
    weights and side files) after checking that it loads with every check but the digests. Returns one
    line per digest that changed (empty: nothing changed, nothing written)."""
    from rnnkit.config import config_from_dict
    from rnnkit.runs.checkpoint import RunDir
    from rnnkit.runs.schema import (
        DIGEST_KEY,
        FILES_KEY,
        FORMAT_VERSION,
        config_digest,
        file_digests,
        is_finished,
        read_run_config,
        rewrite_run_config,
    )
    from rnnkit.tasks.base import FINAL_WEIGHTS, task_class

    run = RunDir(path)
    if not run.path.is_dir():
        raise FileNotFoundError(f"{run.path}: no such run directory; expected a run directory written by a train "
                                f"command (--run-dir)")
    raw = run.read_config()
    if raw.get("format_version", 1) != FORMAT_VERSION:
        raise ValueError(f"{run.config_path}: format_version {raw.get('format_version', 1)}, written before runs "
                         f"recorded digests: it loads without them; expected a run of format_version "
                         f"{FORMAT_VERSION}: to give it digests, load and save it (rnnkit.load(RUN).save(RUN))")
    doc = read_run_config(run, trust_edits=True)      # the schema's checks, all but the digests
    task = task_class(doc["task"])
    if is_finished(doc):
        # It must load as it is now: an edit that breaks the run is refused here, before anything is written.
        task.load(run.path, trust_edits=True)
        files = file_digests(run, (FINAL_WEIGHTS, *task.side_files))
    else:
        # A run in training is loaded from its checkpoint (checkpoint.json holds those digests): only its
        # settings must read.
        config_from_dict(task.config_class, doc["config"], source=str(run.config_path))
        files = {}

    changes = []
    before = raw.get(FILES_KEY) if isinstance(raw.get(FILES_KEY), dict) else {}
    for name in sorted(set(before) | set(files)):
        old, new = before.get(name), files.get(name)
        if old != new:
            was = f"sha256 {str(old)[7:19]}... recorded" if old else "no digest recorded"
            now = f"{new[7:19]}... now" if new else "no such file now"
            changes.append(f"{run.file(name)}: {was}, {now}")
    content = {k: v for k, v in raw.items() if k not in (FILES_KEY, DIGEST_KEY)}
    if raw.get(DIGEST_KEY) != config_digest(raw):
        changes.insert(0, f"{run.config_path}: its content changed since it was saved (or it had no digest): its "
                          f"digest is recorded anew")
    if changes:
        rewrite_run_config(run, {**content, **({FILES_KEY: files} if files else {})})
    return changes
