"""SI100FaceNet (the course's network), ConvNet 5, ResNet-9, SmallVGG, DACL's ResNet-18, ensembles,
and a registry.

The lecture's figure with the kernel sizes was lost, so these are the choices:
every convolution is 3x3 with padding 1 and stride 1 (it keeps the image size),
every max-pool is 2x2 with stride 2 (it halves the size), and the hidden fully
connected layer has 256 units.

Dimension trace for one 48x48 image (height x width x channels; PyTorch prints
the same tensor as (batch, channels, height, width)):

    input     48x48x3
    conv1     48x48x64     3x3 kernel, padding 1: 48 + 2*1 - 3 + 1 = 48
    pool1     24x24x64     48 / 2
    act1      24x24x64     LeakyReLU keeps the shape
    conv2     24x24x128
    pool2     12x12x128
    act2      12x12x128
    conv3     12x12x256
    pool3     6x6x256
    act3      6x6x256
    flatten   9216         6 * 6 * 256
    fc1       256
    act4      256
    fc2       num_classes  one score per class

Parameters per layer. A convolution has k*k*C_in*C_out weights plus one bias per
output channel; a linear layer has in*out weights plus one bias per output:

    conv1   3*3*3*64    + 64   =     1,792   (640 with 1 input channel)
    conv2   3*3*64*128  + 128  =    73,856
    conv3   3*3*128*256 + 256  =   295,168
    fc1     9216*256    + 256  = 2,359,552
    fc2     256*3       + 3    =       771   (1,799 for 7 classes)
    total                        2,731,139   (2,732,167 for 7 classes)

Pooling and LeakyReLU have no parameters. About 86% of all parameters sit in
fc1: connecting 9216 numbers to 256 units is the expensive step.

SI100FaceNet(batch_norm=True, dropout=0.2) adds a BatchNorm2d after each
convolution (2 learned numbers per channel: 128 + 256 + 512 = 896 more
parameters) and dropout before fc1 and fc2. Neither changes a shape, so the
dimension trace above still holds. The fast recipe (recipes.FAST) trains it half
as wide (width=32: 32, 64 and 128 channels, a quarter of the computation) and
normalises after the pooling (pool_before_norm=True), on maps a quarter the size.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import nn
from torchvision.models import resnet18

from .errors import FerError

INPUT_SIZE = 48
"""The side in pixels of the faces every model here takes unless built for another:
FER2013's 48x48."""


class SI100FaceNet(nn.Module):
    """Three conv -> max-pool -> LeakyReLU blocks, then two fully connected layers.

    Set `print_shapes = True` (in the constructor or later on the model) and
    forward prints the tensor shape after every step, to check a hand-worked
    dimension trace. `input_size` is the image side in pixels; the first fully
    connected layer is sized from it. batch_norm=True normalises each
    convolution's output per channel (training gets faster and steadier);
    dropout=p zeroes a random fraction p of fc1's and fc2's inputs while training.
    width is conv1's channels (64, the course's); conv2 and conv3 have 2x and 4x as many.
    Half the width is a quarter of the convolutions' computation: the fast recipe's 32.
    pool_before_norm=True pools before the batch norm (conv -> pool -> norm ->
    LeakyReLU, the order of the airbench speed-run networks): the norm, the costliest
    step on a CPU after the convolutions, then works on a map a quarter the size. The
    order is saved with the weights (a `pool_before_norm` entry of the state_dict), so
    that a plain state_dict is never read back in the other order.
    """

    def __init__(
        self,
        num_classes: int = 3,
        in_channels: int = 3,
        hidden: int = 256,
        print_shapes: bool = False,
        input_size: int = INPUT_SIZE,
        batch_norm: bool = False,
        dropout: float = 0.0,
        width: int = 64,
        pool_before_norm: bool = False,
    ) -> None:
        super().__init__()
        if pool_before_norm and not batch_norm:
            raise FerError("pool_before_norm=True orders the batch norm: it needs batch_norm=True")
        if width < 1:
            raise FerError(f"width={width}: a convolution needs at least 1 channel")
        if input_size < 8:
            raise FerError(f"input_size={input_size} is too small: three 2x2 poolings need >= 8")
        self.input_size = input_size
        self.print_shapes = print_shapes
        self.batch_norm = batch_norm
        self.pool_before_norm = pool_before_norm
        if pool_before_norm:  # a marker in the state_dict: checkpoints._as_si100 reads it
            self.register_buffer("pool_before_norm_marker", torch.ones(()))

        def norm(channels: int) -> nn.Module:
            return nn.BatchNorm2d(channels) if batch_norm else nn.Identity()

        self.conv1 = nn.Conv2d(in_channels, width, kernel_size=3, padding=1)
        self.bn1 = norm(width)
        self.pool1 = nn.MaxPool2d(2)
        self.act1 = nn.LeakyReLU(negative_slope=0.01)

        self.conv2 = nn.Conv2d(width, 2 * width, kernel_size=3, padding=1)
        self.bn2 = norm(2 * width)
        self.pool2 = nn.MaxPool2d(2)
        self.act2 = nn.LeakyReLU(negative_slope=0.01)

        self.conv3 = nn.Conv2d(2 * width, 4 * width, kernel_size=3, padding=1)
        self.bn3 = norm(4 * width)
        self.pool3 = nn.MaxPool2d(2)
        self.act3 = nn.LeakyReLU(negative_slope=0.01)

        side = input_size // 8  # each of the three poolings halves the side, rounding down
        self.drop1 = nn.Dropout(dropout)
        self.fc1 = nn.Linear(4 * width * side * side, hidden)
        self.act4 = nn.LeakyReLU(negative_slope=0.01)
        self.drop2 = nn.Dropout(dropout)
        self.fc2 = nn.Linear(hidden, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Scores (logits) of shape (batch, num_classes) for images (batch, C, H, W)."""
        x = self._show("input", x)
        for i in (1, 2, 3):
            x = self._show(f"conv{i}", getattr(self, f"conv{i}")(x))
            if self.batch_norm and not self.pool_before_norm:
                x = self._show(f"bn{i}", getattr(self, f"bn{i}")(x))
            x = self._show(f"pool{i}", getattr(self, f"pool{i}")(x))
            if self.pool_before_norm:
                x = self._show(f"bn{i}", getattr(self, f"bn{i}")(x))
            x = self._show(f"act{i}", getattr(self, f"act{i}")(x))
        x = self._show("flatten", torch.flatten(x, start_dim=1))
        x = self._show("fc1", self.fc1(self.drop1(x)))
        x = self._show("act4", self.act4(x))
        return self._show("fc2", self.fc2(self.drop2(x)))

    def _show(self, step: str, x: torch.Tensor) -> torch.Tensor:
        if self.print_shapes:
            print(f"{step:<10} -> {tuple(x.shape)}")
        return x


class ConvNet5(nn.Module):
    """Report 1's chosen small CNN ("model 5"), 61.2% test accuracy on 7 classes there.

    Three blocks Conv2d 3x3 (padding 1) -> BatchNorm2d -> ReLU -> Dropout2d -> MaxPool2d 2,
    64 channels each (48 -> 24 -> 12 -> 6 pixels), then Linear 6*6*64 -> 512 -> BatchNorm1d
    -> Dropout -> ReLU and Linear 512 -> num_classes; dropout 0.4 everywhere.
    """

    def __init__(
        self,
        num_classes: int = 7,
        in_channels: int = 3,
        width: int = 64,
        hidden: int = 512,
        dropout: float = 0.4,
        input_size: int = INPUT_SIZE,
    ) -> None:
        super().__init__()
        self.input_size = input_size
        blocks: list[nn.Module] = []
        channels = in_channels
        for _ in range(3):
            blocks += [
                nn.Conv2d(channels, width, kernel_size=3, padding=1),
                nn.BatchNorm2d(width),
                nn.ReLU(),
                nn.Dropout2d(dropout),
                nn.MaxPool2d(2),
            ]
            channels = width
        self.features = nn.Sequential(*blocks)
        side = input_size // 8
        self.classifier = nn.Sequential(
            nn.Flatten(),
            nn.Linear(width * side * side, hidden),
            nn.BatchNorm1d(hidden),
            nn.Dropout(dropout),
            nn.ReLU(),
            nn.Linear(hidden, num_classes),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Scores (logits) of shape (batch, num_classes)."""
        return self.classifier(self.features(x))


def conv_block(in_channels: int, out_channels: int, pool: bool = False) -> nn.Sequential:
    """Report 3's building block: Conv2d 3x3 (padding 1) -> BatchNorm2d -> ELU [-> MaxPool2d 2]."""
    layers: list[nn.Module] = [
        nn.Conv2d(in_channels, out_channels, kernel_size=3, padding=1),
        nn.BatchNorm2d(out_channels),
        nn.ELU(inplace=True),
    ]
    if pool:
        layers.append(nn.MaxPool2d(2))
    return nn.Sequential(*layers)


class Residual(nn.Module):
    """x + f(x): the block only has to learn a correction to its input."""

    def __init__(self, *layers: nn.Module) -> None:
        super().__init__()
        self.body = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


class ResNet9(nn.Module):
    """Report 3's ResNet-9: three stages of two conv blocks and a residual pair.

    Stage widths 128, 256, 512; each stage's second block halves the image
    (48 -> 24 -> 12 -> 6), a residual of two conv blocks follows, then dropout.
    The classifier max-pools the 6x6 map to 1x1 and maps 512 numbers to the scores.
    """

    def __init__(
        self,
        num_classes: int = 7,
        in_channels: int = 3,
        widths: tuple[int, int, int] = (128, 256, 512),
        dropout: float = 0.5,
        input_size: int = INPUT_SIZE,
    ) -> None:
        super().__init__()
        self.input_size = input_size
        stages: list[nn.Module] = []
        channels = in_channels
        for width in widths:
            stages += [
                conv_block(channels, width),
                conv_block(width, width, pool=True),
                Residual(conv_block(width, width), conv_block(width, width)),
                nn.Dropout(dropout),
            ]
            channels = width
        self.features = nn.Sequential(*stages)
        self.classifier = nn.Sequential(
            nn.MaxPool2d(input_size // 8), nn.Flatten(), nn.Linear(channels, num_classes)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Scores (logits) of shape (batch, num_classes)."""
        return self.classifier(self.features(x))


class SmallVGG(nn.Module):
    """A small VGG-style net for 48x48 faces; the shipped `best-7class` averages two of them.

    Four stages of two Conv2d 3x3 (padding 1, no bias: batch norm adds one) ->
    BatchNorm2d -> ReLU, each stage ending in MaxPool2d 2 (48 -> 24 -> 12 -> 6 -> 3);
    widths 32, 64, 128, 256. Global average pooling then turns the 3x3x256 map into
    256 numbers, then dropout and Linear 256 -> classes. So nearly all of its 1.17 M
    parameters are in convolutions (SI100FaceNet keeps 86% of its in one linear layer).

    head="flatten" keeps the 3x3 map's nine places instead of averaging them away
    (Flatten, dropout, Linear 2304 -> classes): a face's eyes are at the top and its
    mouth at the bottom, and this head can tell which place a feature was found in.
    """

    input_size = INPUT_SIZE  # average pooling runs at any size; what it learned is at 48x48
    heads = ("average", "flatten")

    def __init__(
        self,
        num_classes: int = 7,
        in_channels: int = 1,
        width: int = 32,
        dropout: float = 0.3,
        head: str = "average",
    ) -> None:
        super().__init__()
        if head not in self.heads:
            raise FerError(f"unknown head {head!r}: expected one of {', '.join(self.heads)}")
        layers: list[nn.Module] = []
        channels = in_channels
        for stage_width in (width, 2 * width, 4 * width, 8 * width):
            for _ in range(2):
                layers += [
                    nn.Conv2d(channels, stage_width, kernel_size=3, padding=1, bias=False),
                    nn.BatchNorm2d(stage_width),
                    nn.ReLU(inplace=True),
                ]
                channels = stage_width
            layers.append(nn.MaxPool2d(2))
        self.features = nn.Sequential(*layers)
        side = INPUT_SIZE // 16  # four 2x2 poolings
        pool, features = (
            ([nn.AdaptiveAvgPool2d(1)], channels) if head == "average" else ([], channels * side**2)
        )
        self.classifier = nn.Sequential(
            *pool, nn.Flatten(), nn.Dropout(dropout), nn.Linear(features, num_classes)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Scores (logits) of shape (batch, num_classes)."""
        return self.classifier(self.features(x))


class Ensemble(nn.Module):
    """Several trained models that vote: the log of the mean of their softmax probabilities.

    members: one {"arch": name, "arch_kwargs": {...}} per model, as checkpoints store
    them (checkpoints.combine_checkpoints writes an ensemble checkpoint). The output is
    a log-probability, so softmax of it, as predict and the loss take, gives back the
    mean probability exactly. Models trained differently (another seed, another
    augmentation) make partly different mistakes, and the mean cancels some of them.
    """

    def __init__(self, num_classes: int, members: list[dict]) -> None:
        super().__init__()
        if len(members) < 2:
            raise FerError(f"an ensemble needs at least 2 members, got {len(members)}")
        counts = [m["arch_kwargs"].get("num_classes") for m in members]
        if any(count != num_classes for count in counts):  # before building any member
            raise FerError(f"ensemble of {num_classes} classes, members for {counts} classes")
        self.members = nn.ModuleList(build_model(m["arch"], **m["arch_kwargs"]) for m in members)
        sizes = sorted({input_size(member) for member in self.members})
        if len(sizes) > 1:
            raise FerError(f"the members of an ensemble must take one input size, not {sizes}")
        self.input_size = sizes[0]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Log of the members' mean probability, shape (batch, num_classes)."""
        log_probs = torch.stack([torch.log_softmax(member(x), dim=1) for member in self.members])
        # log(mean(p)) computed as logsumexp(log p) - log n, which never takes log(0)
        return torch.logsumexp(log_probs, dim=0) - math.log(len(self.members))


# --- DACL's network (Report 2); its loss and ablation are in dacl.py -------------------

FEATURES = 512
"""Features per image: ResNet-18's last block has 512 channels."""

ENCODER_WIDTHS: tuple[int, ...] = (3584, 512, 64)
"""Outputs of the context encoder's three fully connected layers (as in the DACL code)."""


def resnet18_48(num_classes: int = 7, channels: int = 3, maxpool: bool = True) -> nn.Module:
    """torchvision's ResNet-18 (random weights) with a stem for 48x48 faces.

    The original stem (7x7 convolution with stride 2, then a 3x3 max-pool with stride 2)
    shrinks 224x224 images 4 times before the first residual block, to 56x56. A 48x48
    face would be 12x12 there and 2x2 at the end. Here conv1 is a 3x3 convolution with
    stride 1 and the max-pool stays: the blocks see 24x24, 24, 12, 6 and 3 pixels, and
    the last feature map is 512x3x3 instead of the paper's 512x7x7. maxpool=False drops
    the max-pool too (48x48 into the blocks, 512x6x6 at the end, about 3x slower to train).
    """
    model = resnet18(weights=None, num_classes=num_classes)
    model.conv1 = nn.Conv2d(channels, 64, kernel_size=3, stride=1, padding=1, bias=False)
    if not maxpool:
        model.maxpool = nn.Identity()
    return model


class ResNet18Faces(nn.Module):
    """ResNet-18 for 48x48 faces (resnet18_48) as a plain classifier: scores only.

    What DACL starts from: the paper's ResNet-18 was first trained on faces with
    cross-entropy alone. Its layers carry the same names as DACLNet's (backbone, fc), so a
    trained one gives a DACLNet everything but the attention net (pretrained.load_backbone).
    """

    input_size = INPUT_SIZE  # global pooling runs at any size; what it learned is at 48x48

    def __init__(self, num_classes: int = 7, in_channels: int = 3, maxpool: bool = True) -> None:
        super().__init__()
        resnet = resnet18_48(num_classes, in_channels, maxpool)
        # Everything up to the last residual block: the feature extractor.
        self.backbone = nn.Sequential(*list(resnet.children())[:-2])
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = resnet.fc

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Scores (logits) of shape (batch, num_classes)."""
        return self.fc(torch.flatten(self.pool(self.backbone(x)), start_dim=1))


class AttentionNet(nn.Module):
    """Feature map (B, C, H, W) -> one attention weight per feature, (B, features) in (0, 1).

    Context encoder: fully connected layers with ENCODER_WIDTHS outputs, each followed
    by batch norm, ReLU after the first two and tanh after the last. Then one linear
    layer gives 2 scores per feature; a softmax over each pair (a two-way classifier,
    "attend to this feature or not") and its second probability is the weight.
    """

    def __init__(self, in_features: int, features: int = FEATURES) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        width = in_features
        for i, out in enumerate(ENCODER_WIDTHS):
            last = i == len(ENCODER_WIDTHS) - 1
            layers += [nn.Linear(width, out), nn.BatchNorm1d(out), nn.Tanh() if last else nn.ReLU()]
            width = out
        self.encoder = nn.Sequential(*layers)
        self.heads = nn.Linear(width, 2 * features)
        self.features = features

    def forward(self, feature_map: torch.Tensor) -> torch.Tensor:
        context = self.encoder(torch.flatten(feature_map, start_dim=1))
        return attention_from_heads(self.heads(context), self.features)


def attention_from_heads(head_scores: torch.Tensor, features: int = FEATURES) -> torch.Tensor:
    """(B, 2 * features) scores -> (B, features) weights: a softmax per pair, its 2nd value.

    Scores 2j and 2j+1 belong to feature j (reshape to (B, features, 2)).
    """
    pairs = head_scores.reshape(head_scores.shape[0], features, 2)
    return pairs.softmax(dim=-1)[..., 1]


class DACLNet(nn.Module):
    """ResNet-18 for 48x48 faces plus DACL's attention net.

    forward(x) returns (logits (B, classes), features (B, 512), attention (B, 512)):
    the features are the global-average-pooled last feature map, the classifier's input;
    the attention weights only enter the sparse center loss.
    """

    added_parts = ("attention.",)
    """Parts a plain ResNet18Faces lacks: fresh when a DACLNet starts from one."""

    def __init__(
        self,
        num_classes: int = 7,
        in_channels: int = 3,
        input_size: int = INPUT_SIZE,
        maxpool: bool = True,
    ) -> None:
        super().__init__()
        self.input_size = input_size  # the attention net is sized from its feature map
        resnet = ResNet18Faces(num_classes, in_channels, maxpool)
        self.backbone, self.pool, self.fc = resnet.backbone, resnet.pool, resnet.fc
        with torch.no_grad():
            self.map_shape = tuple(
                self.backbone.eval()(torch.zeros(1, in_channels, input_size, input_size)).shape
            )
        self.backbone.train()
        self.attention = AttentionNet(math.prod(self.map_shape[1:]), FEATURES)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        feature_map = self.backbone(x)
        features = torch.flatten(self.pool(feature_map), start_dim=1)
        return self.fc(features), features, self.attention(feature_map)


MODELS: dict[str, Callable[..., nn.Module]] = {
    "si100": SI100FaceNet,
    "convnet5": ConvNet5,
    "resnet9": ResNet9,
    "smallvgg": SmallVGG,
    "ensemble": Ensemble,
    "resnet18": ResNet18Faces,
    "dacl": DACLNet,
}
"""Models by the name checkpoints store. DACLNet returns (scores, features, attention);
inference.scores_of takes the scores of any of them."""


RENAMED_OPTIONS: dict[str, dict[str, str]] = {"dacl": {"size": "input_size"}}
"""Constructor arguments renamed since checkpoints saved them: model -> {old: new}."""


def build_model(name: str, num_classes: int, **kwargs: object) -> nn.Module:
    """A fresh model from the registry, e.g. build_model("si100", num_classes=7).

    Every checkpoint and ensemble member is rebuilt here, so an argument saved under an
    older name (RENAMED_OPTIONS) is read under its new one here, once.
    """
    if name not in MODELS:
        raise FerError(f"unknown model {name!r}: expected one of {', '.join(sorted(MODELS))}")
    renamed = RENAMED_OPTIONS.get(name, {})
    kwargs = {renamed.get(key, key): value for key, value in kwargs.items()}
    return MODELS[name](num_classes=num_classes, **kwargs)


def input_channels(model: nn.Module) -> int:
    """How many channels the model's input has: what its first convolution takes (1 or 3)."""
    first = next((m for m in model.modules() if isinstance(m, nn.Conv2d)), None)
    if first is None:
        raise FerError(f"{type(model).__name__} has no convolution to read its input from")
    return first.in_channels


def input_size(model: nn.Module) -> int:
    """The side in pixels of the square faces the model takes: its `input_size`, which every
    model here sets (INPUT_SIZE unless built for another); INPUT_SIZE for one that does not."""
    return int(getattr(model, "input_size", INPUT_SIZE))


def check_input(model: nn.Module, x: torch.Tensor) -> None:
    """FerError when a batch (B, C, H, W) has other channels or another size than the model
    takes.

    Said plainly here, rather than as a shape error deep inside the model (or, for a model
    with global pooling, no error and scores of faces at a scale it never learned).
    """
    if not any(isinstance(m, nn.Conv2d) for m in model.modules()):
        return  # not a network of images (a test's linear model): nothing to check
    name, wanted = type(model).__name__, input_channels(model)
    if x.dim() != 4 or x.shape[1] != wanted:
        raise FerError(
            f"{name} takes batches of {wanted}-channel faces "
            f"(batch, {wanted}, height, width), not {tuple(x.shape)}"
        )
    if not hasattr(model, "input_size"):
        return  # a network built elsewhere that does not say its size: not held to one
    side = input_size(model)
    if tuple(x.shape[2:]) != (side, side):
        raise FerError(
            f"{name} takes {side}x{side} faces, not {x.shape[2]}x{x.shape[3]} "
            f"(batch {tuple(x.shape)}); resize them or build the model with input_size"
        )


def count_parameters(model: nn.Module) -> int:
    """Number of numbers the model learns (every weight and bias)."""
    return sum(p.numel() for p in model.parameters())


def parameters_per_layer(model: nn.Module) -> list[tuple[str, int]]:
    """(layer name, parameter count) for each layer that has parameters, in order."""
    counts = []
    for name, module in model.named_modules():
        own = sum(p.numel() for p in module.parameters(recurse=False))
        if own:
            counts.append((name, own))
    return counts
