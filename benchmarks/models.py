"""The models the benchmarks analyse, written here with random weights so that nothing is downloaded.

Each is shaped like the model it is named after (layer count, widths, module structure), which is what the
export and the analysis cost depends on; the weights never matter.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

# ---------------------------------------------------------------------------------------------- ResNet-50


class Bottleneck(nn.Module):
    expansion = 4

    def __init__(self, cin: int, width: int, stride: int) -> None:
        super().__init__()
        cout = width * self.expansion
        self.conv1 = nn.Conv2d(cin, width, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.conv2 = nn.Conv2d(width, width, 3, stride=stride, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(width)
        self.conv3 = nn.Conv2d(width, cout, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(cout)
        self.relu = nn.ReLU(inplace=True)
        self.downsample: nn.Module | None = None
        if stride != 1 or cin != cout:
            self.downsample = nn.Sequential(
                nn.Conv2d(cin, cout, 1, stride=stride, bias=False), nn.BatchNorm2d(cout)
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return self.relu(out + identity)


class ResNet50(nn.Module):
    """torchvision's resnet50 layout: 53 convs, one fc, 25.6 M parameters."""

    def __init__(self, num_classes: int = 1000) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 64, 7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, stride=2, padding=1)
        cin = 64
        stages = []
        for width, blocks, stride in ((64, 3, 1), (128, 4, 2), (256, 6, 2), (512, 3, 2)):
            layers = []
            for i in range(blocks):
                layers.append(Bottleneck(cin, width, stride if i == 0 else 1))
                cin = width * Bottleneck.expansion
            stages.append(nn.Sequential(*layers))
        self.layer1, self.layer2, self.layer3, self.layer4 = stages
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(cin, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.fc(torch.flatten(self.avgpool(x), 1))


# ---------------------------------------------------------------------------------------------- MobileNetV2


class InvertedResidual(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int, expand: int) -> None:
        super().__init__()
        hidden = cin * expand
        layers: list[nn.Module] = []
        if expand != 1:
            layers += [nn.Conv2d(cin, hidden, 1, bias=False), nn.BatchNorm2d(hidden), nn.ReLU6(inplace=True)]
        layers += [
            nn.Conv2d(hidden, hidden, 3, stride, 1, groups=hidden, bias=False),
            nn.BatchNorm2d(hidden),
            nn.ReLU6(inplace=True),
            nn.Conv2d(hidden, cout, 1, bias=False),
            nn.BatchNorm2d(cout),
        ]
        self.conv = nn.Sequential(*layers)
        self.use_res_connect = stride == 1 and cin == cout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv(x) if self.use_res_connect else self.conv(x)


class MobileNetV2(nn.Module):
    """torchvision's mobilenet_v2 layout: 52 convs (17 depthwise), one classifier Linear, 3.5 M parameters."""

    def __init__(self, num_classes: int = 1000) -> None:
        super().__init__()
        settings = ((1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1), (6, 160, 3, 2))
        layers: list[nn.Module] = [
            nn.Sequential(nn.Conv2d(3, 32, 3, 2, 1, bias=False), nn.BatchNorm2d(32), nn.ReLU6(inplace=True))
        ]
        cin = 32
        for expand, cout, repeats, stride in (*settings, (6, 320, 1, 1)):
            for i in range(repeats):
                layers.append(InvertedResidual(cin, cout, stride if i == 0 else 1, expand))
                cin = cout
        layers.append(
            nn.Sequential(nn.Conv2d(cin, 1280, 1, bias=False), nn.BatchNorm2d(1280), nn.ReLU6(inplace=True))
        )
        self.features = nn.Sequential(*layers)
        self.classifier = nn.Sequential(nn.Dropout(0.2), nn.Linear(1280, num_classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.adaptive_avg_pool2d(self.features(x), 1)
        return self.classifier(torch.flatten(x, 1))


# ---------------------------------------------------------------------------------------------- U-Net


class DoubleConv(nn.Sequential):
    def __init__(self, cin: int, cout: int) -> None:
        super().__init__(
            nn.Conv2d(cin, cout, 3, padding=1, bias=False),
            nn.BatchNorm2d(cout),
            nn.ReLU(inplace=True),
            nn.Conv2d(cout, cout, 3, padding=1, bias=False),
            nn.BatchNorm2d(cout),
            nn.ReLU(inplace=True),
        )


class UNet(nn.Module):
    """A segmentation U-Net (4 levels, 32 base channels, 7.8 M parameters): the real forward pass of a large
    image costs tens of GFLOPs, which is what the TorchScript exporter runs."""

    def __init__(self, base: int = 32, classes: int = 2) -> None:
        super().__init__()
        widths = [base * 2**i for i in range(5)]
        self.inc = DoubleConv(3, widths[0])
        self.downs = nn.ModuleList(DoubleConv(widths[i], widths[i + 1]) for i in range(4))
        self.ups = nn.ModuleList(nn.ConvTranspose2d(widths[i + 1], widths[i], 2, stride=2) for i in range(4))
        self.up_convs = nn.ModuleList(DoubleConv(2 * widths[i], widths[i]) for i in range(4))
        self.outc = nn.Conv2d(widths[0], classes, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        skips = [self.inc(x)]
        for down in self.downs:
            skips.append(down(F.max_pool2d(skips[-1], 2)))
        x = skips.pop()
        for i in range(3, -1, -1):
            x = self.up_convs[i](torch.cat([skips.pop(), self.ups[i](x)], dim=1))
        return self.outc(x)


# ---------------------------------------------------------------------------------------------- BERT-base


class BertSelfAttention(nn.Module):
    def __init__(self, hidden: int, heads: int) -> None:
        super().__init__()
        self.heads = heads
        self.query = nn.Linear(hidden, hidden)
        self.key = nn.Linear(hidden, hidden)
        self.value = nn.Linear(hidden, hidden)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, t, h = x.shape

        def split(y: torch.Tensor) -> torch.Tensor:
            return y.view(b, t, self.heads, h // self.heads).transpose(1, 2)

        q, k, v = split(self.query(x)), split(self.key(x)), split(self.value(x))
        scores = (q @ k.transpose(-1, -2)) / math.sqrt(h // self.heads)
        return (scores.softmax(-1) @ v).transpose(1, 2).reshape(b, t, h)


class BertLayer(nn.Module):
    def __init__(self, hidden: int, heads: int, intermediate: int) -> None:
        super().__init__()
        self.attention = BertSelfAttention(hidden, heads)
        self.attention_output = nn.Linear(hidden, hidden)
        self.attention_norm = nn.LayerNorm(hidden)
        self.intermediate = nn.Linear(hidden, intermediate)
        self.output = nn.Linear(intermediate, hidden)
        self.output_norm = nn.LayerNorm(hidden)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.attention_norm(x + self.attention_output(self.attention(x)))
        return self.output_norm(x + self.output(F.gelu(self.intermediate(x))))


class BertBase(nn.Module):
    """BERT-base: 12 layers, hidden 768, 12 heads, FFN 3072, vocabulary 30522 (about 110 M parameters)."""

    def __init__(
        self, layers: int = 12, hidden: int = 768, heads: int = 12, intermediate: int = 3072
    ) -> None:
        super().__init__()
        self.word_embeddings = nn.Embedding(30522, hidden)
        self.position_embeddings = nn.Embedding(512, hidden)
        self.embeddings_norm = nn.LayerNorm(hidden)
        self.layers = nn.ModuleList(BertLayer(hidden, heads, intermediate) for _ in range(layers))
        self.pooler = nn.Linear(hidden, hidden)
        self.classifier = nn.Linear(hidden, 2)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        positions = torch.arange(ids.shape[1], device=ids.device)
        x = self.embeddings_norm(self.word_embeddings(ids) + self.position_embeddings(positions))
        for layer in self.layers:
            x = layer(x)
        return self.classifier(torch.tanh(self.pooler(x[:, 0])))


# ---------------------------------------------------------------------------------------------- ViT-B/16


class ViTBlock(nn.Module):
    def __init__(self, hidden: int, heads: int, mlp: int) -> None:
        super().__init__()
        self.ln_1 = nn.LayerNorm(hidden)
        self.self_attention = nn.MultiheadAttention(hidden, heads, batch_first=True)
        self.ln_2 = nn.LayerNorm(hidden)
        self.mlp = nn.Sequential(nn.Linear(hidden, mlp), nn.GELU(), nn.Linear(mlp, hidden))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.ln_1(x)
        x = x + self.self_attention(y, y, y, need_weights=False)[0]
        return x + self.mlp(self.ln_2(x))


class ViTBase(nn.Module):
    """torchvision's vit_b_16 layout: a 16x16 patch conv, 12 blocks with nn.MultiheadAttention, 86.6 M parameters."""

    def __init__(
        self, image: int = 224, patch: int = 16, hidden: int = 768, layers: int = 12, heads: int = 12
    ) -> None:
        super().__init__()
        self.conv_proj = nn.Conv2d(3, hidden, patch, stride=patch)
        tokens = (image // patch) ** 2 + 1
        self.class_token = nn.Parameter(torch.zeros(1, 1, hidden))
        self.pos_embedding = nn.Parameter(torch.zeros(1, tokens, hidden))
        self.layers = nn.Sequential(*(ViTBlock(hidden, heads, 4 * hidden) for _ in range(layers)))
        self.ln = nn.LayerNorm(hidden)
        self.head = nn.Linear(hidden, 1000)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv_proj(x).flatten(2).transpose(1, 2)
        x = torch.cat([self.class_token.expand(x.shape[0], -1, -1), x], dim=1) + self.pos_embedding
        return self.head(self.ln(self.layers(x))[:, 0])


# ---------------------------------------------------------------------------------------------- Llama


@dataclass(frozen=True, slots=True)
class LlamaShape:
    """The sizes of a Llama-family decoder (the fields of a `LlamaConfig` that matter for the graph)."""

    name: str
    layers: int
    hidden: int
    heads: int
    kv_heads: int
    intermediate: int
    vocab: int = 32000

    @property
    def parameters(self) -> int:
        head_dim = self.hidden // self.heads
        attn = self.hidden * (self.heads * head_dim) * 2 + self.hidden * (self.kv_heads * head_dim) * 2
        mlp = 3 * self.hidden * self.intermediate
        return self.layers * (attn + mlp + 2 * self.hidden) + 2 * self.vocab * self.hidden + self.hidden


# TinyLlama-1.1B, Llama-2-7B and Llama-2-70B
LLAMA_SHAPES = {
    "1B": LlamaShape("1B", layers=22, hidden=2048, heads=32, kv_heads=4, intermediate=5632),
    "7B": LlamaShape("7B", layers=32, hidden=4096, heads=32, kv_heads=32, intermediate=11008),
    "70B": LlamaShape("70B", layers=80, hidden=8192, heads=64, kv_heads=8, intermediate=28672),
    # a small decoder (the size of a test or draft model)
    "small": LlamaShape("small", layers=4, hidden=512, heads=8, kv_heads=4, intermediate=1408),
}


class LlamaRMSNorm(nn.Module):
    def __init__(self, hidden: int, eps: float = 1e-5) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(hidden))
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        variance = x.pow(2).mean(-1, keepdim=True)
        return self.weight * (x * torch.rsqrt(variance + self.eps))


class LlamaRotaryEmbedding(nn.Module):
    def __init__(self, head_dim: int, base: float = 10000.0) -> None:
        super().__init__()
        inv_freq = 1.0 / (base ** (torch.arange(0, head_dim, 2, dtype=torch.float32) / head_dim))
        self.register_buffer("inv_freq", inv_freq, persistent=False)

    def forward(self, positions: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        freqs = positions[:, None].float() * self.inv_freq[None, :]
        emb = torch.cat((freqs, freqs), dim=-1)
        return emb.cos(), emb.sin()


def _rotate_half(x: torch.Tensor) -> torch.Tensor:
    half = x.shape[-1] // 2
    return torch.cat((-x[..., half:], x[..., :half]), dim=-1)


class LlamaAttention(nn.Module):
    def __init__(self, shape: LlamaShape) -> None:
        super().__init__()
        self.heads, self.kv_heads = shape.heads, shape.kv_heads
        self.head_dim = shape.hidden // shape.heads
        self.q_proj = nn.Linear(shape.hidden, shape.heads * self.head_dim, bias=False)
        self.k_proj = nn.Linear(shape.hidden, shape.kv_heads * self.head_dim, bias=False)
        self.v_proj = nn.Linear(shape.hidden, shape.kv_heads * self.head_dim, bias=False)
        self.o_proj = nn.Linear(shape.heads * self.head_dim, shape.hidden, bias=False)

    def forward(self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
        b, t, _ = x.shape
        q = self.q_proj(x).view(b, t, self.heads, self.head_dim).transpose(1, 2)
        k = self.k_proj(x).view(b, t, self.kv_heads, self.head_dim).transpose(1, 2)
        v = self.v_proj(x).view(b, t, self.kv_heads, self.head_dim).transpose(1, 2)
        q = q * cos + _rotate_half(q) * sin
        k = k * cos + _rotate_half(k) * sin
        if self.kv_heads != self.heads:
            k = k.repeat_interleave(self.heads // self.kv_heads, dim=1)
            v = v.repeat_interleave(self.heads // self.kv_heads, dim=1)
        out = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        return self.o_proj(out.transpose(1, 2).reshape(b, t, -1))


class LlamaMLP(nn.Module):
    def __init__(self, shape: LlamaShape) -> None:
        super().__init__()
        self.gate_proj = nn.Linear(shape.hidden, shape.intermediate, bias=False)
        self.up_proj = nn.Linear(shape.hidden, shape.intermediate, bias=False)
        self.down_proj = nn.Linear(shape.intermediate, shape.hidden, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.down_proj(F.silu(self.gate_proj(x)) * self.up_proj(x))


class LlamaDecoderLayer(nn.Module):
    def __init__(self, shape: LlamaShape) -> None:
        super().__init__()
        self.self_attn = LlamaAttention(shape)
        self.mlp = LlamaMLP(shape)
        self.input_layernorm = LlamaRMSNorm(shape.hidden)
        self.post_attention_layernorm = LlamaRMSNorm(shape.hidden)

    def forward(self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
        x = x + self.self_attn(self.input_layernorm(x), cos, sin)
        return x + self.mlp(self.post_attention_layernorm(x))


class LlamaModel(nn.Module):
    def __init__(self, shape: LlamaShape) -> None:
        super().__init__()
        self.embed_tokens = nn.Embedding(shape.vocab, shape.hidden)
        self.layers = nn.ModuleList(LlamaDecoderLayer(shape) for _ in range(shape.layers))
        self.norm = LlamaRMSNorm(shape.hidden)
        self.rotary_emb = LlamaRotaryEmbedding(shape.hidden // shape.heads)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        cos, sin = self.rotary_emb(torch.arange(ids.shape[1], device=ids.device))
        x = self.embed_tokens(ids)
        for layer in self.layers:
            x = layer(x, cos, sin)
        return self.norm(x)


class LlamaForCausalLM(nn.Module):
    """The module tree of transformers' `LlamaForCausalLM` (`model.layers.N.self_attn.q_proj`, `lm_head`, ...);
    with `tie`, the output projection shares the embedding's weight (`tie_word_embeddings`)."""

    def __init__(self, shape: LlamaShape, tie: bool = False) -> None:
        super().__init__()
        self.model = LlamaModel(shape)
        self.lm_head = nn.Linear(shape.hidden, shape.vocab, bias=False)
        if tie:
            self.lm_head.weight = self.model.embed_tokens.weight

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        return self.lm_head(self.model(ids))


# ---------------------------------------------------------------------------------------------- registry


@dataclass(frozen=True, slots=True)
class ModelCase:
    """A benchmark model: how to build it and its example inputs."""

    name: str
    build: Callable[[], nn.Module]
    inputs: Callable[[], tuple[torch.Tensor, ...]]


def _tokens(length: int, vocab: int) -> Callable[[], tuple[torch.Tensor, ...]]:
    return lambda: (torch.randint(0, vocab, (1, length)),)


def export_cases(quick: bool = False) -> tuple[ModelCase, ...]:
    """ResNet-50, BERT-base and ViT-B/16 (with `quick`, the same families a quarter as deep)."""
    if quick:
        return (
            ModelCase("resnet50-quick", lambda: ResNet50(), lambda: (torch.randn(1, 3, 64, 64),)),
            ModelCase("bert-base-quick", lambda: BertBase(layers=3), _tokens(32, 30522)),
            ModelCase(
                "vit-b16-quick", lambda: ViTBase(image=64, layers=3), lambda: (torch.randn(1, 3, 64, 64),)
            ),
        )
    return (
        ModelCase("resnet50", ResNet50, lambda: (torch.randn(1, 3, 224, 224),)),
        ModelCase("bert-base", BertBase, _tokens(128, 30522)),
        ModelCase("vit-b16", ViTBase, lambda: (torch.randn(1, 3, 224, 224),)),
    )


def llama(shape: LlamaShape, tie: bool = False) -> LlamaForCausalLM:
    return LlamaForCausalLM(shape, tie)


def llama_inputs(shape: LlamaShape, length: int = 16) -> tuple[torch.Tensor, ...]:
    return (torch.randint(0, shape.vocab, (1, length)),)


def _image(size: int) -> Callable[[], tuple[torch.Tensor, ...]]:
    return lambda: (torch.randn(1, 3, size, size),)


def first_call_cases(quick: bool = False) -> tuple[ModelCase, ...]:
    """The models of the first-call benchmark: CNNs, encoders and decoders of the sizes users run."""
    from analyzer.example import example_model

    small = LLAMA_SHAPES["small"]
    cases = (
        ModelCase("resnet18", lambda: example_model()[0], _image(224)),
        ModelCase("mobilenet-v2", MobileNetV2, _image(224)),
        ModelCase(
            "bert-2x128",
            lambda: BertBase(layers=2, hidden=128, heads=2, intermediate=512),
            _tokens(128, 30522),
        ),
        ModelCase("llama-small-tied", lambda: llama(small, tie=True), lambda: llama_inputs(small, 32)),
        ModelCase("llama-small", lambda: llama(small), lambda: llama_inputs(small, 32)),
    )
    if quick:
        return cases[:3]
    return (
        *cases,
        ModelCase("resnet50", ResNet50, _image(224)),
        ModelCase("bert-base", BertBase, _tokens(128, 30522)),
        ModelCase("vit-b16", ViTBase, _image(224)),
    )


def large_input_cases() -> tuple[ModelCase, ...]:
    """Models whose real forward pass is expensive: large images, a materialized 1B-parameter decoder."""
    one_b = LLAMA_SHAPES["1B"]
    return (
        ModelCase("unet-512", UNet, _image(512)),
        ModelCase("unet-1024", UNet, _image(1024)),
        ModelCase("resnet50-1024", ResNet50, _image(1024)),
        ModelCase("llama-1b", lambda: llama(one_b), lambda: llama_inputs(one_b)),
    )


def parameter_bytes(model: nn.Module) -> int:
    return sum(p.numel() * p.element_size() for p in model.parameters())
