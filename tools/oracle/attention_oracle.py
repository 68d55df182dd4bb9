#!/usr/bin/python3
"""Float64 autograd oracle for Orchard attention.

Writes, for each named case, the inputs and the exact float64 results of attention
forward (O, logsumexp L) and backward (dQ, dK, dV) as .npy files plus a case.json with
the options, into go/fallback/testdata/oracle/<case>/. The semantics are those of
go/attention/spec/doc.go and go/attention/philox/doc.go, implemented here from the
contract text with explicit visibility masks and torch autograd; nothing here calls
Orchard.

Run from anywhere:  /usr/bin/python3 tools/oracle/attention_oracle.py
"""

import argparse
import json
import math
import os
import shutil
import sys
import zlib

import numpy as np
import torch

FORMAT_VERSION = 1
WINDOW_UNBOUNDED = -1

# ---------------------------------------------------------------------------------------
# Philox4x32-10, vectorised over numpy uint64 arrays holding 32-bit words.
# ---------------------------------------------------------------------------------------

_MASK32 = np.uint64(0xFFFFFFFF)
_MUL0 = np.uint64(0xD2511F53)
_MUL1 = np.uint64(0xCD9E8D57)
_WEYL0 = np.uint64(0x9E3779B9)
_WEYL1 = np.uint64(0xBB67AE85)


def philox4x32_10(ctr, key):
    """ctr: four arrays of 32-bit words (broadcastable); key: two 32-bit words.

    Returns the four output words as uint64 arrays holding 32-bit values.
    """
    c0, c1, c2, c3 = (np.asarray(c, dtype=np.uint64) & _MASK32 for c in ctr)
    k0, k1 = (np.uint64(k) & _MASK32 for k in key)
    shift = np.uint64(32)
    for _ in range(10):
        p0 = _MUL0 * c0  # < 2^64, exact in uint64
        p1 = _MUL1 * c2
        hi0, lo0 = p0 >> shift, p0 & _MASK32
        hi1, lo1 = p1 >> shift, p1 & _MASK32
        c0, c1, c2, c3 = hi1 ^ c1 ^ k0, lo1, hi0 ^ c3 ^ k1, lo0
        k0 = (k0 + _WEYL0) & _MASK32
        k1 = (k1 + _WEYL1) & _MASK32
    return c0, c1, c2, c3


def check_philox():
    """Known answers of Philox4x32-10 (Random123's kat_vectors)."""
    kats = [
        ((0, 0, 0, 0), (0, 0), (0x6627E8D5, 0xE169C58D, 0xBC57AC4C, 0x9B00DBD8)),
        ((0xFFFFFFFF,) * 4, (0xFFFFFFFF,) * 2, (0x408F276D, 0x41C83B0E, 0xA20BC7C6, 0x6D5451FD)),
        (
            (0x243F6A88, 0x85A308D3, 0x13198A2E, 0x03707344),
            (0xA4093822, 0x299F31D0),
            (0xD16CFE09, 0x94FDCCEB, 0x5001E420, 0x24126EA1),
        ),
    ]
    for ctr, key, want in kats:
        got = tuple(int(w) for w in philox4x32_10(ctr, key))
        assert got == want, "philox KAT ctr=%s key=%s: got %s want %s" % (
            [hex(c) for c in ctr], [hex(k) for k in key], [hex(g) for g in got], [hex(w) for w in want])


def dropout_threshold(p):
    """T = floor(p * 2^32), clamped to 2^32 - 1; a word below T drops its element."""
    if p <= 0:
        return 0
    t = math.floor(p * 4294967296.0)
    return min(t, 4294967295)


def keep_mask(p, seed, offset, B, H, N, M):
    """Z[b, h, i, j] = 1 where element (b, h, i, j) survives dropout, per philox/doc.go."""
    b = np.arange(B, dtype=np.uint64)[:, None, None, None]
    h = np.arange(H, dtype=np.uint64)[None, :, None, None]
    i = np.arange(N, dtype=np.uint64)[None, None, :, None]
    j = np.arange(M, dtype=np.uint64)[None, None, None, :]
    row = (b * np.uint64(H) + h) * np.uint64(N) + i
    assert int(row.max()) < 2**32
    shape = (B, H, N, M)
    ctr = (
        np.broadcast_to(j >> np.uint64(2), shape),
        np.broadcast_to(row, shape),
        np.full(shape, offset & 0xFFFFFFFF, dtype=np.uint64),
        np.full(shape, (offset >> 32) & 0xFFFFFFFF, dtype=np.uint64),
    )
    key = (seed & 0xFFFFFFFF, (seed >> 32) & 0xFFFFFFFF)
    words = np.stack(philox4x32_10(ctr, key), axis=0)  # [4, B, H, N, M]
    lane = np.broadcast_to((j & np.uint64(3)).astype(np.intp), shape)
    word = np.take_along_axis(words, lane[None], axis=0)[0]
    return word >= np.uint64(dropout_threshold(p))


# ---------------------------------------------------------------------------------------
# Cases.
# ---------------------------------------------------------------------------------------


def case(name, about, B, H, N, M, D, Hkv=None, scale=0.0, causal="none", window=None,
         softcap=0.0, dropout=None, mask=None, seqlens_q=None, seqlens_k=None):
    """A case description. mask: None or dict(kind='bool'|'additive', bm=1|B, hm=1|H,
    plus optional empty_rows=[(b, h, i), ...] made fully hidden in the mask)."""
    return dict(name=name, about=about, B=B, H=H, Hkv=Hkv if Hkv is not None else H, N=N,
                M=M, D=D, scale=scale, causal=causal, window=window, softcap=softcap,
                dropout=dropout or dict(p=0.0, seed=0, offset=0), mask=mask,
                seqlens_q=seqlens_q, seqlens_k=seqlens_k)


U = WINDOW_UNBOUNDED

CASES = [
    case("plain_n_lt_m", "no options, N < M, two batches and heads", 2, 2, 9, 14, 16),
    case("plain_n_gt_m", "no options, N > M, explicit scale", 1, 3, 17, 6, 8, scale=0.37),
    case("head_dim_59", "odd head dim 59", 1, 2, 11, 13, 59),
    case("head_dim_111", "odd head dim 111 with top-left causal", 1, 1, 7, 10, 111,
         causal="top-left"),
    case("head_dim_256", "largest head dim, tiny sequence", 1, 1, 5, 6, 256),
    case("gqa", "grouped-query attention, H=4, Hkv=2", 2, 4, 12, 15, 16, Hkv=2),
    case("mqa", "multi-query attention, H=4, Hkv=1", 1, 4, 10, 10, 24, Hkv=1),
    case("causal_top_left_n_lt_m", "top-left causal, N < M", 2, 2, 8, 13, 16, causal="top-left"),
    case("causal_top_left_n_gt_m", "top-left causal, N > M", 1, 2, 13, 8, 16, causal="top-left"),
    case("causal_bottom_right_n_lt_m", "bottom-right causal, N < M (KV-cache shape)", 2, 2, 8,
         13, 16, causal="bottom-right"),
    case("causal_bottom_right_n_gt_m",
         "bottom-right causal, N > M: the first N-M rows see no key (O=0, L=-Inf)", 1, 2, 13,
         8, 16, causal="bottom-right"),
    case("bool_mask", "bool mask [B,H,N,M], one row all false", 2, 2, 10, 12, 16,
         mask=dict(kind="bool", bm=2, hm=2, empty_rows=[(1, 0, 3)])),
    case("bool_mask_bcast_batch", "bool mask [1,H,N,M] broadcast over batch", 2, 3, 9, 11, 8,
         mask=dict(kind="bool", bm=1, hm=3)),
    case("bool_mask_bcast_both", "bool mask [1,1,N,M] with causal top-left and a false row",
         2, 2, 12, 12, 16, causal="top-left",
         mask=dict(kind="bool", bm=1, hm=1, empty_rows=[(0, 0, 7)])),
    case("additive_mask_bcast_heads", "additive mask [B,1,N,M] with some -Inf entries", 2, 3,
         10, 14, 16, mask=dict(kind="additive", bm=2, hm=1)),
    case("additive_mask_bcast_both",
         "additive mask [1,1,N,M]; one row all -Inf (O=0, L=-Inf)", 2, 2, 11, 9, 16,
         mask=dict(kind="additive", bm=1, hm=1, empty_rows=[(0, 0, 5)])),
    case("additive_mask_full", "additive mask [B,H,N,M], GQA", 2, 4, 8, 10, 16, Hkv=2,
         mask=dict(kind="additive", bm=2, hm=4)),
    case("window_left_right", "window (3, 2), no causal", 1, 2, 20, 20, 16,
         window=dict(left=3, right=2)),
    case("window_left_causal", "window (4, unbounded) with top-left causal (sliding causal)",
         1, 2, 20, 20, 16, causal="top-left", window=dict(left=4, right=U)),
    case("window_right_only", "window (unbounded, 1), no causal, N > M", 1, 2, 15, 9, 16,
         window=dict(left=U, right=1)),
    case("window_bottom_right", "window (5, 3) with bottom-right causal, N < M", 2, 2, 6, 15,
         16, causal="bottom-right", window=dict(left=5, right=3)),
    case("window_zero", "window (0, 0): each row sees only its diagonal key; N > M leaves "
         "rows with none", 1, 2, 12, 9, 16, window=dict(left=0, right=0)),
    case("softcap", "logit softcap 3 with scale 0.6", 2, 2, 9, 12, 16, scale=0.6, softcap=3.0),
    case("dropout", "dropout p=0.25", 2, 2, 12, 19, 16,
         dropout=dict(p=0.25, seed=0x0123456789ABCDEF, offset=5)),
    case("dropout_high_offset",
         "dropout p=0.5, 64-bit offset, M not a multiple of 4", 1, 3, 21, 37, 8,
         dropout=dict(p=0.5, seed=0xFEEDFACE00C0FFEE, offset=(7 << 32) | 3)),
    case("varlen", "SeqLensQ/SeqLensK shorter than N/M", 2, 2, 12, 16, 16, seqlens_q=[7, 12],
         seqlens_k=[10, 3]),
    case("varlen_empty", "a batch with SeqLensQ=0 and one with SeqLensK=0", 2, 2, 9, 11, 8,
         seqlens_q=[0, 6], seqlens_k=[9, 0]),
    case("varlen_causal_bottom_right", "bottom-right causal measured from valid lengths", 2,
         2, 14, 18, 16, causal="bottom-right", seqlens_q=[5, 14], seqlens_k=[12, 9]),
    case("blocks_48_causal", "N=M=48 (crosses 32-wide blocks), top-left causal", 1, 2, 48, 48,
         32, causal="top-left"),
    case("blocks_33_47_window", "N=33, M=47, bottom-right causal with window (17, 0)", 1, 2,
         33, 47, 16, causal="bottom-right", window=dict(left=17, right=0)),
    case("combo_gqa_br_softcap_dropout_additive",
         "GQA + bottom-right causal + softcap + dropout + additive mask [B,1,N,M]", 2, 4, 10,
         21, 40, Hkv=2, causal="bottom-right", softcap=4.0,
         dropout=dict(p=0.15, seed=0xA5A5A5A5DEADBEEF, offset=11),
         mask=dict(kind="additive", bm=2, hm=1)),
    case("combo_mqa_varlen_window_bool_dropout",
         "MQA + varlen + top-left causal + window (6, U) + bool mask [1,H,N,M] + dropout", 2,
         4, 16, 16, 24, Hkv=1, causal="top-left", window=dict(left=6, right=U),
         dropout=dict(p=0.3, seed=42, offset=(1 << 32) + 9),
         mask=dict(kind="bool", bm=1, hm=4), seqlens_q=[16, 11], seqlens_k=[13, 16]),
    case("combo_d59_everything",
         "D=59 + GQA + varlen + bottom-right causal + window + softcap + additive mask "
         "[1,H,N,M] + dropout + scale", 2, 4, 13, 17, 59, Hkv=2, scale=0.21,
         causal="bottom-right", window=dict(left=7, right=2), softcap=2.5,
         dropout=dict(p=0.2, seed=0x1111222233334444, offset=0x55556666),
         mask=dict(kind="additive", bm=1, hm=4), seqlens_q=[13, 8], seqlens_k=[15, 17]),
]


# ---------------------------------------------------------------------------------------
# Inputs.
# ---------------------------------------------------------------------------------------


def round_half_float(x):
    """Round float64 values to bfloat16 precision (nearest even), then zero any value not
    exactly representable in float16 too, so converting the inputs to float32, float16 or
    bfloat16 loses nothing."""
    bits = x.astype(np.float32).view(np.uint32).astype(np.uint64)
    bits = (bits + np.uint64(0x7FFF) + ((bits >> np.uint64(16)) & np.uint64(1))) & np.uint64(
        0xFFFF0000)
    y = bits.astype(np.uint32).view(np.float32).astype(np.float64)
    y[y.astype(np.float16).astype(np.float64) != y] = 0.0
    return y


def make_inputs(c, rng):
    B, H, Hkv, N, M, D = c["B"], c["H"], c["Hkv"], c["N"], c["M"], c["D"]
    x = dict(
        q=round_half_float(rng.standard_normal((B, H, N, D))),
        k=round_half_float(rng.standard_normal((B, Hkv, M, D))),
        v=round_half_float(rng.standard_normal((B, Hkv, M, D))),
        do=round_half_float(rng.standard_normal((B, H, N, D))),
    )
    mk = c["mask"]
    if mk is not None:
        shape = (mk["bm"], mk["hm"], N, M)
        if mk["kind"] == "bool":
            keep = rng.random(shape) < 0.7
            for (b, h, i) in mk.get("empty_rows", []):
                keep[b, h, i, :] = False
            x["mask"] = keep.astype(np.uint8)
        else:
            bias = round_half_float(rng.standard_normal(shape)).astype(np.float32)
            bias[rng.random(shape) < 0.15] = -np.inf
            for (b, h, i) in mk.get("empty_rows", []):
                bias[b, h, i, :] = -np.inf
            x["mask"] = bias
    return x


# ---------------------------------------------------------------------------------------
# The contract, in torch.
# ---------------------------------------------------------------------------------------


def visibility(c):
    """vis[b, 1, i, j]: lengths, causal masking and the window (spec/doc.go, Visibility)."""
    B, N, M = c["B"], c["N"], c["M"]
    i = torch.arange(N).view(N, 1)
    j = torch.arange(M).view(1, M)
    rows = []
    for b in range(B):
        n = N if c["seqlens_q"] is None else c["seqlens_q"][b]
        m = M if c["seqlens_k"] is None else c["seqlens_k"][b]
        d = i + (m - n if c["causal"] == "bottom-right" else 0)
        v = (i < n) & (j < m)
        if c["causal"] != "none":
            v = v & (j <= d)
        w = c["window"]
        if w is not None:
            if w["left"] != WINDOW_UNBOUNDED:
                v = v & (j >= d - w["left"])
            if w["right"] != WINDOW_UNBOUNDED:
                v = v & (j <= d + w["right"])
        rows.append(v)
    return torch.stack(rows).view(B, 1, N, M)


def scale_value(c):
    return c["scale"] if c["scale"] != 0 else 1.0 / math.sqrt(c["D"])


def attention(c, q, k, v, mask, keep):
    """Returns O, L (natural-log logsumexp of the undropped logits) and P, the softmax."""
    B, H, Hkv, N, M = c["B"], c["H"], c["Hkv"], c["N"], c["M"]
    group = H // Hkv
    kh = k.repeat_interleave(group, dim=1)  # query head h reads kv head h // group
    vh = v.repeat_interleave(group, dim=1)
    s = scale_value(c) * (q @ kh.transpose(-1, -2))  # [B, H, N, M]
    if c["softcap"] > 0:
        s = c["softcap"] * torch.tanh(s / c["softcap"])
    vis = visibility(c).expand(B, H, N, M)
    if mask is not None:
        if c["mask"]["kind"] == "bool":
            vis = vis & mask.to(torch.bool).expand(B, H, N, M)
        else:
            bias = mask.to(torch.float64).expand(B, H, N, M)
            vis = vis & torch.isfinite(bias)
            s = s + torch.where(torch.isfinite(bias), bias, torch.zeros_like(bias))
    neg_inf = torch.full_like(s, -math.inf)
    sm = torch.where(vis, s, neg_inf)
    # Safe softmax: the max of a row with no visible key is taken as 0, its exponentials are
    # all exactly 0 and so are its probabilities and every gradient through them.
    mx = sm.max(dim=-1, keepdim=True).values.detach()
    mx = torch.where(torch.isfinite(mx), mx, torch.zeros_like(mx))
    e = torch.where(vis, torch.exp(sm - mx), torch.zeros_like(s))
    l = e.sum(dim=-1, keepdim=True)
    p = e / torch.where(l > 0, l, torch.ones_like(l))
    lse = torch.where(l > 0, mx + torch.log(torch.where(l > 0, l, torch.ones_like(l))),
                      torch.full_like(l, -math.inf)).squeeze(-1)
    pd = p
    if c["dropout"]["p"] > 0:
        pd = p * keep.to(torch.float64) / (1.0 - c["dropout"]["p"])
    return pd @ vh, lse, p, vis


def self_check(c, q, k, v, mask, o, lse, p, vis):
    """Cross-check the safe softmax against torch.softmax on rows with a visible key."""
    B, H, Hkv, N, M = c["B"], c["H"], c["Hkv"], c["N"], c["M"]
    with torch.no_grad():
        kh = k.repeat_interleave(H // Hkv, dim=1)
        s = scale_value(c) * (q @ kh.transpose(-1, -2))
        if c["softcap"] > 0:
            s = c["softcap"] * torch.tanh(s / c["softcap"])
        if mask is not None and c["mask"]["kind"] == "additive":
            s = s + mask.to(torch.float64)
        s = s.masked_fill(~vis, -math.inf)
        alive = vis.any(dim=-1)
        ref = torch.softmax(s, dim=-1)
        assert torch.allclose(ref[alive], p[alive], rtol=1e-13, atol=1e-15)
        ref_lse = torch.logsumexp(s, dim=-1)
        assert torch.allclose(ref_lse[alive], lse[alive], rtol=1e-13, atol=1e-13)
        dead = ~alive
        assert torch.all(torch.isneginf(lse[dead]))
        assert torch.all(o[dead] == 0) and torch.all(p[dead] == 0)
        assert torch.all(torch.isfinite(o)) and not torch.any(torch.isnan(lse))


def run_case(c, rng):
    x = make_inputs(c, rng)
    B, H, N, M = c["B"], c["H"], c["N"], c["M"]
    dp = c["dropout"]
    keep = None
    if dp["p"] > 0:
        keep = keep_mask(dp["p"], dp["seed"], dp["offset"], B, H, N, M)
        x["keep"] = keep.astype(np.uint8)
    q = torch.tensor(x["q"], requires_grad=True)
    k = torch.tensor(x["k"], requires_grad=True)
    v = torch.tensor(x["v"], requires_grad=True)
    do = torch.tensor(x["do"])
    mask = torch.tensor(x["mask"]) if "mask" in x else None
    keep_t = torch.tensor(keep) if keep is not None else None
    o, lse, p, vis = attention(c, q, k, v, mask, keep_t)
    (o * do).sum().backward()
    for g in (q.grad, k.grad, v.grad):
        assert torch.all(torch.isfinite(g))
    self_check(c, q.detach(), k.detach(), v.detach(), mask, o.detach(), lse.detach(), p.detach(),
               vis)
    x.update(o=o.detach().numpy(), lse=lse.detach().numpy(), dq=q.grad.numpy(),
             dk=k.grad.numpy(), dv=v.grad.numpy())
    masked_rows = int(torch.isneginf(lse).sum())
    return x, masked_rows


def write_case(root, c, x, masked_rows):
    d = os.path.join(root, c["name"])
    os.makedirs(d)
    files = {}
    for name, arr in x.items():
        path = os.path.join(d, name + ".npy")
        np.save(path, np.ascontiguousarray(arr))
        files[name] = dict(dtype=str(arr.dtype), shape=list(arr.shape))
    for side in ("q", "k"):
        lens = c["seqlens_" + side]
        if lens is not None:
            name = "seqlens_" + side
            np.save(os.path.join(d, name + ".npy"), np.asarray(lens, dtype=np.int64))
            files[name] = dict(dtype="int64", shape=[len(lens)])
    mk = c["mask"]
    meta = dict(
        format=FORMAT_VERSION,
        name=c["name"],
        about=c["about"],
        dims=dict(B=c["B"], H=c["H"], Hkv=c["Hkv"], N=c["N"], M=c["M"], D=c["D"]),
        scale=c["scale"],
        scale_value=scale_value(c),
        causal=c["causal"],
        window=c["window"],
        softcap=c["softcap"],
        dropout=c["dropout"],
        mask=None if mk is None else dict(kind=mk["kind"], shape=[mk["bm"], mk["hm"], c["N"],
                                                                   c["M"]]),
        seqlens_q=c["seqlens_q"],
        seqlens_k=c["seqlens_k"],
        masked_rows=masked_rows,
        files=files,
    )
    with open(os.path.join(d, "case.json"), "w") as f:
        json.dump(meta, f, indent=1, sort_keys=True)
        f.write("\n")
    return sum(os.path.getsize(os.path.join(d, n)) for n in os.listdir(d))


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    default_out = os.path.normpath(os.path.join(here, "..", "..", "go", "fallback", "testdata",
                                                "oracle"))
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=default_out, help="output directory (default %(default)s)")
    args = ap.parse_args()

    torch.set_num_threads(1)
    torch.set_default_dtype(torch.float64)
    check_philox()

    names = [c["name"] for c in CASES]
    assert len(set(names)) == len(names), "duplicate case names"
    os.makedirs(args.out, exist_ok=True)
    for entry in os.listdir(args.out):  # drop stale cases written by an earlier run
        p = os.path.join(args.out, entry)
        if os.path.isdir(p) and os.path.exists(os.path.join(p, "case.json")):
            shutil.rmtree(p)

    total = 0
    for c in CASES:
        rng = np.random.default_rng(zlib.crc32(c["name"].encode()))
        x, masked_rows = run_case(c, rng)
        size = write_case(args.out, c, x, masked_rows)
        total += size
        print("%-40s B=%d H=%d Hkv=%d N=%-2d M=%-2d D=%-3d masked_rows=%-3d %7d bytes" % (
            c["name"], c["B"], c["H"], c["Hkv"], c["N"], c["M"], c["D"], masked_rows, size))
    print("wrote %d cases, %d bytes, into %s" % (len(CASES), total, args.out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
