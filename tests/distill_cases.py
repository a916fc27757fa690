"""The distill reference cases (reference/distill/CASES.md, SPEC 11), written from their descriptions.

Models, example inputs, simple configs and expected outcome; the golden JSON files are AMCT's output byte for
byte (d_functional: without its `null` entries, SPEC 11.6).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

GOLDEN = Path(__file__).parent / "golden" / "distill"


class Basic(nn.Module):
    """conv-bn-relu, conv-relu, avgpool, fc; fc registered first (order test)."""

    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(8 * 4 * 4, 10)
        self.conv = nn.Conv2d(4, 8, 3, padding=1)
        self.bn = nn.BatchNorm2d(8)
        self.relu = nn.ReLU()
        self.conv2 = nn.Conv2d(8, 8, 3, padding=1)
        self.relu2 = nn.ReLU()
        self.pool = nn.AvgPool2d(2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.relu(self.bn(self.conv(x)))
        x = self.pool(self.relu2(self.conv2(x)))
        return self.fc(x.flatten(1))  # type: ignore[no-any-return]


class Acts(nn.Module):
    """every activation type after a conv / linear, with and without BN."""

    def __init__(self) -> None:
        super().__init__()
        self.c_lrelu = nn.Conv2d(4, 4, 1)
        self.lrelu = nn.LeakyReLU(0.1)
        self.c_sig = nn.Conv2d(4, 4, 1)
        self.sig = nn.Sigmoid()
        self.c_tanh = nn.Conv2d(4, 4, 1)
        self.tanh = nn.Tanh()
        self.c_relu6 = nn.Conv2d(4, 4, 1)
        self.relu6 = nn.ReLU6()
        self.c_gelu = nn.Conv2d(4, 4, 1)
        self.gelu = nn.GELU()
        self.c_bn_relu6 = nn.Conv2d(4, 4, 1)
        self.bn = nn.BatchNorm2d(4)
        self.relu6b = nn.ReLU6()
        self.c_bn_sig = nn.Conv2d(4, 4, 1)
        self.bn2 = nn.BatchNorm2d(4)
        self.sig2 = nn.Sigmoid()
        self.fc = nn.Linear(4, 4)
        self.softmax = nn.Softmax(dim=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.lrelu(self.c_lrelu(x))
        x = self.sig(self.c_sig(x))
        x = self.tanh(self.c_tanh(x))
        x = self.relu6(self.c_relu6(x))
        x = self.gelu(self.c_gelu(x))
        x = self.relu6b(self.bn(self.c_bn_relu6(x)))
        x = self.sig2(self.bn2(self.c_bn_sig(x)))
        return self.softmax(self.fc(x.mean((2, 3))))  # type: ignore[no-any-return]


class BnVariants(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc1 = nn.Linear(4, 4)
        self.bn1d = nn.BatchNorm1d(4)
        self.relu1 = nn.ReLU()
        self.conv_a = nn.Conv2d(4, 4, 1)
        self.conv_b = nn.Conv2d(4, 4, 1)
        self.bn_shared = nn.BatchNorm2d(4)
        self.conv_c = nn.Conv2d(4, 4, 1)
        self.bn_c = nn.BatchNorm2d(4)
        self.fc2 = nn.Linear(4, 4)

    def forward(self, x: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, ...]:
        y = self.relu1(self.bn1d(self.fc1(v)))
        x = self.bn_shared(self.conv_a(x))
        x = self.bn_shared(self.conv_b(x))
        c = self.bn_c(self.conv_c(x))
        return self.fc2(y), c + 1, c * 2


class Branches(nn.Module):
    """conv output used twice (unit = conv alone); conv->bn with bn output used twice; conv->relu->two consumers."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Conv2d(4, 4, 1)
        self.left = nn.Conv2d(4, 4, 1)
        self.right = nn.Conv2d(4, 4, 1)
        self.bn_r = nn.BatchNorm2d(4)
        self.relu_r = nn.ReLU()
        self.merge = nn.Conv2d(4, 4, 1)
        self.bn_m = nn.BatchNorm2d(4)
        self.out1 = nn.Conv2d(4, 4, 1)
        self.out2 = nn.Conv2d(4, 4, 1)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        s = self.stem(x)
        a = self.left(s)
        b = self.relu_r(self.bn_r(self.right(s)))
        m = self.bn_m(self.merge(a + b))
        return self.out1(m), self.out2(m)


class ResBlock(nn.Module):
    """torchvision BasicBlock style: one ReLU module called twice."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(4, 4, 3, padding=1)
        self.bn1 = nn.BatchNorm2d(4)
        self.relu = nn.ReLU()
        self.conv2 = nn.Conv2d(4, 4, 3, padding=1)
        self.bn2 = nn.BatchNorm2d(4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.relu(self.bn1(self.conv1(x)))
        y = self.bn2(self.conv2(y))
        return self.relu(y + x)  # type: ignore[no-any-return]


class ResNetTiny(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 4, 3, padding=1)
        self.bn1 = nn.BatchNorm2d(4)
        self.relu = nn.ReLU()
        self.layer1 = nn.Sequential(ResBlock(), ResBlock())
        self.fc = nn.Linear(4, 5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.layer1(self.relu(self.bn1(self.conv1(x))))
        return self.fc(x.mean((2, 3)))  # type: ignore[no-any-return]


class Chain(nn.Module):
    """conv1-bn1-relu1-conv2-bn2-relu2-conv3-relu3-conv4 -> flatten -> fc1-relu4-fc2-fc3 (cascades for group_size)."""

    def __init__(self) -> None:
        super().__init__()
        self.fc3 = nn.Linear(4, 3)
        self.conv1 = nn.Conv2d(4, 4, 1)
        self.bn1 = nn.BatchNorm2d(4)
        self.relu1 = nn.ReLU()
        self.conv2 = nn.Conv2d(4, 4, 1)
        self.bn2 = nn.BatchNorm2d(4)
        self.relu2 = nn.ReLU()
        self.conv3 = nn.Conv2d(4, 4, 1)
        self.relu3 = nn.ReLU()
        self.conv4 = nn.Conv2d(4, 4, 1)
        self.pool = nn.MaxPool2d(2)
        self.fc1 = nn.Linear(16, 4)
        self.relu4 = nn.ReLU()
        self.fc2 = nn.Linear(4, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.relu1(self.bn1(self.conv1(x)))
        x = self.relu2(self.bn2(self.conv2(x)))
        x = self.relu3(self.conv3(x))
        x = self.pool(self.conv4(x))
        x = self.relu4(self.fc1(x.flatten(1)))
        return self.fc3(self.fc2(x))  # type: ignore[no-any-return]


class DistillTypes(nn.Module):
    """only Conv2d and Linear are distill candidates."""

    def __init__(self) -> None:
        super().__init__()
        self.c1 = nn.Conv1d(4, 4, 1)
        self.c2 = nn.Conv2d(4, 4, 1)
        self.t2 = nn.ConvTranspose2d(4, 4, 1)
        self.pool = nn.AvgPool2d(1)
        self.c3 = nn.Conv3d(2, 2, 1)
        self.lstm = nn.LSTM(4, 4)
        self.fc = nn.Linear(4, 4)

    def forward(self, s: torch.Tensor, x: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, ...]:
        y, _ = self.lstm(self.c1(s).permute(2, 0, 1))
        x = self.pool(self.t2(self.c2(x)))
        return y, self.fc(x.mean((2, 3))), self.c3(v)


class Functional(nn.Module):
    """activations and BN called functionally: their ONNX nodes carry no module name."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(4, 4, 1)
        self.conv2 = nn.Conv2d(4, 4, 1)
        self.bn2 = nn.BatchNorm2d(4)
        self.fc = nn.Linear(4, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(self.conv1(x))
        x = torch.sigmoid(self.bn2(self.conv2(x)))
        return torch.tanh(self.fc(x.mean((2, 3))))


class OnlyRelu(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.bn = nn.BatchNorm2d(4)
        self.relu = nn.ReLU()
        self.mp = nn.MaxPool2d(2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.mp(self.relu(self.bn(x)))  # type: ignore[no-any-return]


@dataclass(frozen=True)
class DistillCase:
    """A distill reference case: golden JSON `tests/golden/distill/<name>.json`, or the expected error."""

    name: str
    factory: Callable[[], nn.Module]
    shapes: tuple[tuple[int, ...], ...]
    cfg: str | None = None
    error: str | None = None  # a regular expression the error message matches
    error_type: type[Exception] = ValueError

    def inputs(self) -> tuple[torch.Tensor, ...]:
        gen = torch.Generator().manual_seed(0)
        return tuple(torch.randn(*shape, generator=gen) for shape in self.shapes)

    def model(self) -> nn.Module:
        torch.manual_seed(0)
        return self.factory().eval()

    def golden_text(self) -> str:
        return (GOLDEN / f"{self.name}.json").read_text(encoding="utf-8")

    def cfg_path(self) -> str | None:
        return str(GOLDEN / "cfg" / f"{self.cfg}.cfg") if self.cfg else None


X4 = ((1, 4, 4, 4),)
DISTILL_CASES: tuple[DistillCase, ...] = (
    DistillCase("d_basic", Basic, ((1, 4, 8, 8),)),
    DistillCase("d_activations", Acts, X4),
    DistillCase("d_bn_variants", BnVariants, ((1, 4, 4, 4), (2, 4))),
    DistillCase("d_branches", Branches, X4),
    DistillCase("d_resnet_tiny", ResNetTiny, ((1, 3, 4, 4),)),
    DistillCase("d_chain", Chain, X4),
    DistillCase("d_types", DistillTypes, ((1, 4, 3), (1, 4, 4, 4), (1, 2, 2, 2, 2))),
    DistillCase("d_functional", Functional, X4),
    DistillCase("dc_group_size_2", Chain, X4, cfg="dc_group_size_2"),
    DistillCase("dc_data_weight", Chain, X4, cfg="dc_data_weight"),
    DistillCase("dc_override_priority", Chain, X4, cfg="dc_override_priority"),
    DistillCase("dc_user_group", Chain, X4, cfg="dc_user_group"),
    DistillCase(
        "e_d_no_candidates", OnlyRelu, X4, error=r"^Not found supported distill quant layers in model\.$"
    ),
    DistillCase(
        "e_dc_int4_mismatch",
        Basic,
        ((1, 4, 8, 8),),
        cfg="e_dc_int4_mismatch",
        error=r"^Activation and weights with different data_type are not supported for now\. Note, activation is "
        r"INT4 and weight is INT8\.",
    ),
    DistillCase(
        "e_dc_user_group_branch",
        Branches,
        X4,
        cfg="e_dc_user_group_branch",
        error=r"^Can not find an only route from start_layer_name\(stem\) to end_layer_name\(merge\), please "
        r"check whether layer in model and in right order\.$",
    ),
)
DISTILL_CASES_BY_NAME = {case.name: case for case in DISTILL_CASES}
