"""The AV-CANet Hugging Face Space: the `emotions-hf demo` page.

On the Space (sdk: gradio, app_file: app.py) this folder holds the `emotions_hf` package beside this
file and, usually, the model in `model/` (see README.md for the two upload commands). Run from the
repository, `python space/app.py` uses the installed package (or `src/` when it is not installed).

The model is, first found: `--model` on the command line, the `EMOTIONS_HF_MODEL` variable (a folder or
a Hub id; set it in the Space's settings), `model/` beside this file, then the demo model folder
`outputs/avcanet-synthetic`. Any other `emotions-hf demo` option may be given on the command line or in
`EMOTIONS_HF_DEMO_ARGS` (e.g. `--device cuda --dtype float16` on a GPU Space). The Space sets
`GRADIO_SERVER_NAME` and `GRADIO_SERVER_PORT`, which Gradio reads.
"""

import os
import shlex
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent

try:
    import emotions_hf  # noqa: F401  (beside this file on the Space, or installed)
except ImportError:  # run from a checkout where the package is not installed
    sys.path.insert(0, str(HERE.parent / "src"))

from emotions_hf.demo import main


def default_arguments() -> list[str]:
    arguments = shlex.split(os.environ.get("EMOTIONS_HF_DEMO_ARGS", ""))
    bundled = HERE / "model"
    model = os.environ.get("EMOTIONS_HF_MODEL") or (str(bundled) if bundled.is_dir() else None)
    return (["--model", model] if model else []) + arguments


if __name__ == "__main__":
    sys.exit(main(default_arguments() + sys.argv[1:]))
