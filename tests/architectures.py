"""Small models with the module structure of well-known architecture families, written here (no
torchvision/timm/transformers at test time), for checking that the rules hold beyond the reference cases."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


class InvertedResidual(nn.Module):
    """MobileNetV2 block: 1x1 expand, 3x3 depthwise, 1x1 project."""

    def __init__(self, cin: int, cout: int, expand: int, stride: int) -> None:
        super().__init__()
        hidden = cin * expand
        self.use_res = stride == 1 and cin == cout
        self.conv = nn.Sequential(
            nn.Conv2d(cin, hidden, 1, bias=False),
            nn.BatchNorm2d(hidden),
            nn.ReLU6(inplace=True),
            nn.Conv2d(hidden, hidden, 3, stride, 1, groups=hidden, bias=False),
            nn.BatchNorm2d(hidden),
            nn.ReLU6(inplace=True),
            nn.Conv2d(hidden, cout, 1, bias=False),
            nn.BatchNorm2d(cout),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.conv(x)
        return x + out if self.use_res else out


class MobileNetV2Tiny(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Sequential(nn.Conv2d(3, 16, 3, 2, 1, bias=False), nn.BatchNorm2d(16), nn.ReLU6(inplace=True)),
            InvertedResidual(16, 24, 6, 2),
            InvertedResidual(24, 24, 6, 1),
        )
        self.classifier = nn.Sequential(nn.Dropout(0.2), nn.Linear(24, 10))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(F.adaptive_avg_pool2d(self.features(x), 1).flatten(1))


class SqueezeExcite(nn.Module):
    """EfficientNet's squeeze-and-excitation: two 1x1 convs on the pooled (N, C, 1, 1) tensor."""

    def __init__(self, channels: int, squeezed: int) -> None:
        super().__init__()
        self.fc1 = nn.Conv2d(channels, squeezed, 1)
        self.fc2 = nn.Conv2d(squeezed, channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        scale = F.adaptive_avg_pool2d(x, 1)
        return x * torch.sigmoid(self.fc2(F.silu(self.fc1(scale))))


class EfficientNetTiny(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Conv2d(3, 32, 3, 2, 1, bias=False)
        self.dw = nn.Conv2d(32, 32, 3, 1, 1, groups=32, bias=False)
        self.se = SqueezeExcite(32, 8)
        self.project = nn.Conv2d(32, 16, 1, bias=False)
        self.head = nn.Linear(16, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.project(self.se(F.silu(self.dw(F.silu(self.stem(x))))))
        return self.head(x.mean((2, 3)))


class DenseLayer(nn.Module):
    def __init__(self, cin: int, growth: int) -> None:
        super().__init__()
        self.norm = nn.BatchNorm2d(cin)
        self.conv = nn.Conv2d(cin, growth, 3, padding=1, bias=False)

    def forward(self, features: list[torch.Tensor]) -> torch.Tensor:
        return self.conv(F.relu(self.norm(torch.cat(features, 1))))


class DenseNetTiny(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv0 = nn.Conv2d(3, 16, 3, padding=1, bias=False)
        self.denselayer1 = DenseLayer(16, 8)
        self.denselayer2 = DenseLayer(24, 8)
        self.classifier = nn.Linear(32, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        features = [self.conv0(x)]
        features.append(self.denselayer1(features))
        features.append(self.denselayer2(features))
        return self.classifier(torch.cat(features, 1).mean((2, 3)))


class EncoderBlock(nn.Module):
    """torchvision ViT's encoder block: nn.MultiheadAttention and an MLP of two Linear on 3-D input."""

    def __init__(self, dim: int, heads: int) -> None:
        super().__init__()
        self.ln_1 = nn.LayerNorm(dim)
        self.self_attention = nn.MultiheadAttention(dim, heads, batch_first=True)
        self.ln_2 = nn.LayerNorm(dim)
        self.mlp = nn.Sequential(nn.Linear(dim, 2 * dim), nn.GELU(), nn.Linear(2 * dim, dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.ln_1(x)
        y, _ = self.self_attention(y, y, y, need_weights=False)
        x = x + y
        return x + self.mlp(self.ln_2(x))


class ViTTiny(nn.Module):
    def __init__(self, dim: int = 32) -> None:
        super().__init__()
        self.conv_proj = nn.Conv2d(3, dim, 8, 8)
        self.class_token = nn.Parameter(torch.zeros(1, 1, dim))
        self.encoder = nn.Sequential(EncoderBlock(dim, 4), EncoderBlock(dim, 4))
        self.heads = nn.ModuleDict({"head": nn.Linear(dim, 10)})

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv_proj(x).flatten(2).transpose(1, 2)
        x = torch.cat([self.class_token.expand(x.shape[0], -1, -1), x], 1)
        return self.heads["head"](self.encoder(x)[:, 0])


class WindowAttention(nn.Module):
    """Swin-style attention on 4-D windows: Linear on (B, nW, T, C) inputs, a padded feature map."""

    def __init__(self, dim: int, heads: int) -> None:
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, h, w, c = x.shape
        x = F.pad(x, (0, 0, 0, 1, 0, 1))  # pad to a multiple of the window, in the parent's scope
        windows = (
            x.reshape(b, (h + 1) // 2, 2, (w + 1) // 2, 2, c).permute(0, 1, 3, 2, 4, 5).reshape(b, -1, 4, c)
        )
        q, k, v = self.qkv(windows).chunk(3, -1)
        attn = torch.softmax(q @ k.transpose(-2, -1) / math.sqrt(c), -1)
        return self.proj(attn @ v)


class SwinTiny(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.patch_embed = nn.Conv2d(3, 16, 4, 4)
        self.attn = WindowAttention(16, 2)
        self.head = nn.Linear(16, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.patch_embed(x).permute(0, 2, 3, 1)
        return self.head(self.attn(x).mean((1, 2)))


class BertLayer(nn.Module):
    def __init__(self, dim: int) -> None:
        super().__init__()
        self.query = nn.Linear(dim, dim)
        self.key = nn.Linear(dim, dim)
        self.value = nn.Linear(dim, dim)
        self.output = nn.Linear(dim, dim)
        self.norm = nn.LayerNorm(dim)
        self.intermediate = nn.Linear(dim, 4 * dim)
        self.out = nn.Linear(4 * dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        q, k, v = self.query(x), self.key(x), self.value(x)
        ctx = F.scaled_dot_product_attention(q.unsqueeze(1), k.unsqueeze(1), v.unsqueeze(1)).squeeze(1)
        x = self.norm(x + self.output(ctx))
        return self.norm(x + self.out(F.gelu(self.intermediate(x))))


class BertTiny(nn.Module):
    def __init__(self, vocab: int = 50, dim: int = 32) -> None:
        super().__init__()
        self.word_embeddings = nn.Embedding(vocab, dim)
        self.layer = nn.ModuleList([BertLayer(dim), BertLayer(dim)])
        self.pooler = nn.Linear(dim, dim)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        x = self.word_embeddings(ids)
        for layer in self.layer:
            x = layer(x)
        return torch.tanh(self.pooler(x[:, 0]))


class Conv1D(nn.Module):
    """GPT-2's Conv1D: a linear layer with a transposed weight, computed with addmm (not a torch Linear)."""

    def __init__(self, nf: int, nx: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.randn(nx, nf) * 0.02)
        self.bias = nn.Parameter(torch.zeros(nf))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        size = (*x.shape[:-1], self.weight.shape[1])
        return torch.addmm(self.bias, x.reshape(-1, x.shape[-1]), self.weight).reshape(size)


class GPT2Tiny(nn.Module):
    def __init__(self, vocab: int = 50, dim: int = 32) -> None:
        super().__init__()
        self.wte = nn.Embedding(vocab, dim)
        self.c_attn = Conv1D(3 * dim, dim)
        self.c_proj = Conv1D(dim, dim)
        self.lm_head = nn.Linear(dim, vocab, bias=False)
        self.lm_head.weight = self.wte.weight  # tied, as GPT-2 does

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        x = self.wte(ids)
        q, k, v = self.c_attn(x).chunk(3, -1)
        ctx = F.scaled_dot_product_attention(q.unsqueeze(1), k.unsqueeze(1), v.unsqueeze(1), is_causal=True)
        x = x + self.c_proj(ctx.squeeze(1))
        return self.lm_head(x)


class RMSNorm(nn.Module):
    def __init__(self, dim: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.weight * x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + 1e-6)


class LlamaDecoderLayer(nn.Module):
    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.input_layernorm = RMSNorm(dim)
        self.self_attn = nn.ModuleDict(
            {name: nn.Linear(dim, dim, bias=False) for name in ("q_proj", "k_proj", "v_proj", "o_proj")}
        )
        self.post_attention_layernorm = RMSNorm(dim)
        self.mlp = nn.ModuleDict(
            {
                "gate_proj": nn.Linear(dim, hidden, bias=False),
                "up_proj": nn.Linear(dim, hidden, bias=False),
                "down_proj": nn.Linear(hidden, dim, bias=False),
            }
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a = self.self_attn
        y = self.input_layernorm(x)
        q, k, v = (a[name](y).unsqueeze(1) for name in ("q_proj", "k_proj", "v_proj"))
        x = x + a["o_proj"](F.scaled_dot_product_attention(q, k, v, is_causal=True).squeeze(1))
        m = self.mlp
        y = self.post_attention_layernorm(x)
        return x + m["down_proj"](F.silu(m["gate_proj"](y)) * m["up_proj"](y))


class LlamaTiny(nn.Module):
    def __init__(self, vocab: int = 64, dim: int = 32) -> None:
        super().__init__()
        self.embed_tokens = nn.Embedding(vocab, dim)
        self.layers = nn.ModuleList([LlamaDecoderLayer(dim, 64), LlamaDecoderLayer(dim, 64)])
        self.norm = RMSNorm(dim)
        self.lm_head = nn.Linear(dim, vocab, bias=False)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        x = self.embed_tokens(ids)
        for layer in self.layers:
            x = layer(x)
        return self.lm_head(self.norm(x))
