"""The `emotions-hf` command: one sub-command per task.

`prepare` is defined here (the work is `emotions_hf.data.prepare.prepare`); `predict` keeps its
arguments next to its output formats in `emotions_hf.predict`.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from .data.prepare import PrepareEnvironmentError, prepare
from .data.variants import DEFAULT_SEED, DEFAULT_TEST_FRACTION, TEST_VARIANT_SIZE, VARIANTS
from .labels import LABEL_SETS
from .utils.cpu_memory import keep_freed_memory

# Exit statuses of `prepare`: 2 for bad input or options, 3 when the machine stopped it (disk full,
# read-only, permissions: fix that and run again), 1 for any other file error.
EXIT_BAD_INPUT = 2
EXIT_ENVIRONMENT = 3


# --------------------------------------------------------------------------------------------------
# prepare


def _counts_argument(text: str) -> dict[str, int]:
    try:
        return {name.strip(): int(n) for name, n in (item.split("=") for item in text.split(",") if item.strip())}
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected Class=N,Class=N, got {text!r}") from None


def prepare_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("source", help="parquet shards (data/*.parquet) or a folder of videos with labels")
    parser.add_argument("out_dir", help="the dataset folder to write (load it with load_dataset(out_dir, config))")
    parser.add_argument("--label-set", default="emotions", choices=sorted(LABEL_SETS),
                        help="class names and polarity map (emotions, or the public sets ve8, ekman6, music_video)")
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED, help="seed of the variant and split draws")
    parser.add_argument("--variants", default=None,
                        help=f"comma-separated configs to write, of {', '.join(VARIANTS)} (default: all three for "
                             "emotions, 'all' otherwise)")
    parser.add_argument("--balanced-counts", type=_counts_argument, default=None,
                        help="videos per class of the balanced variant, e.g. Excitation=4000,Neutral=3000 "
                             "(the default); other classes are taken whole")
    parser.add_argument("--test-size", type=int, default=TEST_VARIANT_SIZE, help="videos in the test variant")
    parser.add_argument("--test-fraction", type=float, default=DEFAULT_TEST_FRACTION,
                        help="share of each class in a test split")
    parser.add_argument("--num-proc", type=int, default=1, help="processes validating the videos")
    parser.add_argument("--proxy", action="store_true", help="also write training proxies and the MFCC cache")
    parser.add_argument("--processor", default=None,
                        help="folder of a saved AVCANetProcessor whose MFCC settings the cache uses (with --proxy)")
    parser.add_argument("--strict", action="store_true",
                        help="stop with an error listing bad labels, duplicate ids, missing files and unreadable "
                             "shards instead of skipping them")
    parser.add_argument("--link", action="store_true", help="hard-link videos of a folder source instead of copying")
    parser.add_argument("--video-column", default=None, help="parquet column with the video bytes (detected)")
    parser.add_argument("--label-column", default=None, help="parquet / labels-file column with the label (detected)")
    parser.add_argument("--id-column", default=None, help="parquet / labels-file column with the id or file name")
    parser.add_argument("--labels-file", default=None, help="labels CSV/JSON of a folder source (found by name)")
    parser.add_argument("--allow-outside-source", action="store_true",
                        help="let the labels file name videos outside the source folder (absolute or ../ paths); "
                             "refused by default, since the prepared folder is meant to be shared")
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")


def run_prepare(args: argparse.Namespace) -> int:
    processor = None
    if args.processor:
        from .processing_avcanet import AVCANetProcessor

        processor = AVCANetProcessor.from_pretrained(args.processor)
    try:
        result = prepare(
            args.source, args.out_dir, label_set=args.label_set, seed=args.seed,
            variants=args.variants.split(",") if args.variants else None, balanced_counts=args.balanced_counts,
            test_size=args.test_size, test_fraction=args.test_fraction, num_proc=args.num_proc, proxy=args.proxy,
            processor=processor, strict=args.strict, link=args.link, video_column=args.video_column,
            label_column=args.label_column, id_column=args.id_column, labels_file=args.labels_file,
            progress=not args.no_progress, allow_outside_source=args.allow_outside_source,
        )
    except ValueError as error:  # PrepareError, SourceError and bad options: a message, not a traceback
        print(f"emotions-hf prepare: error: {error}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except PrepareEnvironmentError as error:  # disk full, read-only, permissions: fix it and run again
        print(f"emotions-hf prepare: error: {error}", file=sys.stderr)
        return EXIT_ENVIRONMENT
    except OSError as error:  # any other file error (a name too long, a folder that is a file...)
        print(f"emotions-hf prepare: error: {error}", file=sys.stderr)
        return 1
    print(f"{result.out_dir}: {result.videos} videos, {len(result.skipped)} skipped "
          f"(report: {result.report_path})")
    for variant, by_split in result.counts.items():
        print(f"  {variant}: " + ", ".join(f"{split} {sum(c.values())}" for split, c in by_split.items()))
    return 0


# --------------------------------------------------------------------------------------------------
# predict (imported when the command line is built: it brings torch and transformers)


def _from_module(module_name: str):
    """(add_arguments, run) of a command that lives in a module of its own, imported only when used."""

    def add_arguments(parser: argparse.ArgumentParser) -> None:
        importlib.import_module(module_name).add_arguments(parser)

    def run(args: argparse.Namespace) -> int:
        return importlib.import_module(module_name).run(args)

    return add_arguments, run


# --------------------------------------------------------------------------------------------------

# sub-command -> (help, add_arguments(parser), run(args) -> exit status)
COMMANDS = {
    "prepare": ("write a loadable eMotions dataset folder from a source", prepare_arguments, run_prepare),
    "predict": ("predict the emotions of video files", *_from_module("emotions_hf.predict")),
    "demo": ("serve a web page that shows a video's emotions (Gradio)", *_from_module("emotions_hf.demo")),
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="emotions-hf", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, (help_text, add_arguments, _) in COMMANDS.items():
        add_arguments(commands.add_parser(name, help=help_text, description=help_text))
    args = parser.parse_args(argv)
    return COMMANDS[args.command][2](args)


def console_main() -> int:
    """The installed `emotions-hf` command: `main` in a process of its own, which therefore keeps its freed memory."""
    keep_freed_memory()
    return main()


if __name__ == "__main__":
    sys.exit(console_main())
