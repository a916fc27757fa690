"""The models of the distill reference cases (reference/distill/CASES.md, SPEC 11), written from their
descriptions; the cases themselves (inputs, simple configs, golden files) are `tests.cases.DISTILL_CASES`."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


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
