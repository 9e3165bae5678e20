"""Run a script the way a Hub user does: in a fresh interpreter where `import emotions_hf` fails."""

import os
import subprocess
import sys
import textwrap

import torch

BLOCK_PACKAGE = textwrap.dedent(
    """
    import importlib.abc, sys

    class BlockEmotionsHF(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name == "emotions_hf" or name.startswith("emotions_hf."):
                raise ImportError(f"{name} is blocked: the saved folder must carry its own code")
            return None

    sys.meta_path.insert(0, BlockEmotionsHF())
    """
)

CHECK_NOT_IMPORTED = (
    '\nassert not any(name.startswith("emotions_hf") for name in sys.modules), "emotions_hf was imported"\n'
)


def run_without_package(tmp_path, body: str, *args, timeout: int = 300) -> str:
    """Run `body` (after the import block, then a check that nothing imported the package) with `args`; offline,
    with its own modules cache and the parent's thread count. Returns stdout; fails with stderr's tail."""
    script = tmp_path / "without_package.py"
    script.write_text(BLOCK_PACKAGE + textwrap.dedent(body) + CHECK_NOT_IMPORTED)
    env = dict(os.environ, HF_MODULES_CACHE=str(tmp_path / "modules"), HF_HUB_OFFLINE="1",
               OMP_NUM_THREADS=str(torch.get_num_threads()))
    result = subprocess.run([sys.executable, str(script), *map(str, args)], cwd=tmp_path, env=env,
                            capture_output=True, text=True, timeout=timeout, check=False)
    assert result.returncode == 0, result.stderr[-4000:]
    return result.stdout


# Every way a Hub user reaches a saved AV-CANet folder (argv: folder, a video): the pipeline with and without its
# task, the base model, the processor and its feature extractor, all from the folder's own code.
HUB_ROUTES = """
from transformers import AutoConfig, AutoFeatureExtractor, AutoModel, AutoProcessor, pipeline

folder, video = sys.argv[1], sys.argv[2]
for pipe in (pipeline("video-emotion", model=folder, trust_remote_code=True),
             pipeline(model=folder, trust_remote_code=True)):
    assert type(pipe).__module__.startswith("transformers_modules"), type(pipe).__module__
    result = pipe(video, top_k=2)
    assert len(result["predictions"]) == 2 and {"label", "score", "polarity"} <= result["predictions"][0].keys()
    print("PIPELINE", type(pipe).__name__, result["predictions"][0]["label"])
names = {route.__name__: type(route.from_pretrained(folder, trust_remote_code=True)).__name__
         for route in (AutoConfig, AutoModel, AutoProcessor, AutoFeatureExtractor)}
assert names == {"AutoConfig": "AVCANetConfig", "AutoModel": "AVCANetModel", "AutoProcessor": "AVCANetProcessor",
                 "AutoFeatureExtractor": "AVCANetFeatureExtractor"}, names
print("HUB-ROUTES-OK")
"""
