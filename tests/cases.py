"""The reference cases, written from their descriptions: model factories, example inputs, expected outcome.

Shared by the end-to-end tests of both entrances (library call, offline call) and both exporters.
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils import parametrizations, prune, spectral_norm, weight_norm

from analyzer.example import ResNet18
from analyzer.layertypes import DOCUMENTED, select_types
from analyzer.report import Report
from tests import distill_cases as distill

GOLDEN = Path(__file__).parent / "golden"


class SharedWeightLinear(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc_a = nn.Linear(16, 16)
        self.fc_b = nn.Linear(16, 16)
        self.fc_b.weight = self.fc_a.weight
        self.head = nn.Linear(16, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(F.relu(self.fc_b(F.relu(self.fc_a(x)))))


class ReusedConv(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv_in = nn.Conv2d(3, 8, 3, padding=1)
        self.conv_reused = nn.Conv2d(8, 8, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv_reused(F.relu(self.conv_reused(F.relu(self.conv_in(x)))))


class ReflectConv(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv_reflect = nn.Conv2d(3, 8, 3, padding=1, padding_mode="reflect")
        self.conv_ok = nn.Conv2d(8, 8, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv_ok(F.relu(self.conv_reflect(x)))


class PaddingModesAll(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv_zeros = nn.Conv2d(3, 8, 3, padding=1)
        self.conv_reflect = nn.Conv2d(8, 8, 3, padding=1, padding_mode="reflect")
        self.conv_replicate = nn.Conv2d(8, 8, 3, padding=1, padding_mode="replicate")
        self.conv_circular = nn.Conv2d(8, 8, 3, padding=1, padding_mode="circular")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv_circular(self.conv_replicate(self.conv_reflect(self.conv_zeros(x))))


class ReflectOnly(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv_reflect = nn.Conv2d(3, 8, 3, padding=1, padding_mode="reflect")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv_reflect(x)


class Cin3Conv(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 16, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x)


class ConvTranspose2dModel(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv_in = nn.Conv2d(3, 8, 3, padding=1)
        self.up = nn.ConvTranspose2d(8, 4, 2, stride=2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.up(F.relu(self.conv_in(x)))


class ConvTranspose1d3d(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.up1d = nn.ConvTranspose1d(4, 4, 2, stride=2)
        self.up3d = nn.ConvTranspose3d(2, 2, 2, stride=2)

    def forward(self, x1: torch.Tensor, x3: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.up1d(x1), self.up3d(x3)


class Conv1dConv3d(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv1d = nn.Conv1d(4, 8, 3, padding=1)
        self.conv3d = nn.Conv3d(2, 4, 3, padding=1)

    def forward(self, x1: torch.Tensor, x3: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.conv1d(x1), self.conv3d(x3)


class Conv3dDilation(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv3d_hw_dil = nn.Conv3d(2, 4, 3, padding=2, dilation=(1, 2, 2))
        self.conv3d_d_dil = nn.Conv3d(4, 4, 3, padding=(2, 1, 1), dilation=(2, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv3d_d_dil(self.conv3d_hw_dil(x))


class Linear3dInput(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(16, 8)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(x)


class LinearVariants(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc_2d = nn.Linear(16, 16)
        self.fc_3d_nobias = nn.Linear(16, 16, bias=False)
        self.fc_4d = nn.Linear(16, 8)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.fc_2d(x)
        z = self.fc_3d_nobias(y.unsqueeze(1))
        return self.fc_4d(z.unsqueeze(1))


class MultiheadAttentionModel(nn.Module):
    def __init__(self, distinct_qkv: bool = False) -> None:
        super().__init__()
        self.mha = nn.MultiheadAttention(16, 2, batch_first=True)
        self.head = nn.Linear(16, 4)
        self.distinct_qkv = distinct_qkv

    def forward(
        self, q: torch.Tensor, k: torch.Tensor | None = None, v: torch.Tensor | None = None
    ) -> torch.Tensor:
        if self.distinct_qkv:
            out, _ = self.mha(q, k, v)
        else:
            out, _ = self.mha(q, q, q)
        return self.head(out)


class SharedWeightConv1d(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv_a = nn.Conv1d(4, 4, 3, padding=1)
        self.conv_b = nn.Conv1d(4, 4, 3, padding=1)
        self.conv_b.weight = self.conv_a.weight

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv_b(F.relu(self.conv_a(x)))


class SharedWeightOneUnused(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc_used = nn.Linear(16, 16)
        self.fc_tied_unused = nn.Linear(16, 16)
        self.fc_tied_unused.weight = self.fc_used.weight
        self.head = nn.Linear(16, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(F.relu(self.fc_used(x)))


class UnusedLinear(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc_used = nn.Linear(16, 8)
        self.fc_unused = nn.Linear(16, 8)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc_used(x)


class UnbatchedConv(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv_unbatched = nn.Conv2d(3, 8, 3)
        self.conv_batched = nn.Conv2d(3, 8, 3)

    def forward(self, a: torch.Tensor, b: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.conv_unbatched(a), self.conv_batched(b)


class CfgSimple(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 8, 3, padding=1)
        self.conv2 = nn.Conv2d(8, 8, 3, padding=1)
        self.up = nn.ConvTranspose2d(8, 8, 2, stride=2)
        self.conv3 = nn.Conv2d(8, 8, 3, padding=1)
        self.fc = nn.Linear(8, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(self.conv1(x))
        x = F.relu(self.conv2(x))
        x = F.relu(self.up(x))
        return self.fc(self.conv3(x).mean((2, 3)))


class OddEvenCin(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 8, 3, padding=1)
        self.conv2 = nn.Conv2d(8, 8, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv2(F.relu(self.conv1(x)))


class Grouped(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv_in = nn.Conv2d(4, 8, 1)
        self.conv_grouped = nn.Conv2d(8, 8, 3, padding=1, groups=2)
        self.conv_out = nn.Conv2d(8, 8, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv_out(F.relu(self.conv_grouped(F.relu(self.conv_in(x)))))


class LinearOddEven(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc_in7 = nn.Linear(7, 8)
        self.fc_in8 = nn.Linear(8, 5)
        self.fc_in5 = nn.Linear(5, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc_in5(F.relu(self.fc_in8(F.relu(self.fc_in7(x)))))


class W4Mix(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv_odd = nn.Conv2d(3, 8, 3, padding=1)
        self.conv_even = nn.Conv2d(8, 8, 3, padding=1)
        self.conv_g2 = nn.Conv2d(8, 8, 3, padding=1, groups=2)
        self.conv_dw = nn.Conv2d(8, 8, 3, padding=1, groups=8)
        self.conv_to5 = nn.Conv2d(8, 5, 1)
        self.conv_cin5 = nn.Conv2d(5, 8, 1)
        self.fc_even = nn.Linear(8, 5)
        self.fc_odd = nn.Linear(5, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(self.conv_odd(x))
        x = F.relu(self.conv_even(x))
        x = F.relu(self.conv_g2(x))
        x = F.relu(self.conv_dw(x))
        x = F.relu(self.conv_cin5(self.conv_to5(x)))
        x = x.mean((2, 3))
        return self.fc_odd(F.relu(self.fc_even(x)))


class AliasedConv(nn.Module):
    """TCN / weight-norm style: conv1 is kept as an attribute and also placed in a Sequential (SPEC section 2)."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(4, 8, 3, padding=1)
        self.net = nn.Sequential(self.conv1, nn.ReLU())
        self.fc = nn.Linear(8, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.net(x).mean((2, 3)))


# --- the current AMCT's layer types (SPEC section 9, reference/latest/CASES.md) ----------------------------


class Conv1dNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv1d(4, 8, 3, padding=1)
        self.conv2 = nn.Conv1d(8, 8, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv2(torch.relu(self.conv1(x)))


class Conv3dDilations(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv3d_plain = nn.Conv3d(2, 4, 3, padding=1)
        self.conv3d_hw_dil = nn.Conv3d(4, 4, 3, padding=(1, 2, 2), dilation=(1, 2, 2))
        self.conv3d_d_dil = nn.Conv3d(4, 4, 3, padding=(2, 1, 1), dilation=(2, 1, 1))
        self.conv3d_all_dil = nn.Conv3d(4, 4, 3, padding=2, dilation=2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv3d_all_dil(self.conv3d_d_dil(self.conv3d_hw_dil(self.conv3d_plain(x))))


class RNNHead(nn.Module):
    """rnn (LSTM/GRU, any config) -> fc Linear on the last time step."""

    def __init__(self, rnn: nn.Module, fc_in: int) -> None:
        super().__init__()
        self.rnn = rnn
        self.fc = nn.Linear(fc_in, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out, _ = self.rnn(x)
        return self.fc(out[-1])


def lstm_head() -> nn.Module:
    return RNNHead(nn.LSTM(8, 16), 16)


def gru_bidirectional_head() -> nn.Module:
    return RNNHead(nn.GRU(8, 16, bidirectional=True), 32)


def lstm_dropout_head() -> nn.Module:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch warns that dropout has no effect with num_layers=1
        rnn = nn.LSTM(8, 16, num_layers=1, dropout=0.25)
    return RNNHead(rnn, 16)


class MixAll(nn.Module):
    """Every retrain type plus ConvTranspose3d; registration order differs from call order on purpose."""

    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(16, 4)
        self.gru = nn.GRU(8, 8)
        self.up3d = nn.ConvTranspose3d(4, 2, 2, stride=2)
        self.conv3d = nn.Conv3d(2, 4, 3, padding=1)
        self.up1d = nn.ConvTranspose1d(8, 4, 2, stride=2)
        self.conv1d = nn.Conv1d(4, 8, 3, padding=1)
        self.up2d = nn.ConvTranspose2d(8, 4, 2, stride=2)
        self.conv2d = nn.Conv2d(3, 8, 3, padding=1)
        self.lstm = nn.LSTM(8, 16)

    def forward(
        self, x1: torch.Tensor, x2: torch.Tensor, x3: torch.Tensor, seq: torch.Tensor
    ) -> tuple[torch.Tensor, ...]:
        y1 = self.up1d(torch.relu(self.conv1d(x1)))
        y2 = self.up2d(torch.relu(self.conv2d(x2)))
        y3 = self.up3d(torch.relu(self.conv3d(x3)))
        s, _ = self.gru(seq)
        s, _ = self.lstm(s)
        return y1, y2, y3, self.fc(s[-1])


class ConvTranspose3dNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv3d(2, 4, 3, padding=1)
        self.up = nn.ConvTranspose3d(4, 2, 2, stride=2)
        self.head = nn.Conv3d(2, 2, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(torch.relu(self.up(torch.relu(self.conv(x)))))


class LSTMUnbatched(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.lstm_unbatched = nn.LSTM(8, 16)
        self.lstm_batched = nn.LSTM(8, 16)

    def forward(self, a: torch.Tensor, b: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.lstm_unbatched(a)[0], self.lstm_batched(b)[0]


class W4RNN(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.lstm_even = nn.LSTM(8, 16)
        self.lstm_odd_input = nn.LSTM(7, 16)
        self.lstm_odd_hidden = nn.LSTM(8, 15)
        self.gru_even = nn.GRU(8, 16)
        self.gru_odd_input = nn.GRU(7, 16)
        self.gru_odd_hidden = nn.GRU(8, 15)

    def forward(self, x8: torch.Tensor, x7: torch.Tensor) -> tuple[torch.Tensor, ...]:
        return (
            self.lstm_even(x8)[0],
            self.lstm_odd_input(x7)[0],
            self.lstm_odd_hidden(x8)[0],
            self.gru_even(x8)[0],
            self.gru_odd_input(x7)[0],
            self.gru_odd_hidden(x8)[0],
        )


class Conv3dNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv3d(2, 4, 3, padding=1)
        self.conv2 = nn.Conv3d(4, 4, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv2(torch.relu(self.conv1(x)))


# --- create_quant_config (SPEC 10, reference/ptq/CASES.md) ---------------------------------------------------


# the calibration cases' conv-bn-relu model is the distill cases' (both CASES.md describe it alike)
PtqBasic = distill.Basic


class PtqAllTypes(nn.Module):
    """One module of every calibration candidate type, plus non-candidates (ConvTranspose3d, AvgPool1d/3d, ...)."""

    def __init__(self) -> None:
        super().__init__()
        self.c1 = nn.Conv1d(4, 4, 3, padding=1)
        self.t1 = nn.ConvTranspose1d(4, 4, 1)
        self.c2 = nn.Conv2d(4, 4, 3, padding=1)
        self.t2 = nn.ConvTranspose2d(4, 4, 1)
        self.p2 = nn.AvgPool2d(2)
        self.ap = nn.AdaptiveAvgPool2d(1)
        self.c3 = nn.Conv3d(2, 2, 3, padding=1)
        self.t3 = nn.ConvTranspose3d(2, 2, 1)
        self.p1 = nn.AvgPool1d(2)
        self.p3 = nn.AvgPool3d(1)
        self.mp = nn.MaxPool2d(1)
        self.lstm = nn.LSTM(4, 4)
        self.gru = nn.GRU(4, 4)
        self.fc = nn.Linear(4, 4)
        self.fc_nobias = nn.Linear(4, 4, bias=False)

    def forward(
        self, a: torch.Tensor, b: torch.Tensor, c: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        a = self.p1(self.t1(self.c1(a)))
        y, _ = self.lstm(a.permute(2, 0, 1))
        y, _ = self.gru(y)
        b = self.mp(self.ap(self.p2(self.t2(self.c2(b)))))
        c = self.p3(self.t3(self.c3(c)))
        z = self.fc_nobias(self.fc(b.flatten(1)))
        return y, z, c


class PtqNames(nn.Module):
    """Registration order differs from alphabetical order (upper case, digits, nesting)."""

    def __init__(self) -> None:
        super().__init__()
        self.zeta = nn.Conv2d(4, 4, 1)
        self.Alpha = nn.Conv2d(4, 4, 1)
        self.layer10 = nn.Conv2d(4, 4, 1)
        self.layer2 = nn.Conv2d(4, 4, 1)
        self.block = nn.Sequential(nn.Conv2d(4, 4, 1), nn.ReLU(), nn.Conv2d(4, 4, 1))
        self.beta = nn.Linear(4, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.block(self.layer2(self.layer10(self.Alpha(self.zeta(x)))))
        return self.beta(x.mean((2, 3)))


class PtqMixed(nn.Module):
    """conv (Conv2d), up (ConvTranspose2d), c1 (Conv1d), c3 (Conv3d), pool (AvgPool2d), fc, fc_nb, lstm."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(4, 4, 3, padding=1)
        self.up = nn.ConvTranspose2d(4, 4, 1)
        self.pool = nn.AvgPool2d(2)
        self.c1 = nn.Conv1d(4, 4, 1)
        self.c3 = nn.Conv3d(2, 2, 1)
        self.fc = nn.Linear(16, 4)
        self.fc_nb = nn.Linear(4, 4, bias=False)
        self.lstm = nn.LSTM(4, 4)

    def forward(
        self, x: torch.Tensor, s: torch.Tensor, v: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        x = self.pool(self.up(self.conv(x)))
        y = self.fc_nb(self.fc(x.flatten(1)))
        z = self.c1(s)
        r, _ = self.lstm(z.permute(2, 0, 1))
        return y, r, self.c3(v)


# weights computed before the op from the module's own parameters (SPEC section 2): the forward pre-hooks of
# torch.nn.utils keep the class name, so these layers are kept exactly as the plain ones are
_WEIGHT_CLASSES = (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.ConvTranspose1d, nn.ConvTranspose2d)
_PRUNE_METHODS = (
    lambda m: prune.l1_unstructured(m, "weight", 0.3),
    lambda m: prune.random_unstructured(m, "weight", 0.5),
    lambda m: prune.ln_structured(m, "weight", 0.5, n=2, dim=0),
)


def _hooked(model: nn.Module, hook: Callable[[nn.Module], object]) -> nn.Module:
    """`model` with `hook` applied to every Linear/Conv/ConvTranspose module (not the root's children
    only); each RNN gets weight norm on its input weights."""
    for module in list(model.modules()):
        if isinstance(module, _WEIGHT_CLASSES):
            hook(module)
        elif isinstance(module, nn.RNNBase):
            weight_norm(module, "weight_ih_l0")
    return model


def _pruned(model: nn.Module) -> nn.Module:
    """`model` with its layers pruned by l1_unstructured, random_unstructured and ln_structured in turn."""
    layers = [m for m in model.modules() if isinstance(m, _WEIGHT_CLASSES)]
    for position, layer in enumerate(layers):
        _PRUNE_METHODS[position % len(_PRUNE_METHODS)](layer)
    return model


def weight_norm_cfg_simple() -> nn.Module:
    return _hooked(CfgSimple(), weight_norm)


def spectral_norm_cfg_simple() -> nn.Module:
    return _hooked(CfgSimple(), spectral_norm)


def weight_norm_odd_even_cin() -> nn.Module:
    return _hooked(OddEvenCin(), weight_norm)


def spectral_norm_grouped() -> nn.Module:
    return _hooked(Grouped(), spectral_norm)


def pruned_linear_odd_even() -> nn.Module:
    return _pruned(LinearOddEven())


def pruned_w4_mix() -> nn.Module:
    return _pruned(W4Mix())


def weight_norm_reused_conv() -> nn.Module:
    return _hooked(ReusedConv(), weight_norm)


def weight_norm_mix_all() -> nn.Module:
    return _hooked(MixAll(), weight_norm)


class WeightNormSharedSource(nn.Module):
    """Two weight-norm layers whose weights are computed from one `weight_v` Parameter: a shared weight."""

    def __init__(self) -> None:
        super().__init__()
        self.fc_a = weight_norm(nn.Linear(16, 16))
        self.fc_b = weight_norm(nn.Linear(16, 16))
        self.fc_b.weight_v = self.fc_a.weight_v
        self.head = nn.Linear(16, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(F.relu(self.fc_b(F.relu(self.fc_a(x)))))


class SpectralNormDiscriminator(nn.Module):
    """A GAN discriminator with spectral norm on its convs and head (AMCT keeps all four layers)."""

    def __init__(self) -> None:
        super().__init__()
        self.c1 = spectral_norm(nn.Conv2d(3, 8, 3, padding=1))
        self.up = spectral_norm(nn.ConvTranspose2d(8, 8, 2, stride=2))
        self.c2 = spectral_norm(nn.Conv2d(8, 16, 3, stride=2, padding=1))
        self.head = spectral_norm(nn.Linear(16, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.leaky_relu(self.c1(x), 0.2)
        x = F.leaky_relu(self.up(x), 0.2)
        return self.head(F.leaky_relu(self.c2(x), 0.2).mean((2, 3)))


class Chomp1d(nn.Module):
    def __init__(self, size: int) -> None:
        super().__init__()
        self.size = size

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x[:, :, : -self.size].contiguous()


class WeightNormTCNBlock(nn.Module):
    """A TCN block as TCN code writes it: weight-norm Conv1d layers kept as attributes and placed in a
    Sequential too (one layer under its first name, SPEC section 2), beside a plain 1x1 downsample."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = weight_norm(nn.Conv1d(4, 8, 3, padding=2))
        self.chomp1, self.relu1, self.dropout1 = Chomp1d(2), nn.ReLU(), nn.Dropout(0.2)
        self.conv2 = weight_norm(nn.Conv1d(8, 8, 3, padding=2))
        self.chomp2, self.relu2, self.dropout2 = Chomp1d(2), nn.ReLU(), nn.Dropout(0.2)
        self.net = nn.Sequential(
            self.conv1,
            self.chomp1,
            self.relu1,
            self.dropout1,
            self.conv2,
            self.chomp2,
            self.relu2,
            self.dropout2,
        )
        self.downsample = nn.Conv1d(4, 8, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(self.net(x) + self.downsample(x))


def parametrized_cfg_simple() -> nn.Module:
    """torch.nn.utils.parametrizations renames the class (ParametrizedConv2d, ...): not candidates."""
    model = CfgSimple()
    for name in ("conv1", "up", "fc"):
        setattr(model, name, parametrizations.weight_norm(getattr(model, name)))
    return model


@dataclass(frozen=True)
class Case:
    """A reference case: `golden` names tests/golden/<golden>.json, or `error` is the expected error text.

    `kind` is the kind of config (`retrain`, `ptq` or `distill`); `arguments` are the call's own keyword arguments
    (`skip_layers`, `activation_offset` of `create_quant_config`). `call`/`call_offline` run the case's public
    library call and its offline twin, so that every kind's cases go through the same tests.
    """

    name: str
    factory: Callable[[], nn.Module]
    shapes: tuple[tuple[int, ...], ...]
    golden: str | None = None
    cfg: str | None = None
    error: str | None = None
    # what an ONNX file with dynamo metadata alone gives when it cannot give the golden (a module's first name,
    # when every op ran under an alias, is only in the mapping file)
    metadata_golden: str | None = None
    layer_types: str = DOCUMENTED  # the layer-type mode the case runs in (SPEC section 9)
    kind: str = "retrain"
    arguments: tuple[tuple[str, Any], ...] = ()

    def types(self) -> tuple[str, ...]:
        return select_types(self.layer_types)

    def inputs(self) -> tuple[torch.Tensor, ...]:
        gen = torch.Generator().manual_seed(0)
        return tuple(torch.randn(*shape, generator=gen) for shape in self.shapes)

    def model(self) -> nn.Module:
        torch.manual_seed(0)
        return self.factory()

    def golden_text(self, metadata_only: bool = False) -> str:
        golden = self.metadata_golden if metadata_only and self.metadata_golden else self.golden
        assert golden is not None
        return (GOLDEN / f"{golden}.json").read_text(encoding="utf-8")

    def cfg_path(self) -> Path | None:
        return GOLDEN / "cfg" / f"{self.cfg}.cfg" if self.cfg else None

    def _cfg(self) -> str | None:
        path = self.cfg_path()
        return str(path) if path is not None else None

    def call(self, config_file: str, model: nn.Module | None = None) -> Report:
        """The case's library call (the kind's AMCT-compatible call) writing `config_file`."""
        from analyzer import create_distill_config, create_quant_config, create_quant_retrain_config

        model = self.model() if model is None else model
        if self.kind == "distill":
            return create_distill_config(config_file, model, self.inputs(), self._cfg())
        if self.kind == "ptq":
            return create_quant_config(
                config_file, model, self.inputs(), config_defination=self._cfg(), **dict(self.arguments)
            )
        return create_quant_retrain_config(
            config_file,
            model,
            self.inputs(),
            self._cfg(),
            layer_types=self.layer_types,
            **dict(self.arguments),
        )

    def options(self) -> dict[str, Any]:
        """The `options` the case's call hands its kind's generator."""
        if self.kind != "ptq":
            return dict(self.arguments)
        from analyzer.kinds import ptq

        given = dict(self.arguments)
        return ptq.options(
            given.get("skip_layers"), given.get("batch_num", 1), given.get("activation_offset", True)
        )

    def analyze(self, graph: Any) -> tuple[Report, str]:
        """The analysis of an exported graph (`graph.ir.ExportedGraph`) as the case's call runs it."""
        from analyzer.api import analyze
        from analyzer.kinds import kind_of

        path = self.cfg_path()
        simple = kind_of(self.kind).load_simple(path, self.types()) if path is not None else None
        return analyze(graph, simple, layer_types=self.layer_types, kind=self.kind, options=self.options())

    def call_offline(self, config_file: str, onnx_file: str, mapping_file: str | None) -> Report:
        """The case's offline call on an exported file (with its mapping file or without)."""
        from analyzer import (
            create_distill_config_from_onnx,
            create_quant_config_from_onnx,
            create_quant_retrain_config_from_onnx,
        )

        if self.kind == "distill":
            return create_distill_config_from_onnx(config_file, onnx_file, mapping_file, self._cfg())
        if self.kind == "ptq":
            return create_quant_config_from_onnx(
                config_file, onnx_file, mapping_file, config_defination=self._cfg(), **dict(self.arguments)
            )
        return create_quant_retrain_config_from_onnx(
            config_file,
            onnx_file,
            mapping_file,
            self._cfg(),
            layer_types=self.layer_types,
            **dict(self.arguments),
        )


NO_LAYER = "no layer can be quantized"

CASES: tuple[Case, ...] = (
    Case("resnet18_hand", ResNet18, ((1, 3, 224, 224),), golden="resnet18_hand"),
    Case("shared_weight_linear", SharedWeightLinear, ((2, 16),), golden="shared_weight_linear"),
    Case("reused_conv", ReusedConv, ((1, 3, 16, 16),), golden="reused_conv"),
    Case("reflect_conv", ReflectConv, ((1, 3, 16, 16),), golden="reflect_conv"),
    Case("padding_modes_all", PaddingModesAll, ((1, 3, 16, 16),), golden="padding_modes_all"),
    Case("reflect_only", ReflectOnly, ((1, 3, 16, 16),), error=NO_LAYER),
    Case("cin3_conv", Cin3Conv, ((1, 3, 16, 16),), golden="cin3_conv"),
    Case("convtranspose2d", ConvTranspose2dModel, ((1, 3, 8, 8),), golden="convtranspose2d"),
    Case("convtranspose_1d_3d", ConvTranspose1d3d, ((1, 4, 8), (1, 2, 4, 4, 4)), error=NO_LAYER),
    Case("conv1d_conv3d", Conv1dConv3d, ((1, 4, 32), (1, 2, 8, 16, 16)), error=NO_LAYER),
    Case("conv3d_dilation", Conv3dDilation, ((1, 2, 8, 8, 8),), error=NO_LAYER),
    Case("linear_3d_input", Linear3dInput, ((2, 5, 16),), golden="linear_3d_input"),
    Case("linear_variants", LinearVariants, ((2, 16),), golden="linear_variants"),
    Case("multihead_attention", MultiheadAttentionModel, ((2, 5, 16),), golden="multihead_attention"),
    Case(
        "multihead_attention_distinct_qkv",
        lambda: MultiheadAttentionModel(distinct_qkv=True),
        ((2, 5, 16), (2, 5, 16), (2, 5, 16)),
        golden="multihead_attention_distinct_qkv",
    ),
    Case("shared_weight_conv1d", SharedWeightConv1d, ((1, 4, 16),), error=NO_LAYER),
    Case("shared_weight_one_unused", SharedWeightOneUnused, ((2, 16),), golden="shared_weight_one_unused"),
    Case("unused_linear", UnusedLinear, ((2, 16),), golden="unused_linear"),
    Case("unbatched_conv", UnbatchedConv, ((3, 16, 16), (1, 3, 16, 16)), golden="unbatched_conv"),
    Case("cfg_simple", CfgSimple, ((1, 3, 8, 8),), golden="cfg_simple", cfg="cfg_simple"),
    Case("cfg_resnet18", ResNet18, ((1, 3, 224, 224),), golden="cfg_resnet18", cfg="cfg_resnet18"),
    Case("cfg_simple_default", CfgSimple, ((1, 3, 8, 8),), golden="cfg_simple_default"),
    Case(
        "cfg_skip_excluded_layer",
        ReflectConv,
        ((1, 3, 16, 16),),
        cfg="cfg_skip_excluded_layer",
        error="conv_reflect",
    ),
    Case(
        "aliased_conv",
        AliasedConv,
        ((1, 4, 8, 8),),
        golden="aliased_conv",
        metadata_golden="aliased_conv_metadata_only",
    ),
    # the current AMCT's INT4 -> INT8 downgrade (SPEC section 8), reference/latest/b_*; every mode
    Case("b_w4_odd_cin", OddEvenCin, ((1, 3, 8, 8),), golden="b_w4_odd_cin", cfg="b_w4_odd_cin"),
    Case("b_w4_grouped", Grouped, ((1, 4, 8, 8),), golden="b_w4_grouped", cfg="b_w4_grouped"),
    Case("b_w4_linear", LinearOddEven, ((2, 7),), golden="b_w4_linear", cfg="b_w4_linear"),
    Case("b_w4mix_skipped", W4Mix, ((1, 3, 8, 8),), golden="b_w4mix_skipped", cfg="b_w4mix_skipped"),
)
LATEST = "amct-latest"
MIX_SHAPES = ((1, 4, 8), (1, 3, 8, 8), (1, 2, 4, 4, 4), (5, 2, 8))
CASES += (
    # the b_* cases that use documented types only, in the amct-latest mode too
    *(
        Case(f"{case.name}-latest", case.factory, case.shapes, case.golden, case.cfg, layer_types=LATEST)
        for case in CASES
        if case.name.startswith("b_w4")
    ),
    Case("b_w4_rnn", W4RNN, ((5, 2, 8), (5, 2, 7)), golden="b_w4_rnn", cfg="b_w4_rnn", layer_types=LATEST),
    Case("a_conv1d", Conv1dNet, ((1, 4, 16),), golden="a_conv1d", layer_types=LATEST),
    Case(
        "a_conv3d_dilation",
        Conv3dDilations,
        ((1, 2, 8, 8, 8),),
        golden="a_conv3d_dilation",
        layer_types=LATEST,
    ),
    Case("a_lstm", lstm_head, ((5, 2, 8),), golden="a_lstm", layer_types=LATEST),
    Case(
        "a_gru_bidirectional",
        gru_bidirectional_head,
        ((5, 2, 8),),
        golden="a_gru_bidirectional",
        layer_types=LATEST,
    ),
    # dropout is not in the graph: a dynamo file read without its mapping keeps the LSTM, as in a_lstm
    Case(
        "a_lstm_dropout_1layer",
        lstm_dropout_head,
        ((5, 2, 8),),
        golden="a_lstm_dropout_1layer",
        layer_types=LATEST,
        metadata_golden="a_lstm",
    ),
    Case("a_mix_all", MixAll, MIX_SHAPES, golden="a_mix_all", layer_types=LATEST),
    Case(
        "a_convtranspose3d_absent",
        ConvTranspose3dNet,
        ((1, 2, 4, 4, 4),),
        golden="a_convtranspose3d_absent",
        layer_types=LATEST,
    ),
    Case(
        "a_lstm_unbatched", LSTMUnbatched, ((5, 8), (5, 1, 8)), golden="a_lstm_unbatched", layer_types=LATEST
    ),
    Case(
        "c_a16_conv3d",
        Conv3dNet,
        ((1, 2, 4, 8, 8),),
        golden="c_a16_conv3d",
        cfg="c_a16_conv3d",
        layer_types=LATEST,
    ),
    Case(
        "d_new_types_overrides",
        MixAll,
        MIX_SHAPES,
        golden="d_new_types_overrides",
        cfg="d_new_types_overrides",
        layer_types=LATEST,
    ),
)
CASES += (
    # computed weights (weight norm, spectral norm, pruning masks): the plain models' golden files
    Case("wn_cfg_simple", weight_norm_cfg_simple, ((1, 3, 8, 8),), golden="cfg_simple", cfg="cfg_simple"),
    Case("sn_cfg_simple_default", spectral_norm_cfg_simple, ((1, 3, 8, 8),), golden="cfg_simple_default"),
    Case(
        "wn_b_w4_odd_cin",
        weight_norm_odd_even_cin,
        ((1, 3, 8, 8),),
        golden="b_w4_odd_cin",
        cfg="b_w4_odd_cin",
    ),
    Case(
        "sn_b_w4_grouped", spectral_norm_grouped, ((1, 4, 8, 8),), golden="b_w4_grouped", cfg="b_w4_grouped"
    ),
    Case("prune_b_w4_linear", pruned_linear_odd_even, ((2, 7),), golden="b_w4_linear", cfg="b_w4_linear"),
    Case(
        "prune_b_w4mix_skipped",
        pruned_w4_mix,
        ((1, 3, 8, 8),),
        golden="b_w4mix_skipped",
        cfg="b_w4mix_skipped",
    ),
    Case("wn_reused_conv", weight_norm_reused_conv, ((1, 3, 16, 16),), golden="reused_conv"),
    Case("wn_shared_source", WeightNormSharedSource, ((2, 16),), golden="shared_weight_linear"),
    Case("a_wn_mix_all", weight_norm_mix_all, MIX_SHAPES, golden="a_mix_all", layer_types=LATEST),
    Case(
        "parametrized_cfg_simple",
        parametrized_cfg_simple,
        ((1, 3, 8, 8),),
        golden="computed_parametrizations",
    ),
    Case("sn_discriminator", SpectralNormDiscriminator, ((1, 3, 16, 16),), golden="sn_discriminator"),
    Case(
        "a_wn_tcn_block",
        WeightNormTCNBlock,
        ((1, 4, 16),),
        golden="a_wn_tcn_block",
        metadata_golden="a_wn_tcn_block_metadata_only",
        layer_types=LATEST,
    ),
)
COMPUTED_WEIGHT_CASES = CASES[-12:]
CASES_BY_NAME = {case.name: case for case in CASES}
DEFAULT_CASES = tuple(case for case in CASES if case.cfg is None)
DOWNGRADE_CASES = tuple(case for case in CASES if case.name.startswith("b_w4"))
LATEST_CASES = tuple(case for case in CASES if case.layer_types == LATEST)


def _ptq_error(name: str, kind: str = "ptq") -> str:
    """The message of a PTQ (or distill) error case: its .error.txt without AMCT's exception type."""
    text = (GOLDEN / kind / f"{name}.error.txt").read_text(encoding="utf-8").strip()
    return re.escape(text.split(": ", 1)[1])


PTQ_BASIC = ((1, 4, 8, 8),)
PTQ_ALL = ((1, 4, 8), (1, 4, 8, 8), (1, 2, 4, 4, 4))
PTQ_MIXED = ((1, 4, 4, 4), (1, 4, 3), (1, 2, 2, 2, 2))


def _ptq(
    name: str,
    factory: Callable[[], nn.Module],
    shapes: tuple[tuple[int, ...], ...],
    cfg: bool = False,
    error: bool = False,
    **arguments: Any,
) -> Case:
    return Case(
        name,
        factory,
        shapes,
        golden=None if error else f"ptq/{name}",
        cfg=f"ptq/{name}" if cfg else None,
        error=_ptq_error(name) if error else None,
        kind="ptq",
        arguments=tuple(arguments.items()),
    )


# the 15 public cases of create_quant_config (reference/ptq/CASES.md), golden files in tests/golden/ptq
PTQ_CASES: tuple[Case, ...] = (
    _ptq("p_basic", PtqBasic, PTQ_BASIC),
    _ptq("p_all_types", PtqAllTypes, PTQ_ALL),
    _ptq("p_names_sorted", PtqNames, ((1, 4, 4, 4),)),
    _ptq("p_skip_layers", PtqBasic, PTQ_BASIC, skip_layers=["conv2", "pool"]),
    _ptq("p_activation_offset_false_conv3d", PtqAllTypes, PTQ_ALL, activation_offset=False),
    _ptq("pc_common_full", PtqMixed, PTQ_MIXED, cfg=True),
    _ptq("pc_hfmg", PtqMixed, PTQ_MIXED, cfg=True),
    _ptq("pc_override_priority", PtqMixed, PTQ_MIXED, cfg=True),
    _ptq("pc_int16_common", PtqMixed, PTQ_MIXED, cfg=True),
    _ptq("pc_ada_common", PtqMixed, PTQ_MIXED, cfg=True),
    _ptq("pc_dmq_common", PtqMixed, PTQ_MIXED, cfg=True),
    _ptq("pc_skip_fusion_layers", PtqAllTypes, PTQ_ALL, cfg=True),
    _ptq("pc_ifmr_floats", PtqBasic, PTQ_BASIC, cfg=True),
    _ptq("e_p_skip_not_quantizable", PtqBasic, PTQ_BASIC, error=True, skip_layers=["relu"]),
    _ptq("e_pc_override_type_bad", PtqBasic, PTQ_BASIC, cfg=True, error=True),
)
PTQ_CASES_BY_NAME = {case.name: case for case in PTQ_CASES}


def _distill(
    name: str, factory: Callable[[], nn.Module], shapes: tuple[tuple[int, ...], ...], cfg: bool = False
) -> Case:
    error = name.startswith("e_")
    return Case(
        name,
        factory,
        shapes,
        golden=None if error else f"distill/{name}",
        cfg=f"distill/{name}" if cfg else None,
        error="^" + _ptq_error(name, "distill") if error else None,
        kind="distill",
    )


DISTILL_X4 = ((1, 4, 4, 4),)
# the 15 public cases of create_distill_config (reference/distill/CASES.md; models in tests/distill_cases.py),
# golden files in tests/golden/distill (d_functional: AMCT's file without its nulls, SPEC 11.6)
DISTILL_CASES: tuple[Case, ...] = (
    _distill("d_basic", distill.Basic, ((1, 4, 8, 8),)),
    _distill("d_activations", distill.Acts, DISTILL_X4),
    _distill("d_bn_variants", distill.BnVariants, ((1, 4, 4, 4), (2, 4))),
    _distill("d_branches", distill.Branches, DISTILL_X4),
    _distill("d_resnet_tiny", distill.ResNetTiny, ((1, 3, 4, 4),)),
    _distill("d_chain", distill.Chain, DISTILL_X4),
    _distill("d_types", distill.DistillTypes, ((1, 4, 3), (1, 4, 4, 4), (1, 2, 2, 2, 2))),
    _distill("d_functional", distill.Functional, DISTILL_X4),
    _distill("dc_group_size_2", distill.Chain, DISTILL_X4, cfg=True),
    _distill("dc_data_weight", distill.Chain, DISTILL_X4, cfg=True),
    _distill("dc_override_priority", distill.Chain, DISTILL_X4, cfg=True),
    _distill("dc_user_group", distill.Chain, DISTILL_X4, cfg=True),
    _distill("e_d_no_candidates", distill.OnlyRelu, DISTILL_X4),
    _distill("e_dc_int4_mismatch", distill.Basic, ((1, 4, 8, 8),), cfg=True),
    _distill("e_dc_user_group_branch", distill.Branches, DISTILL_X4, cfg=True),
)
DISTILL_CASES_BY_NAME = {case.name: case for case in DISTILL_CASES}
ALL_CASES = CASES + PTQ_CASES + DISTILL_CASES
