"""Train a prototypical network on N-way K-shot episodes from a YAML experiment config.

The run directory receives config.yaml, checkpoints/, best.weights.h5, log.jsonl, tb/ and,
when training finishes, result.json.  Ctrl-C saves a checkpoint; --resume continues it.
--strategy multi-worker is one worker of the cluster in TF_CONFIG (every worker runs the same
command; worker 0 writes the run); --workers N starts N such workers on this machine.
"""

from __future__ import annotations

import json
import signal
from pathlib import Path

from kws_proto.errors import ConfigError
from kws_proto.util.cli import nonnegative_int

HELP = "train an encoder on episodes from a YAML config"


def add_arguments(p) -> None:
    p.add_argument("config", type=Path, help="experiment YAML (see experiments/configs/)")
    p.add_argument("--run-dir", type=Path, default=None,
                   help="where the run is written (default: runs/<config name>)")
    p.add_argument("--resume", action="store_true", help="continue the run in --run-dir from its last checkpoint")
    p.add_argument("--strategy", choices=("default", "mirrored", "multi-worker"), default="default",
                   help="'mirrored': one episode per local device, gradients all-reduced; "
                        "'multi-worker': one worker of the cluster in TF_CONFIG")
    p.add_argument("--workers", type=nonnegative_int, default=0, metavar="N",
                   help="start N local workers on 127.0.0.1 (--strategy multi-worker each, free ports)")
    p.add_argument("--logical-cpus", type=nonnegative_int, default=0,
                   help="split the CPU into N logical devices (to use --strategy mirrored without GPUs)")
    p.add_argument("--set", dest="sets", action="append", default=[], metavar="KEY=VALUE",
                   help="override one config value, e.g. --set train.seed=1 --set model.params.members=3 "
                        "(repeatable; VALUE is YAML: 2, 0.5, true, [a, b])")
    p.add_argument("--quiet", action="store_true", help="no progress bar")


def worker_argv(args, run_dir: Path) -> list[str]:
    """The command line every local worker of ``--workers`` runs."""
    argv = ["train", str(args.config), "--run-dir", str(run_dir), "--strategy", "multi-worker"]
    argv += ["--resume"] * args.resume + ["--quiet"] * args.quiet
    argv += [a for kv in args.sets for a in ("--set", kv)]
    return argv


def run(args) -> int:

    from kws_proto.config import load_config  # lazy: --help builds every parser

    # Ctrl-C (or the SIGINT --workers forwards) stops training as KeyboardInterrupt, also in a
    # process started in the background, which inherits SIGINT ignored
    signal.signal(signal.SIGINT, signal.default_int_handler)
    cfg = load_config(args.config, sets=args.sets)
    run_dir = args.run_dir or Path("runs") / cfg.name
    if args.workers:
        from kws_proto.train.cluster import launch_workers  # lazy: --help builds every parser

        if args.strategy not in ("default", "multi-worker") or args.logical_cpus:
            raise ConfigError(f"--workers {args.workers} runs --strategy multi-worker; "
                              f"drop --strategy {args.strategy} / --logical-cpus")
        launch_workers(worker_argv(args, run_dir), args.workers)
        print(f"run written to {run_dir} by {args.workers} workers")
        return 0
    from data_prep.builtin import prepare_data  # lazy: --help builds every parser
    from kws_proto.model.runs import RunDir  # lazy: --help builds every parser
    from kws_proto.train.state import check_run_dir  # lazy: --help builds every parser
    from kws_proto.train.trainer import prepare_process, train  # lazy: --help builds every parser

    check_run_dir(RunDir(run_dir), cfg, args.resume)  # a wrong --resume before building any data
    # thread pools and devices first: building the dataset's caches runs TensorFlow, which fixes them
    cluster = prepare_process(cfg, args.strategy, args.logical_cpus)
    data = prepare_data(cfg, progress=not args.quiet and cluster.is_chief)  # every worker opens it
    result = train(cfg, data, run_dir, resume=args.resume, strategy=args.strategy,
                   progress=not args.quiet, logical_cpus=args.logical_cpus)
    print(json.dumps(result, indent=2))
    print(f"run written to {run_dir}")
    return 0
