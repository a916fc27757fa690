"""A small model that shows every kind of decision QuantScope makes, for the README's CLI walk-through.

quantscope export examples/example_net.py:build --input-shape 1,3,32,32 -o net.onnx
quantscope explain net.onnx
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class ExampleNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Conv2d(3, 32, 3, padding=1)  # Cin = 3: kept, with an advisory
        self.refine = nn.Conv2d(32, 32, 3, padding=1, padding_mode="reflect")  # excluded: padding mode
        self.block = nn.Conv2d(32, 32, 3, padding=1)  # excluded: called twice
        self.attn = nn.MultiheadAttention(32, 4, batch_first=True)  # not a candidate (functional Linear ops)
        self.head = nn.Linear(32, 10)
        self.aux_head = nn.Linear(32, 10)  # excluded: never called

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(self.refine(F.relu(self.stem(x))))
        x = self.block(F.relu(self.block(x)))
        tokens = x.flatten(2).transpose(1, 2)
        tokens, _ = self.attn(tokens, tokens, tokens, need_weights=False)
        return self.head(tokens.mean(1))


def build() -> nn.Module:
    torch.manual_seed(0)
    return ExampleNet()
