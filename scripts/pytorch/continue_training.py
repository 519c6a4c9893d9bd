#!/usr/bin/env python3
"""Continue a meanflow run in PyTorch: load `checkpoint.safetensors` (written by `meanflow train`,
format `meanflow-checkpoint-v2`) into an nn.Module of the same architecture, check that it
reproduces the Rust engine's numbers, train it for more steps with the same loss, and save it.

    meanflow data --dataset two_moons --n 20000 --out moons.npy
    python3 scripts/pytorch/continue_training.py runs/moons/checkpoint.safetensors \
        --data moons.npy --steps 1000 --out moons.pt [--device cuda]

The check: the checkpoint's parameters (in f64) and one batch drawn as in training go through
this script's loss (export_reference.py: the model, torch.func.jvp, autograd) into a reference
case (docs/reference-format.md) that `meanflow verify` recomputes in the Rust engine, quantity by
quantity: z, v_c, v_target, v_hat, tangent, u, dudt, delta, the losses and every parameter's
gradient. The script prints the largest relative error and stops unless it is <= --tolerance
(1e-6). `--meanflow BIN` names the binary (default: `meanflow` on the PATH); `--no-check` skips.

Training then follows the checkpoint's config (docs/pytorch.md): the batch size, the time sampler
(its r != t rows first), label dropout, the guidance scales and intervals of a conditional model, the loss
(beta, v_source, p, c, exact, guidance), AdamW with its lr, betas, eps, weight decay, warm-up and
clipping, continuing from the saved moments and step count, and the EMA. Batches are drawn with
PyTorch's generator (`--seed`), so the numbers are not meanflow's stream: the distribution is.

Data: `--data FILE`, .npy or .csv (comma-separated, no header), N x d points; for a conditional
model N x (d + 1) with the class (an integer 0 .. C - 1) in the last column.

The result, written with torch.save (`--out`, default continued.pt), is a dict: `model` (the
state_dict, meanflow's tensor names), `ema` (a state_dict, or None), `optimizer` (AdamW's
state_dict), `config` (the checkpoint's TrainConfig as a dict), `step` (optimizer steps in all)
and `format` = "meanflow-pytorch-v1". Load it with `torch.load(path)`.
"""
import argparse
import copy
import json
import math
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time

import numpy as np
import torch
from safetensors import safe_open
from safetensors.torch import load_file

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from export_reference import MeanFlowMLP, export_case, meanflow_quantities  # noqa: E402

CHECKPOINT_FORMAT = "meanflow-checkpoint-v2"


def fail(message):
    print(f"error: {message}", file=sys.stderr)
    sys.exit(2)


def read_checkpoint(path):
    with safe_open(path, "pt") as f:
        meta = f.metadata() or {}
    if meta.get("format") != CHECKPOINT_FORMAT:
        fail(f"{path}: not a meanflow checkpoint (format {meta.get('format')!r}, "
             f"expected {CHECKPOINT_FORMAT!r})")
    tensors = load_file(path)
    groups = {"params": {}, "ema": {}, "adam.m": {}, "adam.v": {}}
    for name, value in tensors.items():
        for prefix in ("ema", "adam.m", "adam.v"):
            if name.startswith(prefix + "."):
                groups[prefix][name[len(prefix) + 1:]] = value
                break
        else:
            groups["params"][name] = value
    run = json.loads(meta["run"]) if "run" in meta else {}
    return (json.loads(meta["config"]), int(meta["step"]), meta.get("precision", "f32"), groups,
            run)


def model_units(run, dim):
    """(shift, scale), one per column, of x_model = (x - shift) / scale (src/data/units.rs): the
    run's recorded units (a data file standardised over its training pool); a run from before
    they were recorded trains the digits' pixels 0..16 in [-1, 1] and any other data as given."""
    if "units" in run:
        return torch.tensor(run["units"]["shift"]), torch.tensor(run["units"]["scale"])
    dataset = run.get("dataset", {})
    if dataset.get("kind") == "builtin" and dataset.get("name") == "digits":
        return torch.full((dim,), 8.0), torch.full((dim,), 8.0)
    return torch.zeros(dim), torch.ones(dim)


def model_dict(config):
    """The reference-case keys of the model in a TrainConfig (`architecture` absent: mlp)."""
    m = config["model"]
    return {"d": m["dim"], "width": m["width"], "depth": m["depth"],
            "architecture": m.get("architecture", "mlp"),
            "activation": m["activation"], "conditioning": m["conditioning"],
            "heads": m["heads"], "classes": m.get("classes", 0),
            "class_dim": m.get("class_dim", 0), "guidance_input": m.get("guidance_input", False),
            "guidance_interval_input": m.get("guidance_interval_input", False)}


def build_model(config, state, dtype, device):
    model = MeanFlowMLP.from_config(model_dict(config)).to(dtype)
    model.load_state_dict({k: v.to(dtype) for k, v in state.items()}, strict=True)
    return model.to(device)


def read_data(path, config):
    m = config["model"]
    if path.endswith(".npy"):
        data = np.load(path)
    else:
        data = np.loadtxt(path, delimiter=",", ndmin=2)
    data = np.asarray(data, dtype=np.float64)
    if data.ndim == 1:
        data = data[:, None]
    classes = m.get("classes", 0)
    want = m["dim"] + (1 if classes > 0 else 0)
    if data.ndim != 2 or data.shape[1] != want or data.shape[0] == 0:
        fail(f"{path}: shape {data.shape}, expected N x {want} "
             f"({m['dim']} coordinates{' and the class' if classes > 0 else ''})")
    points = torch.from_numpy(data[:, : m["dim"]].copy())
    labels = None
    if classes > 0:
        raw = data[:, -1]
        if not np.all((raw == np.round(raw)) & (raw >= 0) & (raw < classes)):
            fail(f"{path}: the last column must hold classes 0 to {classes - 1}")
        labels = torch.from_numpy(raw.astype(np.int64))
    return points, labels


class BatchSampler:
    """Batches as meanflow's trainer draws them, from PyTorch's generator."""

    def __init__(self, config, points, labels, seed):
        self.config, self.points, self.labels = config, points, labels
        self.gen = torch.Generator().manual_seed(seed)

    def times(self, b):
        time = self.config["time"]
        dist = time["distribution"]

        def draw(dist):
            if dist["kind"] == "logit-normal":
                n = torch.randn(b, 1, generator=self.gen, dtype=torch.float64)
                return torch.sigmoid(dist["mu"] + dist["sigma"] * n)
            return torch.rand(b, 1, generator=self.gen, dtype=torch.float64)

        if time.get("r_distribution") is not None:
            # r of its own distribution, clamped below t (py-meanflow's time sampler v1).
            t = draw(dist)
            r = torch.minimum(draw(time["r_distribution"]), t)
        else:
            s1, s2 = draw(dist), draw(dist)
            t, r = torch.maximum(s1, s2), torch.minimum(s1, s2)
        equal = min(int(math.floor(time["fraction_equal"] * b + 0.5)), b)  # round half away
        gap = b - equal  # rows 0 .. gap - 1 have r < t, the others r = t
        r[gap:] = t[gap:]
        return t, r

    def draw(self, b):
        m, loss = self.config["model"], self.config["loss"]
        idx = torch.randint(0, self.points.shape[0], (b,), generator=self.gen)
        x = self.points[idx]
        e = torch.randn(x.shape, generator=self.gen, dtype=torch.float64)
        t, r = self.times(b)
        labels = scales = intervals = None
        if m.get("classes", 0) > 0:
            labels = self.labels[idx].clone()
            drop = torch.rand(b, generator=self.gen) < loss.get("label_dropout", 0.0)
            labels[drop] = m["classes"]  # the null class
        if m.get("guidance_input", False):
            w_max = loss["guidance"]["w_max"]  # w log-uniform on [1, 1 + w_max]
            u = torch.rand(b, 1, generator=self.gen, dtype=torch.float64)
            scales = torch.exp(u * math.log1p(w_max))
        if m.get("guidance_interval_input", False):
            # iMF's interval, after the scales, as the trainer draws it (src/train/trainer.rs,
            # draw_interval): per row t_min ~ U[0, 0.5), then t_max ~ U[0.5, 1); r = t rows [0, 1].
            u = torch.rand(b, 2, generator=self.gen, dtype=torch.float64)
            intervals = torch.stack([0.5 * u[:, 0], 0.5 + 0.5 * u[:, 1]], dim=1)
            intervals[(r == t)[:, 0]] = torch.tensor([0.0, 1.0], dtype=torch.float64)
        return x, e, t, r, labels, scales, intervals


def reference_config(config, name):
    loss = config["loss"]
    return dict(model_dict(config), beta=loss["beta"], v_source=loss["v_source"], p=loss["p"],
                c=loss["c"], exact=loss["exact"], guidance=loss.get("guidance", {"kind": "none"}),
                label_dropout=loss.get("label_dropout", 0.0), batch=config["batch"], name=name,
                **({"guidance_interval": loss["guidance_interval"]}
                   if loss.get("guidance_interval") else {}))


def check_against_meanflow(args, config, params, sampler):
    """Exports the checkpoint's parameters and a training batch as a reference case computed here,
    has `meanflow verify` recompute it, and returns the largest relative error it reports."""
    binary = shutil.which(args.meanflow) or (args.meanflow if os.path.isfile(args.meanflow)
                                              else None)
    if binary is None:
        fail(f"no meanflow binary {args.meanflow!r} (give --meanflow PATH, or --no-check)")
    model = build_model(config, params, torch.float64, "cpu")
    batch = sampler.draw(config["batch"])
    with tempfile.TemporaryDirectory() as tmp:
        case = os.path.join(tmp, "check.safetensors")
        tensors = export_case(case, model, reference_config(config, "pytorch-check"), *batch)
        out = subprocess.run([binary, "verify", case, "--tolerance", repr(args.tolerance)],
                             capture_output=True, text=True)
    rows = re.findall(r"^  (\S+)\s+(\S+)\s+(\S+)(  FAIL)?$", out.stdout, re.M)
    errors = {name: float(rel) for name, _, rel, _ in rows if name != "quantity"}
    if out.returncode not in (0, 1) or not errors:
        fail(f"meanflow verify failed (exit {out.returncode}): {out.stderr.strip()}")
    worst = max(errors, key=errors.get)
    return errors[worst], worst, len(errors), tensors["expect.loss"].item()


def lr_at(adam, step):
    if adam["warmup_steps"] == 0:
        return adam["lr"]
    return adam["lr"] * min(1.0, step / adam["warmup_steps"])


def make_optimizer(config, model, groups, step, device, dtype):
    """AdamW with the checkpoint's settings, its moments and step count."""
    adam = config["adam"]
    opt = torch.optim.AdamW(model.parameters(), lr=adam["lr"],
                            betas=(adam["beta1"], adam["beta2"]), eps=adam["eps"],
                            weight_decay=adam["weight_decay"], foreach=False)
    if groups["adam.m"]:
        for name, p in model.named_parameters():
            opt.state[p] = {"step": torch.tensor(float(step)),
                            "exp_avg": groups["adam.m"][name].to(device, dtype).clone(),
                            "exp_avg_sq": groups["adam.v"][name].to(device, dtype).clone()}
    return opt


def make_ema(config, model, groups, dtype):
    if config.get("ema_decay") is None:
        return None
    ema = copy.deepcopy(model)
    if groups["ema"]:
        ema.load_state_dict({k: v.to(dtype) for k, v in groups["ema"].items()})
    for p in ema.parameters():
        p.requires_grad_(False)
    return ema


def train_step(config, model, opt, ema, batch, k, device, dtype):
    """Optimizer step k (1-based) on `batch`, as meanflow's trainer takes it: the loss and its
    gradient, global-norm clipping, AdamW at the warm-up's learning rate, the EMA."""
    batch = [None if a is None else a.to(device) for a in batch]
    batch = [a if a is None or not a.is_floating_point() else a.to(dtype) for a in batch]
    q = meanflow_quantities(model, config["loss"], *batch)
    opt.zero_grad(set_to_none=False)
    q["loss"].backward()
    grads = [p.grad for p in model.parameters()]
    norm = torch.sqrt(sum((g.double() ** 2).sum() for g in grads)).item()
    if not (math.isfinite(q["loss"].item()) and math.isfinite(norm)):
        fail(f"step {k}: non-finite loss {q['loss'].item()} or gradient norm {norm}")
    adam = config["adam"]
    clip = adam.get("clip_norm")
    if clip is not None and norm > clip:
        for g in grads:
            g.mul_(clip / norm)
    for group in opt.param_groups:
        group["lr"] = lr_at(adam, k)
    opt.step()
    if ema is not None:
        # The warm-up of meanflow's EMA (src/train/optim.rs, ema_decay_at): min(d, k / (k + 9)).
        d = min(config["ema_decay"], k / (k + 9.0))
        with torch.no_grad():
            for e, p in zip(ema.parameters(), model.parameters()):
                e.mul_(d).add_(p, alpha=1.0 - d)
    return q, norm


def check_step(path, config, step, groups):
    """Replays the step meanflow took after the checkpoint (`--check-step FILE`: the batch as
    batch.* tensors, the parameters after the step as after.<name>, the EMA as after.ema.<name>)
    in f64; returns the largest relative error of an update (after - before: the parameters' and
    the EMA's, tensor by tensor) and its tensor."""
    saved = load_file(path)
    model = build_model(config, groups["params"], torch.float64, "cpu")
    ema = make_ema(config, model, groups, torch.float64)
    before = {"after.": copy.deepcopy(model.state_dict()),
              "after.ema.": None if ema is None else copy.deepcopy(ema.state_dict())}
    opt = make_optimizer(config, model, groups, step, "cpu", torch.float64)
    get = lambda name: saved.get("batch." + name)  # noqa: E731
    labels = get("labels")
    batch = [get("x"), get("e"), get("t"), get("r"),
             None if labels is None else labels.reshape(-1).round().long(), get("scales"),
             get("intervals")]
    train_step(config, model, opt, ema, batch, step + 1, "cpu", torch.float64)
    worst = (0.0, "")
    for prefix, module in (("after.", model), ("after.ema.", ema)):
        if module is None:
            continue
        for name, value in module.state_dict().items():
            old = before[prefix][name]
            want = saved[prefix + name].to(torch.float64).reshape(value.shape) - old
            got = value - old
            rel = ((got - want).abs().max() / want.abs().max().clamp_min(1e-12)).item()
            worst = max(worst, (rel, prefix + name))
    return worst


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("checkpoint", help="checkpoint.safetensors written by meanflow train")
    ap.add_argument("--data", required=True, help=".npy or .csv points (+ class column)")
    ap.add_argument("--steps", type=int, required=True, help="optimizer steps to take")
    ap.add_argument("--out", default="continued.pt", help="output (torch.save) [continued.pt]")
    ap.add_argument("--meanflow", default=os.environ.get("MEANFLOW", "meanflow"),
                    help="the meanflow binary, for the check [$MEANFLOW or meanflow]")
    ap.add_argument("--tolerance", type=float, default=1e-6,
                    help="largest relative error the check accepts [1e-6]")
    ap.add_argument("--no-check", action="store_true", help="skip the check against meanflow")
    ap.add_argument("--seed", type=int, default=0, help="seed of the batches [0]")
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--dtype", choices=["f32", "f64"], default=None,
                    help="training precision [the checkpoint's]")
    ap.add_argument("--log-every", type=int, default=10, help="print the loss every K steps")
    ap.add_argument("--check-step", metavar="FILE",
                    help="also replay the step meanflow took after the checkpoint, saved in FILE "
                         "(batch.*, after.<name>, after.ema.<name>; tests/pytorch_script.rs)")
    args = ap.parse_args()
    if args.steps < 0:
        fail("--steps must be >= 0")

    config, step, precision, groups, run = read_checkpoint(args.checkpoint)
    points, labels = read_data(args.data, config)
    shift, scale = model_units(run, points.shape[1])
    if not (bool((shift == 0).all()) and bool((scale == 1).all())):
        # The data file is in the data's units (meanflow data --dataset digits writes pixels).
        points = (points - shift.to(points.dtype)) / scale.to(points.dtype)
        print("data mapped to the model's units: x = (x - shift) / scale, per column")
    sampler = BatchSampler(config, points, labels, args.seed)
    m = config["model"]
    print(f"checkpoint {args.checkpoint}: step {step}, {precision}, model "
          f"{m.get('architecture', 'mlp')} {m['depth']} x "
          f"{m['width']} {m['activation']} {m['conditioning']} heads {m['heads']}, "
          f"classes {m.get('classes', 0)}, guidance {config['loss'].get('guidance')}")

    if not args.no_check:
        worst, name, count, loss = check_against_meanflow(args, config, groups["params"],
                                                          sampler)
        verdict = "ok" if worst <= args.tolerance else "FAIL"
        print(f"check against meanflow verify: loss {loss:.6f} on a batch of "
              f"{config['batch']}; {count} quantities, max relative error {worst:.3e} "
              f"({name}) {verdict}")
        if worst > args.tolerance:
            sys.exit(1)

    if args.check_step:
        worst, name = check_step(args.check_step, config, step, groups)
        verdict = "ok" if worst <= args.tolerance else "FAIL"
        print(f"check of step {step + 1} against meanflow's: updates of the parameters and EMA, "
              f"max relative error {worst:.3e} ({name}) {verdict}")
        if worst > args.tolerance:
            sys.exit(1)

    dtype = {"f32": torch.float32, "f64": torch.float64}[args.dtype or precision]
    torch.set_default_dtype(dtype)
    device = torch.device(args.device)
    model = build_model(config, groups["params"], dtype, device)
    ema = make_ema(config, model, groups, dtype)
    opt = make_optimizer(config, model, groups, step, device, dtype)
    start = time.time()
    for k in range(step + 1, step + args.steps + 1):
        batch = sampler.draw(config["batch"])
        q, norm = train_step(config, model, opt, ema, batch, k, device, dtype)
        if (k - step) % max(1, args.log_every) == 0 or k == step + args.steps:
            loss_v = f" loss_v {q['loss_v'].item():.6f}" if "loss_v" in q else ""
            print(f"step {k} loss {q['loss'].item():.6f} loss_u {q['loss_u'].item():.6f}"
                  f"{loss_v} mse {q['ell'].mean().item():.6f} grad_norm {norm:.4f}", flush=True)
    elapsed = time.time() - start
    torch.save({"format": "meanflow-pytorch-v1", "config": config, "step": step + args.steps,
                "model": model.state_dict(),
                "ema": None if ema is None else ema.state_dict(),
                "optimizer": opt.state_dict(), "source": os.path.abspath(args.checkpoint)},
               args.out)
    print(f"trained {args.steps} steps in {elapsed:.1f}s on {device} ({dtype}); "
          f"wrote {args.out} (step {step + args.steps})")


if __name__ == "__main__":
    main()
