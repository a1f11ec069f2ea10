"""The SR3 U-Net's blocks, described once from the model config.

`IDM` builds and runs its U-Net from this description, and the converter of official PyTorch
checkpoints maps the official `denoise_fn.downs` / `mid` / `ups` lists and `final_conv` through
the same description, so the network and the checkpoint key map cannot drift apart. Each spec
names where its module lives in our NNX parameter tree (`path`) and which official module holds
its weights (`official`, under `denoise_fn.`). Pure Python: no JAX.
"""
from typing import NamedTuple

import ml_collections

Path = tuple  # A path in the NNX parameter tree, e.g. ('down_blocks', 0, 1).


class ConvSpec(NamedTuple):
  """A 3x3 convolution (`layers.Conv`): the U-Net's input or a stride-2 downsampler."""
  path: Path  # ('conv_in',) or ('downsamplers', level).
  official: str  # The official Conv2d: 'downs.0', or 'downs.{k}.conv' inside a Downsample.
  in_channels: int
  out_channels: int
  stride: int


class ResAttnSpec(NamedTuple):
  """A residual block, then self-attention when `with_attn` (`unet_blocks.ResAttnBlock`)."""
  path: Path  # ('down_blocks', level, j), ('mid', i) or ('up_blocks', i, j); i counts up levels.
  official: str  # The official ResnetBlocWithAttn: 'downs.{k}', 'mid.{i}' or 'ups.{k}'.
  in_channels: int  # On the up side: the features plus the skip concatenated to them.
  out_channels: int
  with_attn: bool


class UpsamplerSpec(NamedTuple):
  """An implicit upsampler (`ImplicitUpsampler`) from U-Net level `level` to `level - 1`."""
  path: Path  # ('upsamplers', i): leaves the i-th up level.
  official: str  # 'ups.{k}'.
  channels: int
  level: int  # Mixes in this level's LR conditioning, `Conditioning.levels[level - 1]`.


class NormActConvSpec(NamedTuple):
  """The output head (`unet_blocks.NormActConv`): norm, swish, 3x3 conv to RGB."""
  path: Path  # ('conv_out',).
  official: str  # 'final_conv'.
  in_channels: int
  out_channels: int


Spec = ConvSpec | ResAttnSpec | UpsamplerSpec | NormActConvSpec


class Level(NamedTuple):
  """One U-Net level on one side of the U: its residual blocks, then the resampler leaving it."""
  blocks: tuple[ResAttnSpec, ...]
  resample: ConvSpec | UpsamplerSpec | None  # None on the side's last level.


class UNetLayout(NamedTuple):
  """Every U-Net block. Each down-side output (conv_in's, every block's and downsampler's) is
  a skip; each up-side block concatenates one to its input, the last pushed first."""
  conv_in: ConvSpec
  down: tuple[Level, ...]  # Finest level first.
  mid: tuple[ResAttnSpec, ...]
  up: tuple[Level, ...]  # Coarsest level first.
  conv_out: NormActConvSpec

  def specs(self) -> tuple[Spec, ...]:
    """Every spec in construction order, which is also the official modules' order."""
    def side(levels):
      return [s for level in levels for s in (*level.blocks, level.resample) if s is not None]
    return (self.conv_in, *side(self.down), *self.mid, *side(self.up), self.conv_out)


def unet_layout(cfg: ml_collections.ConfigDict) -> UNetLayout:
  """The U-Net of `cfg` (inner_channel, channel_multiplier, res_blocks, attn_res, image_size).

  As in the official network: level l has inner_channel * channel_multiplier[l] channels,
  attention where the level's resolution is in attn_res, the resolution halving on the way down
  and doubling back from the coarsest level on the way up.
  """
  inner = cfg.inner_channel
  chans = [inner * m for m in cfg.channel_multiplier]
  last = len(chans) - 1
  res, pre = cfg.image_size, inner
  conv_in = ConvSpec(('conv_in',), 'downs.0', 6, inner, stride=1)  # x_con and y_t concatenated.
  # Channels of every down-side output. The official `downs` list has one entry per output, so
  # its length is the index of the next entry.
  skip_channels = [inner]

  down = []
  for level, ch in enumerate(chans):
    blocks = []
    for j in range(cfg.res_blocks):
      blocks.append(ResAttnSpec(('down_blocks', level, j), f'downs.{len(skip_channels)}', pre,
                                ch, res in cfg.attn_res))
      pre = ch
      skip_channels.append(ch)
    resample = None
    if level < last:
      resample = ConvSpec(('downsamplers', level), f'downs.{len(skip_channels)}.conv', ch, ch,
                          stride=2)
      skip_channels.append(ch)
      res //= 2
    down.append(Level(tuple(blocks), resample))

  mid = (ResAttnSpec(('mid', 0), 'mid.0', pre, pre, True),
         ResAttnSpec(('mid', 1), 'mid.1', pre, pre, False))

  up, num_ups = [], 0  # num_ups: entries of the official `ups` list so far.
  for i, level in enumerate(reversed(range(len(chans)))):
    blocks = []
    for j in range(cfg.res_blocks + 1):
      blocks.append(ResAttnSpec(('up_blocks', i, j), f'ups.{num_ups}', pre + skip_channels.pop(),
                                chans[level], res in cfg.attn_res))
      pre = chans[level]
      num_ups += 1
    resample = None
    if level > 0:
      resample = UpsamplerSpec(('upsamplers', i), f'ups.{num_ups}', pre, level)
      num_ups += 1
      res *= 2
    up.append(Level(tuple(blocks), resample))

  return UNetLayout(conv_in, tuple(down), mid, tuple(up),
                    NormActConvSpec(('conv_out',), 'final_conv', pre, 3))
