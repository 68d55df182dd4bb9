#!/usr/bin/python3
"""PyTorch references for Orchard's MultiHeadAttention weight interop.

Writes small safetensors files into go/attention/layer/testdata/torch/, one per case:
the module's weights (float32, in PyTorch's own state_dict names and layouts), an input
x, a fixed upstream gradient dy, and what PyTorch's autograd computes from them — the
output y = module(x), dx and every weight gradient for loss = sum(y * dy) — plus the case's
configuration in the header's __metadata__. The Go test
(go/attention/layer/torch_test.go) loads the weights with the layer's loaders, runs the
same step and compares.

Cases:
  plain     nn.MultiheadAttention, batch_first, with biases
  causal    the same with a boolean causal attn_mask (top-left: query i sees keys j <= i)
  keypad    the same with a key_padding_mask (True = padded), padding not only at the end
  keypad_tail   key_padding_mask with padding only at the end of each row
  cross     nn.MultiheadAttention as cross-attention: query x (B, N, C), key = value xkv
            (B, M, C) with M != N, and a key_padding_mask over xkv
  gqa       separate q_proj/k_proj/v_proj/o_proj without biases, grouped-query attention
            (8 query heads over 2 key/value heads, repeat_interleave as Hugging Face
            models do), causal
Also plain's weights in float16 and bfloat16 (torch's own rounding), to check that the
loaders convert exactly as PyTorch rounds.

Inputs are float32 values; PyTorch computes in float64 from them (module.double()), so the
references are exact to float64 rounding; outputs and gradients are stored as F64.
Dropout is 0: PyTorch's dropout stream is not Orchard's Philox stream.

The safetensors writer is written here (a header length, a JSON header and raw
little-endian bytes), so the script needs only torch and numpy (Debian's python3-torch).

Run from anywhere:  /usr/bin/python3 tools/interop/torch_mha_reference.py
"""

import json
import os
import struct
import sys

import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "..", "..", "go", "attention", "layer", "testdata", "torch")

DTYPES = {
    torch.float32: ("F32", np.float32),
    torch.float64: ("F64", np.float64),
    torch.float16: ("F16", np.float16),
}


def to_bytes(t):
    """Returns (format dtype name, raw little-endian bytes) of a tensor."""
    t = t.detach().contiguous().cpu()
    if t.dtype == torch.bfloat16:
        # numpy has no bfloat16: reinterpret the 16-bit patterns.
        return "BF16", t.view(torch.int16).numpy().astype("<i2").tobytes()
    name, npdt = DTYPES[t.dtype]
    return name, t.numpy().astype(np.dtype(npdt).newbyteorder("<")).tobytes()


def write_safetensors(path, tensors, metadata):
    """tensors: list of (name, torch tensor); metadata: dict of str -> str."""
    header = {"__metadata__": metadata}
    blobs, at = [], 0
    for name, t in tensors:
        dt, b = to_bytes(t)
        header[name] = {"dtype": dt, "shape": list(t.shape), "data_offsets": [at, at + len(b)]}
        blobs.append(b)
        at += len(b)
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * (-len(h) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for b in blobs:
            f.write(b)


class SeparateGQA(torch.nn.Module):
    """Attention with separate projections and grouped-query heads, as Hugging Face
    decoder models write it (without rotary embeddings)."""

    def __init__(self, dim, heads, kv_heads, bias):
        super().__init__()
        self.heads, self.kv_heads, self.dh = heads, kv_heads, dim // heads
        self.q_proj = torch.nn.Linear(dim, heads * self.dh, bias=bias)
        self.k_proj = torch.nn.Linear(dim, kv_heads * self.dh, bias=bias)
        self.v_proj = torch.nn.Linear(dim, kv_heads * self.dh, bias=bias)
        self.o_proj = torch.nn.Linear(heads * self.dh, dim, bias=bias)

    def forward(self, x, causal):
        b, t, _ = x.shape
        q = self.q_proj(x).view(b, t, self.heads, self.dh).transpose(1, 2)
        k = self.k_proj(x).view(b, t, self.kv_heads, self.dh).transpose(1, 2)
        v = self.v_proj(x).view(b, t, self.kv_heads, self.dh).transpose(1, 2)
        g = self.heads // self.kv_heads
        k = k.repeat_interleave(g, dim=1)  # query head h reads key/value head h // g
        v = v.repeat_interleave(g, dim=1)
        s = q @ k.transpose(-1, -2) / self.dh**0.5
        if causal:
            hide = torch.ones(t, t, dtype=torch.bool).triu(1)
            s = s.masked_fill(hide, float("-inf"))
        a = torch.softmax(s, dim=-1) @ v
        return self.o_proj(a.transpose(1, 2).reshape(b, t, self.heads * self.dh))


def f32_params(module, gen):
    """Draws every parameter as float32 values (stored as such), not zeros."""
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(torch.randn(p.shape, generator=gen, dtype=torch.float32) * 0.3)


def run_case(name, seed, b, t, dim, heads, kv_heads, bias, causal, pad, m=None):
    gen = torch.Generator().manual_seed(seed)
    if kv_heads == heads and name != "gqa":
        module = torch.nn.MultiheadAttention(dim, heads, bias=bias, batch_first=True)
        naming = "torch-mha"
    else:
        module = SeparateGQA(dim, heads, kv_heads, bias)
        naming = "separate"
    f32_params(module, gen)
    weights = [(k, v.detach().clone().float()) for k, v in module.state_dict().items()]
    x32 = torch.randn(b, t, dim, generator=gen, dtype=torch.float32)
    dy32 = torch.randn(b, t, dim, generator=gen, dtype=torch.float32)
    xkv32 = torch.randn(b, m, dim, generator=gen, dtype=torch.float32) if m else None

    module = module.double()
    x = x32.double().requires_grad_(True)
    xkv = xkv32.double().requires_grad_(True) if m else x
    if naming == "torch-mha":
        attn_mask = torch.ones(t, xkv.shape[1], dtype=torch.bool).triu(1) if causal else None
        kpm = pad if pad is not None else None
        y, _ = module(x, xkv, xkv, need_weights=False, attn_mask=attn_mask, key_padding_mask=kpm)
    else:
        y = module(x, causal)
    (y * dy32.double()).sum().backward()

    tensors = weights + [("x", x32), ("dy", dy32), ("y", y.detach()), ("dx", x.grad)]
    if m:
        tensors += [("xkv", xkv32), ("dxkv", xkv.grad)]
    if pad is not None:
        tensors.append(("key_padding_mask", pad.float()))  # 1.0 = padded
    for k, p in module.named_parameters():
        tensors.append(("grad." + k, p.grad))
    meta = {
        "case": name,
        "naming": naming,
        "dim": str(dim),
        "heads": str(heads),
        "kv_heads": str(kv_heads),
        "bias": str(bias).lower(),
        "causal": "top-left" if causal else "none",
        "torch": torch.__version__,
    }
    write_safetensors(os.path.join(OUT, name + ".safetensors"), tensors, meta)
    return weights


def main():
    os.makedirs(OUT, exist_ok=True)
    torch.set_num_threads(1)
    w = run_case("plain", 1, 2, 6, 16, 4, 4, True, False, None)
    run_case("causal", 2, 2, 6, 16, 4, 4, True, True, None)
    pad = torch.tensor([[False, True, False, False, True, False], [False, False, True, False, False, False]])
    run_case("keypad", 3, 2, 6, 16, 4, 4, True, False, pad)
    tail = torch.tensor([[False, False, False, False, True, True], [False, False, False, False, False, True]])
    run_case("keypad_tail", 4, 2, 6, 16, 4, 4, True, False, tail)
    run_case("gqa", 5, 2, 7, 32, 8, 2, False, True, None)
    cross_pad = torch.tensor([[False, False, True, False, False, False, False, True, False],
                              [False, False, False, False, False, False, True, True, True]])
    run_case("cross", 6, 2, 5, 16, 2, 2, True, False, cross_pad, m=9)
    for dt, tag in ((torch.float16, "f16"), (torch.bfloat16, "bf16")):
        write_safetensors(os.path.join(OUT, "plain_weights_" + tag + ".safetensors"),
                          [(k, v.to(dt)) for k, v in w], {"case": "plain", "dtype": tag})
    print("wrote", sorted(os.listdir(OUT)), file=sys.stderr)


if __name__ == "__main__":
    main()
