"""The MeanFlow training step of `meanflow bench` in PyTorch eager (torch.func.jvp), optional peer.

Same definition as benches/peers/jax_step.py and src/bench/step.rs: the `mlp` trunk (c1-c4) or the
`resmlp` one (r1, r2: src/flow/model/mod.rs), with its layer norm written from mean, variance and
sqrt as in jax_step.py. Threads: torch.set_num_threads.
Usage: python torch_step.py --config c2 --loss mf --threads 1
"""
import argparse
import json
import math
import resource
import time

import torch
from torch.func import jvp

# name: (d, width, depth, batch, architecture); depth = hidden layers (mlp) or residual blocks (resmlp).
CONFIGS = {
    "c1": (2, 128, 3, 256, "mlp"),
    "c2": (2, 256, 4, 1024, "mlp"),
    "c3": (2, 512, 4, 2048, "mlp"),
    "c4": (64, 512, 4, 1024, "mlp"),
    "r1": (64, 256, 3, 256, "resmlp"),
    "r2": (2, 256, 3, 1024, "resmlp"),
}
DEFAULT_COUNTS = {"c1": (50, 300), "c2": (10, 50), "c3": (3, 15), "c4": (3, 15), "r1": (10, 50), "r2": (3, 15)}


class Mlp(torch.nn.Module):
    def __init__(self, d, width, depth):
        super().__init__()
        sizes = [d + 2] + [width] * depth
        self.trunk = torch.nn.ModuleList(torch.nn.Linear(i, o) for i, o in zip(sizes[:-1], sizes[1:]))
        self.u_head = torch.nn.Linear(width, d)

    def forward(self, z, r, t):
        h = torch.cat([z, t, t - r], dim=1)
        for layer in self.trunk:
            h = torch.nn.functional.silu(layer(h))
        return self.u_head(h)


def layer_norm(x, eps=1e-5):
    """(x - mean) / sqrt(var + eps) per row, no gain or bias: meanflow's LN (biased variance, like
    nn.LayerNorm(width, elementwise_affine=False)), written out as jax_step.py writes it rather
    than F.layer_norm, whose forward-mode derivative PyTorch 2.15 differentiates wrongly."""
    mean = x.mean(dim=1, keepdim=True)
    centred = x - mean
    var = (centred * centred).mean(dim=1, keepdim=True)
    return centred / torch.sqrt(var + eps)


class Block(torch.nn.Module):
    def __init__(self, width, condition):
        super().__init__()
        self.fc1 = torch.nn.Linear(width + condition, width)
        self.fc2 = torch.nn.Linear(width, width)

    def forward(self, a, c):
        hidden = torch.nn.functional.silu(self.fc1(torch.cat([layer_norm(a), c], dim=1)))
        return a + self.fc2(hidden)


class ResMlp(torch.nn.Module):
    """meanflow's `resmlp`: a_0 = [z | c] W_in^T + b_in, a += act([LN(a) | c] W1^T + b1) W2^T + b2
    per block, u = LN(a) U^T + U_b, with c = [t, h] (raw conditioning)."""

    def __init__(self, d, width, depth):
        super().__init__()
        self.input = torch.nn.Linear(d + 2, width)
        self.blocks = torch.nn.ModuleList(Block(width, 2) for _ in range(depth))
        self.u_head = torch.nn.Linear(width, d)

    def forward(self, z, r, t):
        c = torch.cat([t, t - r], dim=1)
        a = self.input(torch.cat([z, c], dim=1))
        for block in self.blocks:
            a = block(a, c)
        return self.u_head(layer_norm(a))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--config", required=True, choices=CONFIGS)
    ap.add_argument("--loss", required=True, choices=["mf", "imf"])
    ap.add_argument("--threads", type=int, default=1)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    d, width, depth, batch, architecture = CONFIGS[a.config]
    warmup, repeats = DEFAULT_COUNTS[a.config]
    model = (ResMlp if architecture == "resmlp" else Mlp)(d, width, depth)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    n_equal = round(0.75 * batch)

    def step():
        if d == 2:
            k = torch.randint(0, 8, (batch,)).float() * (math.pi / 4)
            x = 2.0 * torch.stack([k.cos(), k.sin()], 1) + 0.1 * torch.randn(batch, 2)
        else:
            x = 0.5 * torch.randn(batch, d)
        e = torch.randn(batch, d)
        s = torch.rand(batch, 2)
        t = s.max(1, keepdim=True).values
        r = s.min(1, keepdim=True).values
        r[batch - n_equal:] = t[batch - n_equal:]
        z = (1 - t) * x + t * e
        v = e - x
        if a.loss == "imf":
            with torch.no_grad():
                tangent = model(z, t, t)
        else:
            tangent = v
        u, dudt = jvp(model, (z, r, t), (tangent, torch.zeros_like(r), torch.ones_like(t)))
        delta = u + (t - r) * dudt.detach() - v
        loss = (delta ** 2).sum(1).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        return loss

    for _ in range(warmup):
        step()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        loss = step()
        times.append((time.perf_counter() - start) * 1e3)
    times.sort()
    med = times[len(times) // 2]
    print(json.dumps({
        "peer": "torch", "version": torch.__version__, "config": a.config,
        "architecture": architecture, "loss": a.loss, "threads": a.threads, "median_ms": round(med, 4),
        "min_ms": round(times[0], 4), "max_ms": round(times[-1], 4), "samples_per_s": round(batch / (med / 1e3), 1),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "final_loss": float(loss.detach()),
    }))


if __name__ == "__main__":
    main()
