"""The `emotions-hf` command: one sub-command per task, each implemented in its own module."""

from __future__ import annotations

import argparse
import importlib
import sys

from .cpu_memory import keep_freed_memory

# sub-command -> module providing `add_arguments(parser)` and `run(args) -> int`
COMMANDS = {
    "prepare": ("emotions_hf.data.prepare", "write a loadable eMotions dataset folder from a source"),
    "predict": ("emotions_hf.predict", "predict the emotions of video files"),
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="emotions-hf", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    modules = {}
    for name, (module_name, help_text) in COMMANDS.items():
        module = importlib.import_module(module_name)
        modules[name] = module
        module.add_arguments(commands.add_parser(name, help=help_text, description=help_text))
    args = parser.parse_args(argv)
    return modules[args.command].run(args)


def console_main() -> int:
    """The installed `emotions-hf` command: `main` in a process of its own, which therefore keeps its freed memory."""
    keep_freed_memory()
    return main()


if __name__ == "__main__":
    sys.exit(console_main())
