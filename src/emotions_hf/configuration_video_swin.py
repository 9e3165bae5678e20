"""Configuration of the Video Swin backbone: a model of its own (`VideoSwinModel`, Auto-registered as "video_swin":
transformers has no Video Swin) and the `vision_config` of `AVCANetConfig`. Defaults are the paper's: Video Swin-T on
8 × 112² clips.
"""

from __future__ import annotations

from transformers import PreTrainedConfig

from .paper import FRAMES_PER_SNIPPET, IMAGE_SIZE


def as_tuples(config: PreTrainedConfig, names: tuple[str, ...]) -> None:
    """JSON gives lists back: keep sizes as tuples, so configs compare and hash the same after a round trip."""
    for name in names:
        setattr(config, name, tuple(getattr(config, name)))


class VideoSwinConfig(PreTrainedConfig):
    r"""Configuration of [`VideoSwinModel`] (Liu et al., "Video Swin Transformer", CVPR 2022); Swin-T by default.

    Args:
        image_size (`int`, 112): frame height and width.
        num_frames (`int`, 8): frames per clip (AV-CANet: frames per snippet).
        num_channels (`int`, 3): colour channels.
        patch_size (`tuple[int]`, (2, 4, 4)): patch (time, height, width).
        stem_channels (`int`, 0): 0 embeds each patch linearly (the official patchify, what pretrained checkpoints
            hold). A positive number puts a convolutional stem before it (`VideoSwinStem`): a convolution of that
            many channels over each tubelet's frames, `stem_kernel_size` pixels wide so it overlaps patch borders,
            and a GELU: a nonlinearity at the pixel level, for cues that are products of differences, which the
            linear patchify cannot form (the direction of motion, the sign of a temporal times a spatial difference;
            the energy at a spatial frequency). A small model trained from scratch learned them slowly or not at all
            without it (`bench/learnability.py`, the motion and texture families).
        stem_kernel_size (`int`, 3): the stem's spatial kernel side (odd); it should span the motion between
            consecutive frames at the input size.
        embed_dim (`int`, 96): channel width C of the first stage; the last has `hidden_size` = C·2^(stages−1).
        depths (`tuple[int]`, (2, 2, 6, 2)): blocks per stage.
        num_heads (`tuple[int]`, (3, 6, 12, 24)): attention heads per stage.
        window_size (`tuple[int]`, (8, 7, 7)): 3D attention window (time, height, width).
        mlp_ratio (`float`, 4.0): MLP hidden width over channel width.
        qkv_bias (`bool`, True): bias on the fused qkv projection.
        drop_path_rate (`float`, 0.1): stochastic depth, rising linearly over the blocks.
        attention_dropout (`float`, 0.0) / hidden_dropout (`float`, 0.0): dropouts.
        layer_norm_eps (`float`, 1e-5): LayerNorm epsilon.
        initializer_range (`float`, 0.02): std of the truncated-normal weight init.
    """

    model_type = "video_swin"
    base_config_key = "vision_config"

    image_size: int = IMAGE_SIZE
    num_frames: int = FRAMES_PER_SNIPPET
    num_channels: int = 3
    patch_size: tuple[int, int, int] = (2, 4, 4)
    stem_channels: int = 0
    stem_kernel_size: int = 3
    embed_dim: int = 96
    depths: tuple[int, ...] = (2, 2, 6, 2)
    num_heads: tuple[int, ...] = (3, 6, 12, 24)
    window_size: tuple[int, int, int] = (8, 7, 7)
    mlp_ratio: float = 4.0
    qkv_bias: bool = True
    drop_path_rate: float = 0.1
    attention_dropout: float = 0.0
    hidden_dropout: float = 0.0
    layer_norm_eps: float = 1e-5
    initializer_range: float = 0.02

    def __post_init__(self, **kwargs):
        kwargs.pop("hidden_size", None)  # derived from embed_dim and depths
        as_tuples(self, ("patch_size", "depths", "num_heads", "window_size"))
        super().__post_init__(**kwargs)
        self.validate()

    @property
    def hidden_size(self) -> int:
        """Channel width of the last stage: the size of the pooled features (768 for Swin-T)."""
        return self.embed_dim * 2 ** (len(self.depths) - 1)

    def validate(self):
        """Raise a `ValueError` naming the field to change when the backbone cannot be built."""
        def fail(message):
            raise ValueError(f"VideoSwinConfig: {message}")

        if len(self.depths) != len(self.num_heads):
            fail(f"depths {self.depths} and num_heads {self.num_heads} must have the same length")
        if len(self.patch_size) != 3 or len(self.window_size) != 3:
            fail("patch_size and window_size are (time, height, width) triples")
        if self.num_frames % self.patch_size[0]:
            fail(f"num_frames={self.num_frames} must be a multiple of the temporal patch size {self.patch_size[0]}")
        if self.image_size % self.patch_size[1] or self.image_size % self.patch_size[2]:
            fail(f"image_size={self.image_size} must be a multiple of the spatial patch size {self.patch_size[1:]}")
        if self.stem_channels < 0:
            fail(f"stem_channels={self.stem_channels} must be 0 (the linear patchify) or a number of channels")
        if self.stem_kernel_size < 1 or self.stem_kernel_size % 2 == 0:
            fail(f"stem_kernel_size={self.stem_kernel_size} must be odd, so the stem keeps the frame size")
        if any(self.embed_dim * 2**i % h for i, h in enumerate(self.num_heads)):
            fail(f"each stage width embed_dim*2^i must divide by its heads: embed_dim={self.embed_dim}, "
                 f"num_heads={self.num_heads}")


__all__ = ["VideoSwinConfig"]
