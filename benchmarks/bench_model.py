"""Latte training-step speed and FLOPs.

Two measurements:

* ``--flops``: FLOPs of one forward pass of the four Latte-XL/2 variants (16 frames, 32x32
  latents, batch 1), counted with ``torch.utils.flop_counter.FlopCounterMode`` on the meta
  device (nothing is allocated; 2 FLOPs per multiply-add) and checked against the analytic
  count of ``latte_bench.models.flops.forward_macs``; printed beside the paper's Table 1 with
  three forward passes in multiply-adds, the counting that reproduces the paper's Variants 1-3
  (docs/model.md).
* timing (default): one training step = forward + backward + AdamW step on random latents,
  for each model and each of: ``sdpa`` (this model, ``F.scaled_dot_product_attention``),
  ``math`` (this model, explicit ``softmax(q k^T) v`` as the official code computes attention)
  and ``official`` (:class:`OfficialStyle`: the official Variant-1 data flow, rearranges and
  per-sequence repeated conditioning, on the same weights; ``--check`` verifies it computes the
  same function). Reports seconds/step, tokens/s and achieved FLOP/s
  (forward+backward FLOPs counted as above, divided by the step time).

Examples (``--interleave`` alternates the implementations step by step against load drift)::

    python benchmarks/bench_model.py --flops
    python benchmarks/bench_model.py --models Latte-S/2 Latte-B/2 --batch 1 --steps 2
    python benchmarks/bench_model.py --device cuda --bf16 --compile --models Latte-XL/2 --batch 4
"""

from __future__ import annotations

import argparse
import os
import platform
import time

import torch
from latte_bench.models import create_model
from latte_bench.models.flops import PAPER_TABLE1, counted_flops, forward_macs

def count_flops(name: str, batch: int, frames: int, size: int, backward: bool = False, **options) -> int:
    """FLOPs of one forward (or forward+backward) pass, counted by ``FlopCounterMode`` on the meta device."""
    with torch.device("meta"):
        model = create_model(name, num_frames=frames, input_size=size, attention="math", **options)
    return counted_flops(model, frames, batch=batch, backward=backward)


def trainable_params(name: str, **options) -> int:
    with torch.device("meta"):
        model = create_model(name, **options)
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


# (label, create_model options, frames) of the rows of the docs/model.md FLOPs table
FLOPS_ROWS = [
    ("1 interleaved", dict(variant=1), None),
    ("2 late fusion", dict(variant=2), None),
    ("3 factorised attention", dict(variant=3), None),
    ("4 factorised heads", dict(variant=4), None),
    ("4, heads_width=split", dict(variant=4, heads_width="split"), None),
    ("4 on 4 frames", dict(variant=4), 4),
]


def flops_table(frames: int, size: int) -> list[dict]:
    """Latte-XL/2, batch 1: parameters, forward FLOPs (FlopCounterMode and the analytic count),
    and three forward passes in multiply-accumulates beside the paper's Table 1 "FLOPs (G)"."""
    rows = []
    for label, options, row_frames in FLOPS_ROWS:
        f = row_frames or frames
        flops = count_flops("Latte-XL/2", 1, f, size, **options)
        with torch.device("meta"):
            model = create_model("Latte-XL/2", num_frames=f, input_size=size, **options)
        macs = forward_macs(model, f)
        params = sum(p.numel() for p in model.parameters() if p.requires_grad)
        paper = PAPER_TABLE1.get(options["variant"])
        row = {"variant": label, "frames": f, "blocks": len(model.blocks), "params": params, "forward_flops": flops,
               "forward_macs": macs, "train_step_macs": 3 * macs, "paper_params_m": paper[0], "paper_gflops": paper[1]}  # fmt: skip
        assert flops == 2 * macs, (label, flops, macs)
        rows.append(row)
        print(
            f"Variant {label:24s} {f:2d} frames, {len(model.blocks)} blocks: params {params / 1e6:.2f}M (paper {paper[0]}M), "
            f"forward {flops / 1e9:.1f} GFLOPs = {macs / 1e9:.1f} GMACs, 3 x forward {3 * macs / 1e9:.1f} GMACs (paper {paper[1]} G)",
            flush=True,
        )
    return rows


class OfficialStyle(torch.nn.Module):
    """The official Variant-1 data flow, re-implemented on our modules' weights (for timing only).

    As the official ``models/latte.py`` runs it: tokens as ``(B*F, N, D)``, ``einops`` rearranges
    between spatial and temporal blocks, the condition vector *repeated* per sequence
    (``(B*F, D)`` / ``(B*N, D)``) before each adaLN linear, and 'math' attention
    (``(q @ k^T) * scale``, softmax, ``@ v``). Unconditional, no images.
    """

    def __init__(self, model):
        super().__init__()
        self.model = model

    @staticmethod
    def attention(attn, x):
        b, n, c = x.shape
        qkv = attn.qkv(x).reshape(b, n, 3, attn.num_heads, c // attn.num_heads).permute(2, 0, 3, 1, 4)
        q, k, v = qkv.unbind(0)
        weights = ((q @ k.transpose(-2, -1)) * attn.head_dim**-0.5).softmax(dim=-1)
        return attn.proj((weights @ v).transpose(1, 2).reshape(b, n, c))

    def block(self, blk, x, c):
        from latte_bench.models.latte import modulate

        shift_msa, scale_msa, gate_msa, shift_mlp, scale_mlp, gate_mlp = blk.adaLN_modulation(c).chunk(6, dim=1)
        x = x + gate_msa.unsqueeze(1) * self.attention(blk.attn, modulate(blk.norm1(x), shift_msa.unsqueeze(1), scale_msa.unsqueeze(1)))
        return x + gate_mlp.unsqueeze(1) * blk.mlp(modulate(blk.norm2(x), shift_mlp.unsqueeze(1), scale_mlp.unsqueeze(1)))

    def forward(self, x, t):
        from einops import rearrange, repeat

        from latte_bench.models.latte import modulate

        m = self.model
        b, f = x.shape[:2]
        x = rearrange(x, "b f c h w -> (b f) c h w")
        x = m.x_embedder.proj(x).flatten(2).transpose(1, 2) + m.pos_embed
        n = x.shape[1]
        c = m.t_embedder(t)
        c_spatial = repeat(c, "n d -> (n f) d", f=f)
        c_temporal = repeat(c, "n d -> (n p) d", p=n)
        for i in range(0, len(m.blocks), 2):
            x = self.block(m.blocks[i], x, c_spatial)
            x = rearrange(x, "(b f) n d -> (b n) f d", b=b)
            if i == 0:
                x = x + m.temp_embed
            x = self.block(m.blocks[i + 1], x, c_temporal)
            x = rearrange(x, "(b n) f d -> (b f) n d", b=b)
        fl = m.final_layer
        shift, scale = fl.adaLN_modulation(c_spatial).chunk(2, dim=1)
        x = fl.linear(modulate(fl.norm_final(x), shift.unsqueeze(1), scale.unsqueeze(1)))
        g = int(n**0.5)
        p, co = m.patch_size, m.out_channels
        x = torch.einsum("nhwpqc->nchpwq", x.reshape(b * f, g, g, p, p, co)).reshape(b * f, co, g * p, g * p)
        return rearrange(x, "(b f) c h w -> b f c h w", b=b)


def check_official_style() -> float:
    """max |ours - official-style| on a small random model (both must compute the same function)."""
    from latte_bench.models.latte import Latte

    torch.manual_seed(0)
    model = Latte(input_size=8, hidden_size=64, depth=4, num_heads=4, num_frames=4)
    with torch.no_grad():
        for p in model.parameters():
            p.normal_(0, 0.05)
        x, t = torch.randn(2, 4, 4, 8, 8), torch.tensor([3, 700])
        return (model(x, t) - OfficialStyle(model)(x, t)).abs().max().item()


def make_step(name: str, attention: str, args):
    """A training-step closure (forward + backward + AdamW) for one model and attention implementation."""
    device = torch.device(args.device)
    torch.manual_seed(0)
    impl = "math" if attention == "official" else attention
    model = create_model(name, num_frames=args.frames, input_size=args.size, attention=impl).to(device)
    model.train()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4, weight_decay=0)
    step_model = OfficialStyle(model) if attention == "official" else model
    step_model = torch.compile(step_model) if args.compile else step_model
    dtype = torch.bfloat16 if args.bf16 else torch.float32
    x = torch.randn(args.batch, args.frames, 4, args.size, args.size, device=device)
    target = torch.randn(args.batch, args.frames, 8, args.size, args.size, device=device)
    t = torch.randint(0, 1000, (args.batch,), device=device)

    def step() -> float:
        start = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        with torch.autocast(device.type, dtype=dtype, enabled=args.bf16):
            loss = ((step_model(x, t) - target) ** 2).mean()
        loss.backward()
        opt.step()
        if device.type == "cuda":
            torch.cuda.synchronize()
        return time.perf_counter() - start

    return step, model.patch_size


def report(name: str, attention: str, times: list[float], patch: int, args) -> dict:
    seconds = min(times)
    flops = count_flops(name, args.batch, args.frames, args.size, backward=True)
    tokens = args.batch * args.frames * (args.size // patch) ** 2
    print(
        f"{name:12s} {attention:8s} batch {args.batch}: {seconds:8.3f} s/step  {tokens / seconds:9.1f} tokens/s  "
        f"{flops / seconds / 1e9:8.1f} GFLOP/s  (steps {', '.join(f'{s:.3f}' for s in times)})",
        flush=True,
    )
    return {
        "model": name, "attention": attention, "batch": args.batch, "frames": args.frames, "latent": args.size,
        "seconds_per_step": seconds, "all_step_seconds": times, "tokens_per_s": tokens / seconds,
        "fwd_bwd_flops": flops, "achieved_tflops": flops / seconds / 1e12,
    }  # fmt: skip


def time_models(args) -> list[dict]:
    """Time every (model, attention); with ``--interleave`` the implementations of one model take
    turns step by step, so that a changing machine load hits them alike."""
    rows = []
    for name in args.models:
        steps = {attention: make_step(name, attention, args) for attention in args.attention} if args.interleave else {}
        times = {attention: [] for attention in args.attention}
        if args.interleave:
            for _ in range(args.warmup):
                for attention in args.attention:
                    steps[attention][0]()
            for _ in range(args.steps):
                for attention in args.attention:
                    times[attention].append(steps[attention][0]())
        else:
            for attention in args.attention:
                step, patch = make_step(name, attention, args)
                steps[attention] = (step, patch)
                for _ in range(args.warmup):
                    step()
                times[attention] = [step() for _ in range(args.steps)]
                del step
        rows += [report(name, attention, times[attention], steps[attention][1], args) for attention in args.attention]
    return rows


def time_blocks(args) -> list[dict]:
    """Forward+backward of one spatial and one temporal block of the first model, ours vs the official
    data flow (per-sequence repeated condition, rearranged layout, math attention), interleaved."""
    from einops import rearrange

    from latte_bench.models.latte import LATTE_SIZES, Latte, TemporalContext, parse_model_name

    size, patch = parse_model_name(args.models[0])
    dims = LATTE_SIZES[size]
    torch.manual_seed(0)
    model = Latte(input_size=args.size, patch_size=patch, hidden_size=dims["hidden_size"], depth=2, num_heads=dims["num_heads"], num_frames=args.frames)
    with torch.no_grad():
        for p in model.parameters():
            p.normal_(0, 0.02)
    official = OfficialStyle(model)
    b, f, n, d = args.batch, args.frames, (args.size // patch) ** 2, dims["hidden_size"]
    x = torch.randn(b, f, n, d, requires_grad=True)
    c = torch.randn(b, d)
    ctx = TemporalContext(f, 0, True, None, False)
    spatial, temporal = model.blocks
    cases = {
        "ours spatial": lambda: spatial(x, c[:, None, None], ctx),
        "official spatial": lambda: official.block(spatial, x.reshape(b * f, n, d), c.repeat_interleave(f, 0)),
        "ours temporal": lambda: temporal(x, c[:, None, None], ctx),
        "official temporal": lambda: official.block(temporal, rearrange(x, "b f n d -> (b n) f d"), c.repeat_interleave(n, 0)),
    }
    times = {k: [] for k in cases}
    for _ in range(args.warmup + args.steps):
        for key, fn in cases.items():
            start = time.perf_counter()
            fn().sum().backward()
            times[key].append(time.perf_counter() - start)
    rows = []
    for key, values in times.items():
        timed = sorted(values[args.warmup :])
        rows.append({"case": key, "min_s": timed[0], "median_s": timed[len(timed) // 2], "all_s": values})
        print(f"{args.models[0]} {key:18s} fwd+bwd: min {timed[0]:.3f} s, median {timed[len(timed) // 2]:.3f} s", flush=True)
    return rows


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--flops", action="store_true", help="count FLOPs of the four XL variants and exit")
    parser.add_argument("--models", nargs="+", default=["Latte-S/2", "Latte-B/2"])
    parser.add_argument("--attention", nargs="+", default=["sdpa", "math", "official"], choices=["sdpa", "math", "official"],
                        help="sdpa / math: this model; official: the official data flow (OfficialStyle) with math attention")
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--frames", type=int, default=16)
    parser.add_argument("--size", type=int, default=32, help="latent height = width")
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--steps", type=int, default=2, help="timed steps; the fastest is reported")
    parser.add_argument("--interleave", action="store_true", help="alternate the attention implementations step by step")
    parser.add_argument("--blocks", action="store_true", help="time one spatial and one temporal block, ours vs official data flow")
    parser.add_argument("--check", action="store_true", help="check that OfficialStyle computes our function, and exit")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--bf16", action="store_true", help="autocast to bfloat16")
    parser.add_argument("--compile", action="store_true", help="torch.compile the model")
    parser.add_argument("--threads", type=int, default=None, help="torch intra-op threads (CPU)")
    parser.add_argument("--json", default=None, help="also write the rows to this JSON file")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {platform.processor() or platform.machine()}, threads {torch.get_num_threads()}, load {os.getloadavg()}", flush=True)

    if args.flops:
        rows = flops_table(args.frames, args.size)
    elif args.blocks:
        rows = time_blocks(args)
    elif args.check:
        diff = check_official_style()
        print(f"max |ours - official-style| = {diff:.3g}")
        return 0 if diff <= 1e-5 else 1
    else:
        rows = time_models(args)
    if args.json:
        from latte_bench.fsutil import write_json

        write_json(args.json, {"args": vars(args), "rows": rows})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
