"""The presets of train.py's embedded default: an AV-CANet and a recipe that learn the synthetic set on a
laptop CPU in about a minute (`--config_name small`)."""

# 4 snippets of 2 frames at 32 px, a one-block-per-stage Video Swin and ResNet.
SMALL_CONFIG = {
    "num_snippets": 4,
    "vision_config": {"num_frames": 2, "image_size": 32, "embed_dim": 24, "depths": (1, 1), "num_heads": (1, 2),
                      "window_size": (1, 4, 4)},
    "audio_config": {"num_frames": 16, "num_mfcc": 16, "depths": (1, 1), "hidden_sizes": (16, 32)},
    "hidden_size": 32,
    "lgf_num_heads": 2,
    "lgf_window_sizes": (1, 2),
}
# Overrides of AVCANetTrainingArguments' paper defaults.
SMALL_TRAINING = {
    "num_train_epochs": 8.0,
    "learning_rate": 3e-3,
    "gradient_accumulation_steps": 1,
    "dataloader_num_workers": 2,
    "logging_steps": 5,
}
