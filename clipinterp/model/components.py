"""The vision tower's components, one small module each, with hook points named where they sit.

Shapes: ``b`` batch, ``p`` positions (CLS + patches), ``h`` heads, ``d`` ``d_model``,
``k`` ``d_head``, ``m`` ``d_mlp``.

A component takes a fused fast path (``F.layer_norm``, ``F.scaled_dot_product_attention``, no
per-head result) when nothing is hooked on the intermediates that path skips; with a hook or a cache
on them it computes them explicitly. Both paths compute the same function.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn
from transformer_lens.hook_points import HookPoint

from .config import HookedCLIPConfig


def is_hooked(*points: HookPoint) -> bool:
    """Whether anything (a hook, a cache, a backward hook) is attached to any of these points."""
    return any(p._forward_hooks or p._backward_hooks or p._backward_pre_hooks for p in points)


def quick_gelu(x: torch.Tensor) -> torch.Tensor:
    """OpenAI CLIP's activation: ``x * sigmoid(1.702 x)``."""
    return x * torch.sigmoid(1.702 * x)


ACT_FNS = {"quick_gelu": quick_gelu, "gelu": F.gelu}


class LayerNorm(nn.Module):
    """LayerNorm over ``d_model`` with ``hook_scale [b, p, 1]`` and ``hook_normalized [b, p, d]``."""

    def __init__(self, cfg: HookedCLIPConfig):
        super().__init__()
        self.eps = cfg.eps
        self.w = nn.Parameter(torch.ones(cfg.d_model))
        self.b = nn.Parameter(torch.zeros(cfg.d_model))
        self.hook_scale = HookPoint()
        self.hook_normalized = HookPoint()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not is_hooked(self.hook_scale, self.hook_normalized):
            return F.layer_norm(x, x.shape[-1:], self.w, self.b, self.eps)
        wide = torch.promote_types(x.dtype, torch.float32)  # as F.layer_norm: fp16 squares overflow
        centred = x.to(wide) - x.to(wide).mean(-1, keepdim=True)
        scale = self.hook_scale((centred.pow(2).mean(-1, keepdim=True) + self.eps).sqrt().to(x.dtype))
        return self.hook_normalized((centred / scale.to(wide)).to(x.dtype)) * self.w + self.b


class Embed(nn.Module):
    """Patchify, prepend CLS, add position embeddings: pixels ``[b, c, H, W]`` -> ``[b, p, d]``."""

    def __init__(self, cfg: HookedCLIPConfig):
        super().__init__()
        self.cfg = cfg
        self.W_patch = nn.Parameter(torch.empty(cfg.d_model, cfg.n_channels, cfg.patch_size, cfg.patch_size))
        self.class_embedding = nn.Parameter(torch.zeros(cfg.d_model))
        self.W_pos = nn.Parameter(torch.zeros(cfg.n_ctx, cfg.d_model))
        self.hook_patches = HookPoint()  # [b, n_patches, d]: each patch's linear embedding

    def position_embeddings(self, grid_h: int, grid_w: int) -> torch.Tensor:
        """``[1 + grid_h * grid_w, d]``; bicubic interpolation of the patch grid for other sizes."""
        g = self.cfg.grid_size
        if (grid_h, grid_w) == (g, g):
            return self.W_pos
        grid = self.W_pos[1:].reshape(1, g, g, -1).permute(0, 3, 1, 2)
        grid = F.interpolate(grid, size=(grid_h, grid_w), mode="bicubic", align_corners=False)
        return torch.cat([self.W_pos[:1], grid.permute(0, 2, 3, 1).reshape(grid_h * grid_w, -1)])

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        patches = F.conv2d(pixels, self.W_patch, stride=self.cfg.patch_size)  # [b, d, gh, gw]
        grid_h, grid_w = patches.shape[-2:]
        patches = self.hook_patches(patches.flatten(2).transpose(1, 2))
        cls = self.class_embedding.expand(patches.shape[0], 1, -1)
        return torch.cat([cls, patches], dim=1) + self.position_embeddings(grid_h, grid_w)


class Attention(nn.Module):
    """Multi-head self-attention with TransformerLens weights and hooks.

    Weights: ``W_Q, W_K, W_V [h, d, k]`` (views into one packed ``W_QKV [d, 3, h, k]``), ``b_Q, b_K,
    b_V [h, k]``, ``W_O [h, k, d]``, ``b_O [d]``. Hooks: ``hook_q|k|v [b, p, h, k]``,
    ``hook_attn_scores|hook_pattern [b, h, q, k]``, ``hook_z [b, p, h, k]``,
    ``hook_result [b, p, h, d]`` (computed only when hooked or cached).
    """

    def __init__(self, cfg: HookedCLIPConfig):
        super().__init__()
        self.cfg = cfg
        self.W_QKV = nn.Parameter(torch.empty(cfg.d_model, 3, cfg.n_heads, cfg.d_head))
        self.b_QKV = nn.Parameter(torch.zeros(3, cfg.n_heads, cfg.d_head))
        self.W_O = nn.Parameter(torch.empty(cfg.n_heads, cfg.d_head, cfg.d_model))
        self.b_O = nn.Parameter(torch.zeros(cfg.d_model))
        for name in ("q", "k", "v", "attn_scores", "pattern", "z", "result"):
            setattr(self, f"hook_{name}", HookPoint())

    W_Q = property(lambda self: self.W_QKV[:, 0].transpose(0, 1))
    W_K = property(lambda self: self.W_QKV[:, 1].transpose(0, 1))
    W_V = property(lambda self: self.W_QKV[:, 2].transpose(0, 1))
    b_Q = property(lambda self: self.b_QKV[0])
    b_K = property(lambda self: self.b_QKV[1])
    b_V = property(lambda self: self.b_QKV[2])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        cfg = self.cfg
        qkv = F.linear(x, self.W_QKV.reshape(cfg.d_model, -1).T, self.b_QKV.reshape(-1))
        qkv = qkv.unflatten(-1, (3, cfg.n_heads, cfg.d_head))
        q = self.hook_q(qkv[:, :, 0])
        k = self.hook_k(qkv[:, :, 1])
        v = self.hook_v(qkv[:, :, 2])
        if is_hooked(self.hook_attn_scores, self.hook_pattern):
            scores = torch.einsum("bqhk,bphk->bhqp", q, k) / math.sqrt(cfg.d_head)
            pattern = self.hook_pattern(torch.softmax(self.hook_attn_scores(scores), dim=-1))
            z = torch.einsum("bhqp,bphk->bqhk", pattern, v)
        else:
            z = F.scaled_dot_product_attention(q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2))
            z = z.transpose(1, 2)
        z = self.hook_z(z)
        if is_hooked(self.hook_result):
            result = self.hook_result(torch.einsum("bphk,hkd->bphd", z, self.W_O))
            return result.sum(dim=2) + self.b_O
        return F.linear(z.flatten(2), self.W_O.reshape(-1, cfg.d_model).T, self.b_O)


class MLP(nn.Module):
    """``W_out act(W_in x + b_in) + b_out`` with ``hook_pre``/``hook_post [b, p, m]``."""

    def __init__(self, cfg: HookedCLIPConfig):
        super().__init__()
        self.W_in = nn.Parameter(torch.empty(cfg.d_model, cfg.d_mlp))
        self.b_in = nn.Parameter(torch.zeros(cfg.d_mlp))
        self.W_out = nn.Parameter(torch.empty(cfg.d_mlp, cfg.d_model))
        self.b_out = nn.Parameter(torch.zeros(cfg.d_model))
        self.act = ACT_FNS[cfg.act_fn]
        self.hook_pre = HookPoint()
        self.hook_post = HookPoint()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        post = self.hook_post(self.act(self.hook_pre(F.linear(x, self.W_in.T, self.b_in))))
        return F.linear(post, self.W_out.T, self.b_out)


class TransformerBlock(nn.Module):
    """Pre-LN residual block: ``resid_mid = resid_pre + attn(ln1(resid_pre))``,
    ``resid_post = resid_mid + mlp(ln2(resid_mid))``."""

    def __init__(self, cfg: HookedCLIPConfig):
        super().__init__()
        self.ln1 = LayerNorm(cfg)
        self.attn = Attention(cfg)
        self.ln2 = LayerNorm(cfg)
        self.mlp = MLP(cfg)
        for name in ("resid_pre", "attn_out", "resid_mid", "mlp_out", "resid_post"):
            setattr(self, f"hook_{name}", HookPoint())

    def forward(self, resid_pre: torch.Tensor) -> torch.Tensor:
        resid_pre = self.hook_resid_pre(resid_pre)
        resid_mid = self.hook_resid_mid(resid_pre + self.hook_attn_out(self.attn(self.ln1(resid_pre))))
        return self.hook_resid_post(resid_mid + self.hook_mlp_out(self.mlp(self.ln2(resid_mid))))
