"""emotions-hf: the eMotions dataset and AV-CANet, the Hugging Face way.

Importing the package registers AV-CANet with the Auto classes (config, model, processor), makes saved
models carry their code (`trust_remote_code=True` loads them without this package), and registers the
"video-emotion" pipeline. The Trainer classes and the checkpoint converters are imported on first use:
`transformers.Trainer` is heavy, and neither is needed for inference.
"""

from transformers import (
    AutoConfig,
    AutoFeatureExtractor,
    AutoModel,
    AutoModelForVideoClassification,
    AutoProcessor,
)

from .configuration_avcanet import AVCANetConfig
from .cpu_memory import keep_freed_memory
from .errors import VideoReadError
from .labels import EMOTIONS, LABEL_SETS, LabelSet, get_label_set
from .modeling_avcanet import AVCANetForVideoClassification, AVCANetModel
from .modeling_video_swin import VideoSwin3DModel
from .processing_avcanet import AVCANetProcessor

AutoConfig.register(AVCANetConfig.model_type, AVCANetConfig)
AutoModel.register(AVCANetConfig, AVCANetModel)
AutoModelForVideoClassification.register(AVCANetConfig, AVCANetForVideoClassification)
AutoProcessor.register(AVCANetConfig, AVCANetProcessor)
AutoFeatureExtractor.register(AVCANetConfig, AVCANetProcessor)

AVCANetConfig.register_for_auto_class()
AVCANetModel.register_for_auto_class("AutoModel")
AVCANetForVideoClassification.register_for_auto_class("AutoModelForVideoClassification")
AVCANetProcessor.register_for_auto_class("AutoProcessor")

from .pipeline_video_emotion import VideoEmotionPipeline  # registers "video-emotion"; needs the above

_LAZY = {"AVCANetTrainer": "training", "AVCANetTrainingArguments": "training"}
_CONVERTERS = dict.fromkeys(
    ("ConversionReport", "convert_resnet", "convert_video_backbone", "inflate_swin2d",
     "load_pretrained_backbones"),
    "convert_checkpoints",
)


def __getattr__(name):
    module = _LAZY.get(name) or _CONVERTERS.get(name)
    if module is not None:
        import importlib

        return getattr(importlib.import_module(f".{module}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__version__ = "0.1.0"
__all__ = [
    "EMOTIONS",
    "LABEL_SETS",
    "AVCANetConfig",
    "AVCANetForVideoClassification",
    "AVCANetModel",
    "AVCANetProcessor",
    "AVCANetTrainer",
    "AVCANetTrainingArguments",
    "ConversionReport",
    "LabelSet",
    "VideoEmotionPipeline",
    "VideoReadError",
    "VideoSwin3DModel",
    "convert_resnet",
    "convert_video_backbone",
    "get_label_set",
    "inflate_swin2d",
    "keep_freed_memory",
    "load_pretrained_backbones",
]
