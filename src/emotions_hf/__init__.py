"""emotions-hf: the eMotions dataset and AV-CANet, the Hugging Face way.

Importing the package registers AV-CANet and its Video Swin backbone with the Auto classes (configs, models, the
processor and its feature extractor), makes saved models carry their code (`trust_remote_code=True` loads them without this package), and registers the
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
from transformers.utils import is_torchvision_available

from .configuration_avcanet import AVCANetAudioConfig, AVCANetConfig
from .configuration_video_swin import VideoSwinConfig
from .errors import VideoReadError
from .feature_extraction_avcanet import AVCANetFeatureExtractor
from .labels import EMOTIONS, LABEL_SETS, LabelSet, get_label_set
from .modeling_avcanet import AVCANetForVideoClassification, AVCANetModel
from .modeling_video_swin import VideoSwinModel
from .processing_avcanet import AVCANetProcessor
from .video_processing_avcanet import AVCANetVideoProcessor

AutoConfig.register(AVCANetConfig.model_type, AVCANetConfig)
AutoConfig.register(VideoSwinConfig.model_type, VideoSwinConfig)
AutoModel.register(AVCANetConfig, AVCANetModel)
AutoModel.register(VideoSwinConfig, VideoSwinModel)
AutoModelForVideoClassification.register(AVCANetConfig, AVCANetForVideoClassification)
AutoProcessor.register(AVCANetConfig, AVCANetProcessor)
AutoFeatureExtractor.register(AVCANetConfig, AVCANetFeatureExtractor)
# AutoVideoProcessor needs torchvision (transformers' requirement, not ours): registered only where it is importable.
if is_torchvision_available():
    from transformers import AutoVideoProcessor

    AutoVideoProcessor.register(AVCANetConfig, AVCANetVideoProcessor)

AVCANetConfig.register_for_auto_class()
VideoSwinConfig.register_for_auto_class()
AVCANetModel.register_for_auto_class("AutoModel")
AVCANetForVideoClassification.register_for_auto_class("AutoModelForVideoClassification")
VideoSwinModel.register_for_auto_class("AutoModel")
AVCANetProcessor.register_for_auto_class("AutoProcessor")
AVCANetFeatureExtractor.register_for_auto_class("AutoFeatureExtractor")
AVCANetVideoProcessor.register_for_auto_class("AutoVideoProcessor")

from .pipeline_video_emotion import VideoEmotionPipeline  # registers "video-emotion"; needs the above

_LAZY = {"AVCANetTrainer": "training", "AVCANetTrainingArguments": "training"}
_CONVERTERS = dict.fromkeys(
    ("ConversionReport", "convert_resnet", "convert_video_backbone", "inflate_swin2d",
     "load_pretrained_backbones", "load_video_swin"),
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
    "AVCANetAudioConfig",
    "AVCANetConfig",
    "AVCANetFeatureExtractor",
    "AVCANetForVideoClassification",
    "AVCANetModel",
    "AVCANetProcessor",
    "AVCANetTrainer",
    "AVCANetTrainingArguments",
    "AVCANetVideoProcessor",
    "ConversionReport",
    "LabelSet",
    "VideoEmotionPipeline",
    "VideoReadError",
    "VideoSwinConfig",
    "VideoSwinModel",
    "convert_resnet",
    "convert_video_backbone",
    "get_label_set",
    "inflate_swin2d",
    "load_pretrained_backbones",
    "load_video_swin",
]
