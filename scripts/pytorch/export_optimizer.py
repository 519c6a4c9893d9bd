#!/usr/bin/env python3
"""Reference trajectories of the optimiser (`meanflow-optim-v1`) made by PyTorch, for
tests/optimizer_oracle.rs: torch.optim.AdamW driven by a LambdaLR warm-up, global-norm gradient
clipping and an exponential moving average of the parameters, all in float64.

    python3 scripts/pytorch/export_optimizer.py tests/data/optim   # rewrites the files there

Needs torch and safetensors. Rerunning it rewrites the files bit for bit on CPU (fixed seeds).

What one step does (src/train/optim.rs, k = 1, 2, ... is the step number):

    n = |g| over every tensor;  g <- g clip / n  when clipping is on and n > clip
    lr_k = lr min(1, k / warmup)  (warmup = 0: lr_k = lr)
    AdamW (torch.optim.AdamW, decoupled weight decay, one parameter group, all tensors decayed):
        p <- p (1 - lr_k wd);  m <- b1 m + (1 - b1) g;  v <- b2 v + (1 - b2) g^2
        p <- p - lr_k (m / (1 - b1^k)) / (sqrt(v / (1 - b2^k)) + eps)
    ema <- d ema + (1 - d) p   (ema starts at the initial parameters, updated after every step)

Where meanflow's definition differs from PyTorch's usual one, the exporter follows meanflow's:

* Warm-up. LambdaLR multiplies the base lr by lambda(e), e = the number of scheduler.step()
  calls so far (0 for the first optimiser step). meanflow's lr of step k (1-based) is
  lr min(1, k / warmup), so lambda(e) = min(1, (e + 1) / warmup): the first step already uses
  lr / warmup (the common `min(1, e / warmup)` would make the first step's lr 0).
* Clipping. torch.nn.utils.clip_grad_norm_ always multiplies by min(1, clip / (n + 1e-6));
  meanflow multiplies by clip / n only when n > clip (Pascanu et al. 2013's rule, no 1e-6).
  The 1e-6 changes the clipped gradients by ~1e-6 / n relative, far above the 1e-12 the test
  asks. So clip_grad_norm_ is called with max_norm = inf (its coefficient is then exactly 1:
  the gradients are untouched) to get the global norm n, and the scale clip / n is applied
  here when n > clip. Each file records in its metadata how far the parameters would drift
  with PyTorch's own clip coefficient (`torch_native_clip_max_rel_diff`).

Everything else (decoupled decay with the scheduled lr, bias corrections, eps outside the
square root, decay of biases too) is the same in both, up to rounding order.

File layout (tensors float64; biases rank 1 as in nn.Linear, read by meanflow as [1, out]):
    metadata `config` (JSON): name, format, dtype, seed, steps K, ema_decay, tensors (names in
      meanflow's canonical order), depth, heads, classes, and `adam` = meanflow's AdamConfig
      (lr, beta1, beta2, eps, weight_decay, warmup_steps, clip_norm or null)
    init.<name>                       the initial parameters
    step<k>.grad.<name>               the raw gradient of step k (before clipping), k = 1..K
    step<k>.grad_clipped.<name>       the gradient after clipping (= raw when not clipped)
    step<k>.param.<name>              parameters after step k
    step<k>.exp_avg.<name>            Adam's first moment after step k
    step<k>.exp_avg_sq.<name>         Adam's second moment after step k
    step<k>.ema.<name>                the EMA after step k
    grad_norm [K], lr [K], clipped [K] (1 or 0): per step, the raw global norm, the lr used, and
      whether the gradient was clipped
"""
import argparse
import json
import os

import torch
from safetensors.torch import save_file

FORMAT = "meanflow-optim-v1"

# The parameter shapes of a tiny MlpParams: d = 2, width 5, depth 2, heads uv, 3 classes with
# class_dim 2 (input = [z | t | h | E[c]] = 2 + 1 + 1 + 2 = 6), in meanflow's canonical order.
SHAPES = [
    ("trunk.0.weight", (5, 6)),
    ("trunk.0.bias", (5,)),
    ("trunk.1.weight", (5, 5)),
    ("trunk.1.bias", (5,)),
    ("u_head.weight", (2, 5)),
    ("u_head.bias", (2,)),
    ("v_head.weight", (2, 5)),
    ("v_head.bias", (2,)),
    ("class_embed.weight", (4, 2)),
]

# The global norm of each step's raw gradient (scaled to exactly this up to rounding): with
# clip 1 the steps above 1 are clipped, the others not; none is near 1.
NORMS = [3.0, 0.3, 0.8, 5.0, 0.05, 1.7, 0.6, 12.0]

CONFIGS = [
    # name, adam config, ema decay, seed
    ("adamw_warmup_clip", dict(lr=0.05, beta1=0.8, beta2=0.95, eps=1e-6, weight_decay=0.1,
                               warmup_steps=3, clip_norm=1.0), 0.9, 1),
    ("adam_plain", dict(lr=0.02, beta1=0.8, beta2=0.95, eps=1e-3, weight_decay=0.0,
                        warmup_steps=0, clip_norm=None), 0.75, 2),
    ("adamw_clip_nowarmup", dict(lr=0.03, beta1=0.9, beta2=0.999, eps=1e-8, weight_decay=0.05,
                                 warmup_steps=0, clip_norm=1.0), 0.95, 3),
    ("adam_warmup_noclip", dict(lr=0.04, beta1=0.85, beta2=0.99, eps=1e-5, weight_decay=0.0,
                                warmup_steps=4, clip_norm=None), 0.8, 4),
]


def lr_lambda(warmup):
    """meanflow's warm-up factor as a LambdaLR lambda: e = 0 is step k = 1."""
    if warmup == 0:
        return lambda e: 1.0
    return lambda e: min(1.0, (e + 1) / warmup)


def gradients(seed):
    """K raw gradients, each a list of tensors with global norm NORMS[k]."""
    gen = torch.Generator().manual_seed(1000 + seed)
    out = []
    for norm in NORMS:
        g = [torch.randn(shape, generator=gen, dtype=torch.float64) for _, shape in SHAPES]
        total = torch.sqrt(sum((x * x).sum() for x in g))
        out.append([x * (norm / total) for x in g])
    return out


def run(adam, ema_decay, seed, native_clip=False):
    """The trajectory: a dict of tensors and the per-step records."""
    gen = torch.Generator().manual_seed(seed)
    params = [
        torch.nn.Parameter(torch.rand(shape, generator=gen, dtype=torch.float64) * 2 - 1)
        for _, shape in SHAPES
    ]
    opt = torch.optim.AdamW(
        params,
        lr=adam["lr"],
        betas=(adam["beta1"], adam["beta2"]),
        eps=adam["eps"],
        weight_decay=adam["weight_decay"],
        amsgrad=False,
        maximize=False,
        foreach=False,
    )
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lr_lambda(adam["warmup_steps"]))
    out = {f"init.{n}": p.detach().clone() for (n, _), p in zip(SHAPES, params)}
    ema = [p.detach().clone() for p in params]
    norms, lrs, clipped = [], [], []
    for k, grads in enumerate(gradients(seed), start=1):
        for (n, _), p, g in zip(SHAPES, params, grads):
            p.grad = g.clone()
            out[f"step{k}.grad.{n}"] = g.clone()
        clip = adam["clip_norm"]
        if native_clip and clip is not None:
            norm = float(torch.nn.utils.clip_grad_norm_(params, max_norm=clip))
        else:
            # max_norm = inf: the coefficient min(1, inf / (n + 1e-6)) is exactly 1.
            norm = float(torch.nn.utils.clip_grad_norm_(params, max_norm=float("inf")))
            if clip is not None and norm > clip:
                for p in params:
                    p.grad.mul_(clip / norm)
        norms.append(norm)
        clipped.append(1.0 if clip is not None and norm > clip else 0.0)
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
        with torch.no_grad():
            for e, p in zip(ema, params):
                e.mul_(ema_decay).add_((1 - ema_decay) * p)
        for (n, _), p, e in zip(SHAPES, params, ema):
            state = opt.state[p]
            out[f"step{k}.grad_clipped.{n}"] = p.grad.detach().clone()
            out[f"step{k}.param.{n}"] = p.detach().clone()
            out[f"step{k}.exp_avg.{n}"] = state["exp_avg"].clone()
            out[f"step{k}.exp_avg_sq.{n}"] = state["exp_avg_sq"].clone()
            out[f"step{k}.ema.{n}"] = e.clone()
    out["grad_norm"] = torch.tensor(norms, dtype=torch.float64)
    out["lr"] = torch.tensor(lrs, dtype=torch.float64)
    out["clipped"] = torch.tensor(clipped, dtype=torch.float64)
    return out


def max_rel_diff(a, b, prefix):
    worst = 0.0
    for key, x in a.items():
        if key.startswith("step") and f".{prefix}." in key:
            scale = max(float(b[key].abs().max()), 1e-8)
            worst = max(worst, float((x - b[key]).abs().max()) / scale)
    return worst


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("out_dir")
    args = ap.parse_args()
    os.makedirs(args.out_dir, exist_ok=True)
    for name, adam, ema_decay, seed in CONFIGS:
        tensors = run(adam, ema_decay, seed)
        config = {
            "name": name,
            "format": FORMAT,
            "dtype": "f64",
            "seed": seed,
            "steps": len(NORMS),
            "ema_decay": ema_decay,
            "depth": 2,
            "heads": "uv",
            "classes": 3,
            "tensors": [n for n, _ in SHAPES],
            "adam": adam,
        }
        if adam["clip_norm"] is not None:
            native = run(adam, ema_decay, seed, native_clip=True)
            config["torch_native_clip_max_rel_diff"] = max_rel_diff(native, tensors, "param")
        path = os.path.join(args.out_dir, f"{name}.safetensors")
        save_file({k: v.contiguous() for k, v in tensors.items()}, path,
                  metadata={"config": json.dumps(config)})
        print(f"{path}: {len(tensors)} tensors, clipped {tensors['clipped'].tolist()}, "
              f"lr {tensors['lr'].tolist()}"
              + (f", native clip drift {config['torch_native_clip_max_rel_diff']:.2e}"
                 if "torch_native_clip_max_rel_diff" in config else ""))


if __name__ == "__main__":
    main()
