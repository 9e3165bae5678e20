"""Prepare the eMotions dataset folder from a local copy of the official release (or any source).

    python dataset_script/prepare_emotions.py /data/Conna-eMotions emotions --num-proc 8
    python -c "import datasets; print(datasets.load_dataset('emotions', 'balanced'))"

The same as `emotions-hf prepare`; `--help` lists the options (label sets, seeds, proxies, ...).
With `--write-template` it rewrites this folder's README.md, the reference card of the full release.
"""

import sys
from pathlib import Path

from emotions_hf import cli
from emotions_hf.data.card import reference_card

if __name__ == "__main__":
    if sys.argv[1:] == ["--write-template"]:
        (Path(__file__).parent / "README.md").write_text(reference_card(), encoding="utf-8")
        sys.exit(0)
    sys.exit(cli.main(["prepare", *sys.argv[1:]]))
