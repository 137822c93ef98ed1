"""``rnnkit models list|register|promote|rm``: the local registry of model versions (rnnkit.runs.registry)."""

from __future__ import annotations

import argparse

# The registry reads run directories (torch, for their weights): each command imports it when it runs, so that
# the parser (and every --help) is built without it. The variable's name is the registry's MODELS_VARIABLE
# (tests/test_cli.py checks that they agree).
MODELS_VARIABLE = "RNNKIT_MODELS"


def add_commands(subparsers) -> None:
    models = subparsers.add_parser("models", help="register finished runs as named model versions",
                                   description="A local registry of model versions: NAME means the promoted "
                                               "version, NAME@3 a given one. The registry folder is "
                                               f"${MODELS_VARIABLE}, else the user's data dir "
                                               "(~/.local/share/rnnkit/models).")
    models.set_defaults(group_parser=models)
    verbs = models.add_subparsers(dest="verb", metavar="<verb>")

    p = verbs.add_parser("list", help="every version: name, version, task, promoted, main metric, created")
    p.add_argument("name", nargs="?", help="only this model's versions")
    p.set_defaults(func=cmd_list)

    p = verbs.add_parser("register", help="copy a finished run directory in as the next version of NAME")
    p.add_argument("run", metavar="RUN", help="run directory of a finished training")
    p.add_argument("name", metavar="NAME", help="model name: letters, digits, '-', '_', '.'")
    p.add_argument("--link", action=argparse.BooleanOptionalAction, default=False,
                   help="link to the run directory instead of copying it (the run must then stay where it is)")
    p.set_defaults(func=cmd_register)

    p = verbs.add_parser("promote", help="make NAME mean version VERSION")
    p.add_argument("spec", metavar="NAME@VERSION", help="e.g. shakespeare@3")
    p.set_defaults(func=cmd_promote)

    p = verbs.add_parser("rm", help="remove one version (NAME@VERSION) or a model with all its versions (NAME)")
    p.add_argument("spec", metavar="NAME[@VERSION]", help="e.g. shakespeare@2, or shakespeare")
    p.set_defaults(func=cmd_rm)


def cmd_list(args: argparse.Namespace) -> int:
    from rnnkit.runs.registry import Registry

    registry = Registry()
    versions = registry.list(args.name)
    if not versions:
        what = f"{args.name} has no versions" if args.name else f"no models registered in {registry.root}"
        print(f"{what} (add one: rnnkit models register RUN {args.name or 'NAME'})")
        return 0
    rows = [("name", "version", "task", "promoted", "main metric", "created")]
    for v in versions:
        main = v.main_metric()
        rows.append((v.name, str(v.version), v.task, "*" if v.promoted else "",
                     f"{main[0]} {main[1]:.4g}" if main else "-", v.created))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for r in rows:
        print("  ".join(cell.ljust(w) for cell, w in zip(r, widths)).rstrip())
    print(f"\nregistry: {registry.root}")
    return 0


def cmd_register(args: argparse.Namespace) -> int:
    from rnnkit.runs.registry import Registry

    from rnnkit.training.phases import phase
    phase("save")
    v = Registry().register(args.run, args.name, link=args.link)
    how = "linked to" if args.link else "copied from"
    print(f"{v.spec}: {v.task} run {how} {args.run}" + (" (promoted: the first version)" if v.promoted else "")
          + f"\n  in {v.path}")
    return 0


def cmd_promote(args: argparse.Namespace) -> int:
    from rnnkit.runs.registry import Registry, parse_spec

    name, version = parse_spec(args.spec)
    if version is None:
        raise ValueError(f"{args.spec!r}: expected NAME@VERSION, e.g. {name}@1")
    Registry().promote(name, version)
    print(f"{name}@{version} is now promoted: '{name}' means this version")
    return 0


def cmd_rm(args: argparse.Namespace) -> int:
    from rnnkit.runs.registry import Registry, parse_spec

    name, version = parse_spec(args.spec)
    registry = Registry()
    versions = registry.list(name)      # an unknown name fails here, listing the known ones
    promoted_before = next((v.version for v in versions if v.promoted), None)
    now = registry.remove(name, version)
    if version is None:
        print(f"{name}: removed with all its versions")
    elif now is None:
        print(f"{name}@{version} removed; {name} has no versions left")
    elif promoted_before == version:
        print(f"{name}@{version} removed; it was the promoted version: {name}@{now} is promoted now")
    else:
        print(f"{name}@{version} removed")
    return 0
