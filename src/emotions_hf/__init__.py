"""emotions-hf: the eMotions dataset and AV-CANet, the Hugging Face way.

Importing the package registers AV-CANet with the Auto classes and the "video-emotion" pipeline.
"""

from transformers import AutoConfig

from .configuration_avcanet import AVCANetConfig
from .labels import EMOTIONS, LABEL_SETS, LabelSet, get_label_set

AutoConfig.register(AVCANetConfig.model_type, AVCANetConfig)

__version__ = "0.1.0"
__all__ = ["AVCANetConfig", "EMOTIONS", "LABEL_SETS", "LabelSet", "get_label_set"]

from transformers import AutoModel, AutoModelForVideoClassification

from .modeling_avcanet import AVCANetForVideoClassification, AVCANetModel

AutoModel.register(AVCANetConfig, AVCANetModel)
AutoModelForVideoClassification.register(AVCANetConfig, AVCANetForVideoClassification)
# A saved or pushed model carries its code (config.json auto_map + the .py files) for trust_remote_code=True.
AVCANetConfig.register_for_auto_class()
AVCANetModel.register_for_auto_class("AutoModel")
AVCANetForVideoClassification.register_for_auto_class("AutoModelForVideoClassification")
__all__ += ["AVCANetForVideoClassification", "AVCANetModel"]
