"""`rnnkit diagnose gradients`: vanishing gradients, plotted for untrained and trained cells of each kind.

Imports no torch at the top: every ``--help`` is instant.
"""

from __future__ import annotations

import argparse

from rnnkit.config import add_config_arguments, config_from_args
from rnnkit.diagnose.config import GradientsConfig

DRY_RUN = {"steps": 3, "seq_len": 12, "hidden_size": 8, "batch_size": 8}    # --dry-run: seconds, the whole path


def add_commands(sub) -> None:
    group = sub.add_parser("diagnose", help="see vanishing gradients: how far back the error of the last step reaches",
                           description="Diagnostics that make a textbook claim visible on real numbers.")
    group.set_defaults(group_parser=group)
    verbs = group.add_subparsers(dest="verb", metavar="<verb>")
    p = verbs.add_parser(
        "gradients", help="plot ‖∂L_T/∂s_(T-k)‖ against k for untrained and trained cells, and the recurrent "
                          "Jacobian's spectral norm over training",
        description="Trains one small model per cell on the same batches of the adding problem (a long-memory "
                    "test: add the two marked values of a sequence), and plots how much of the error at the "
                    "last step reaches the state k steps earlier, before and after training (log scale), beside "
                    "the median spectral norm of the recurrent Jacobian as training goes. Prints a table and a "
                    "few lines saying what the plot shows. Given a textgen RUN, also draws that model's curve on "
                    "text it samples itself.")
    p.add_argument("run", metavar="RUN", nargs="?", default=None,
                   help="a textgen run directory: add its model's curve (optional)")
    add_config_arguments(p, GradientsConfig)
    out = p.add_argument_group("output")
    out.add_argument("-o", "--output", default="gradients.png", help="the PNG to write (default: %(default)s)")
    out.add_argument("--dry-run", action="store_true",
                     help="a few steps of tiny models: checks the whole path in seconds (the plot shows nothing)")
    p.set_defaults(func=_gradients_cmd)


def _gradients_cmd(args: argparse.Namespace) -> int:
    config = config_from_args(GradientsConfig, args)          # every bound checked before any work
    if args.dry_run:
        config = GradientsConfig(**{**vars(config), **DRY_RUN})
    from rnnkit.diagnose.gradients import diagnose, language_model_curve, plot, summary

    extra = None
    if args.run is not None:
        extra = language_model_curve(args.run, length=min(4 * config.seq_len, 400), seed=config.seed)
    result = diagnose(config)
    plot(result, args.output, extra)
    print(summary(result, extra))
    print(f"wrote {args.output}")
    return 0
