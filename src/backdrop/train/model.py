"""The student: a U-Net whose encoder is MobileNetV2 (inverted residuals, depthwise separable).

Why this shape: MobileNetV2 blocks put almost all multiply-adds in 1x1 convolutions and keep the
3x3 work depthwise, which is what runs fast on phone CPUs and in ONNX Runtime; the U-Net decoder
brings back the stride-2/4/8 skips that a matte edge needs. The decoder is depthwise separable
too, so at ``width=0.5`` the whole network stays under 0.5 M parameters (see :func:`count_params`
and :func:`count_flops`, printed by ``backdrop train info``).

The last MobileNetV2 stage (320 channels) and its 1280-channel head exist for ImageNet
classification; a 256x256 matte gains nothing from them and they would hold a third of the
parameters, so the encoder stops at the 160-channel stage (stride 32).

Heads: ``matte`` gives one channel of logits at the input size (sigmoid = person probability);
``parsing`` (optional) gives 3 channels of logits (background / person / edge band) used in a
first training stage to make the decoder attend to edges. Export keeps only the matte head.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

# (expansion t, channels c, repeats n, first stride s): MobileNetV2 table 2 without the 320 stage
MOBILENET_V2_STAGES = ((1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1),
                       (6, 160, 3, 2))
INPUT_MEAN = (0.5, 0.5, 0.5)
INPUT_STD = (0.5, 0.5, 0.5)
"""Normalisation of RGB/255 before the network; recorded in the exported spec. No ImageNet
weights are used (nothing is downloaded), so the simple symmetric range is as good as any."""


def make_divisible(v: float, divisor: int = 8, min_value: int | None = None) -> int:
    """Round channels to a multiple of 8 (MobileNet rule: never drop more than 10%)."""
    min_value = min_value or divisor
    new_v = max(min_value, int(v + divisor / 2) // divisor * divisor)
    if new_v < 0.9 * v:
        new_v += divisor
    return new_v


class ConvBNAct(nn.Sequential):
    def __init__(self, cin: int, cout: int, k: int = 3, stride: int = 1, groups: int = 1, act: bool = True):
        layers: list[nn.Module] = [nn.Conv2d(cin, cout, k, stride, k // 2, groups=groups, bias=False),
                                   nn.BatchNorm2d(cout)]
        if act:
            layers.append(nn.ReLU6(inplace=True))
        super().__init__(*layers)


class InvertedResidual(nn.Module):
    """MobileNetV2 block: 1x1 expand, 3x3 depthwise, 1x1 linear projection, residual if shapes match."""

    def __init__(self, cin: int, cout: int, stride: int, expand: int):
        super().__init__()
        hidden = cin * expand
        layers: list[nn.Module] = []
        if expand != 1:
            layers.append(ConvBNAct(cin, hidden, 1))
        layers += [ConvBNAct(hidden, hidden, 3, stride, groups=hidden), ConvBNAct(hidden, cout, 1, act=False)]
        self.block = nn.Sequential(*layers)
        self.residual = stride == 1 and cin == cout

    def forward(self, x):
        y = self.block(x)
        return x + y if self.residual else y


class SeparableConv(nn.Sequential):
    """3x3 depthwise + 1x1 pointwise, each with BN and ReLU6: the decoder's building block."""

    def __init__(self, cin: int, cout: int):
        super().__init__(ConvBNAct(cin, cin, 3, groups=cin), ConvBNAct(cin, cout, 1))


class MobileNetV2Encoder(nn.Module):
    """Features at strides 2, 4, 8, 16, 32 (the U-Net skips)."""

    def __init__(self, width: float = 1.0):
        super().__init__()
        c0 = make_divisible(32 * width)
        self.stem = ConvBNAct(3, c0, 3, 2)
        blocks: list[nn.Module] = []
        self.skip_after: list[int] = []  # block index after which a feature is taken
        self.channels: list[int] = []
        cin = c0
        for t, c, n, s in MOBILENET_V2_STAGES:
            cout = make_divisible(c * width)
            if s == 2 and blocks:
                self.skip_after.append(len(blocks) - 1)
                self.channels.append(cin)
            for i in range(n):
                blocks.append(InvertedResidual(cin, cout, s if i == 0 else 1, t))
                cin = cout
        self.skip_after.append(len(blocks) - 1)
        self.channels.append(cin)
        self.blocks = nn.ModuleList(blocks)

    def forward(self, x):
        x = self.stem(x)
        feats = []
        for i, block in enumerate(self.blocks):
            x = block(x)
            if i in self.skip_after:
                feats.append(x)
        return feats  # strides 2, 4, 8, 16, 32


class UpBlock(nn.Module):
    """Upsample x2 (bilinear), concatenate the skip, separable conv."""

    def __init__(self, cin: int, cskip: int, cout: int):
        super().__init__()
        self.conv = SeparableConv(cin + cskip, cout)

    def forward(self, x, skip):
        x = F.interpolate(x, size=skip.shape[-2:], mode="bilinear", align_corners=False)
        return self.conv(torch.cat([x, skip], dim=1))


class MattingUNet(nn.Module):
    """MobileNetV2 U-Net. ``forward`` returns ``{"matte": logits, "parsing": logits or None}``."""

    def __init__(self, width: float = 1.0, parsing_head: bool = True, decoder: tuple[int, ...] = (64, 48, 32, 16)):
        super().__init__()
        self.width = width
        self.encoder = MobileNetV2Encoder(width)
        ch = self.encoder.channels  # strides 2..32
        dec = [make_divisible(c * width) for c in decoder]
        self.up16 = UpBlock(ch[4], ch[3], dec[0])
        self.up8 = UpBlock(dec[0], ch[2], dec[1])
        self.up4 = UpBlock(dec[1], ch[1], dec[2])
        self.up2 = UpBlock(dec[2], ch[0], dec[3])
        # full-resolution refinement: the RGB image is the skip, so edges follow image edges.
        # Separable, because a dense 3x3 at full resolution would cost half the network's FLOPs.
        self.refine = nn.Sequential(SeparableConv(dec[3] + 3, 8), nn.Conv2d(8, 1, 1))
        self.parsing = nn.Conv2d(dec[3], 3, 1) if parsing_head else None

    def forward(self, x):
        f2, f4, f8, f16, f32 = self.encoder(x)
        y = self.up16(f32, f16)
        y = self.up8(y, f8)
        y = self.up4(y, f4)
        y2 = self.up2(y, f2)
        up = F.interpolate(y2, size=x.shape[-2:], mode="bilinear", align_corners=False)
        matte = self.refine(torch.cat([up, x], dim=1))
        parsing = None
        if self.parsing is not None:
            parsing = F.interpolate(self.parsing(y2), size=x.shape[-2:], mode="bilinear", align_corners=False)
        return {"matte": matte, "parsing": parsing}


class MatteOnly(nn.Module):
    """What is exported: the matte head with its sigmoid inside the graph (spec output ``sigmoid``)."""

    def __init__(self, net: MattingUNet):
        super().__init__()
        self.net = net

    def forward(self, x):
        return torch.sigmoid(self.net(x)["matte"])


def build_model(width: float = 1.0, parsing_head: bool = True) -> MattingUNet:
    if not 0.1 <= float(width) <= 2.0:
        from . import TrainError

        raise TrainError(f"model width must be in [0.1, 2.0], not {width}")
    return MattingUNet(float(width), parsing_head=parsing_head)


def count_params(model: nn.Module, *, matte_only: bool = True) -> int:
    """Parameters that are exported (the parsing head is training-only, so left out by default)."""
    skip = {id(p) for p in model.parsing.parameters()} if matte_only and getattr(model, "parsing", None) else set()
    return sum(p.numel() for p in model.parameters() if id(p) not in skip)


def count_flops(model: nn.Module, height: int = 256, width: int = 256) -> int:
    """Multiply-adds x 2 of one forward pass at (height, width), counting convolutions and linears.

    Counted from hooks on the real modules (so it always matches the architecture); BN, ReLU,
    interpolation and additions are a few percent and left out, as papers do.
    """
    total = 0

    def conv_hook(m, inp, out):
        nonlocal total
        k = m.kernel_size[0] * m.kernel_size[1]
        total += 2 * out.numel() * (m.in_channels // m.groups) * k

    def linear_hook(m, inp, out):
        nonlocal total
        total += 2 * out.numel() * m.in_features

    target = model.net if isinstance(model, MatteOnly) else model
    skip = set(target.parsing.modules()) if getattr(target, "parsing", None) is not None else set()
    hooks = []
    for m in model.modules():
        if m in skip:
            continue
        if isinstance(m, nn.Conv2d):
            hooks.append(m.register_forward_hook(conv_hook))
        elif isinstance(m, nn.Linear):
            hooks.append(m.register_forward_hook(linear_hook))
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            model(torch.zeros(1, 3, height, width))
    finally:
        for h in hooks:
            h.remove()
        model.train(was_training)
    return total
