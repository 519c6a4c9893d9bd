#!/usr/bin/env python3
"""Reference cases (`meanflow-golden-v1`, docs/reference-format.md) from an independent PyTorch
implementation of the MeanFlow losses, for `meanflow verify FILE...`.

    python3 scripts/pytorch/export_reference.py case.safetensors   # one example case
    python3 scripts/pytorch/export_reference.py --golden tests/data # the cond_* cases there

Needs torch and safetensors (pip install torch safetensors). Everything is float64: the tolerance
of `meanflow verify` is 1e-9. The module is also imported by continue_training.py, which holds a
meanflow checkpoint in `MeanFlowMLP` and trains it with `meanflow_quantities`.

The math, from the formulas of docs/reference-format.md (not from the Rust code):

    cond = [emb(t) | emb(h) | emb(g) (guidance_input) | emb(t_min) | emb(t_max)
           (guidance_interval_input) | E[c] (classes > 0)],  h = t - r, g = 1 - 1/w;
    architecture mlp (the default): a_0 = [z | cond], a_{i+1} = act(a_i W_i^T + b_i),
          features a_depth
    architecture resmlp: a_0 = [z | cond] W_in^T + b_in,
          a_{i+1} = a_i + act([LN(a_i) | cond] W1_i^T + b1_i) W2_i^T + b2_i,  features LN(a_depth),
          LN(x) = (x - mean(x)) / sqrt(var(x) + 1e-5) per row (biased variance, no gain or bias)
    u = features U^T + U_b;  v(z, t | c, w) = the v-head at h = 0
    z = (1 - t) x + t e,  v_c = e - x
    V(c, w) = sg(u(z, t, t | c, w)) (v_source boundary) or sg(v(z, t | c, w)) (head)
    v_g = v_c                                             no guidance, and rows of the null class
        = w v_c + kappa V(c) + (1 - w - kappa) V(null)    guidance "target" (MF)
        = v_c + (1 - 1/w_i) (V(c, w_i) - V(null, 1))      guidance "input" (iMF)
    with the interval input (iMF's, Lyy-iiis/imeanflow imf.py guidance_fn): w' = w where
    t_min <= t <= t_max, else 1;  V(c, w) above is V(c, w', [0, 1]), V(null, 1) is V(null, 1,
    [0, 1]), and (1 - 1/w) is (1 - 1/w'): v_g = v_c outside the row's interval
    v_hat = V(c, w);  tangent = sg((1 - beta) v_g + beta v_hat)
    (u, dudt) = jvp(u(., ., . | c, w), (z, r, t), (tangent, 0, 1))
    delta = u + (t - r) sg(dudt) - v_g  (exact: no sg);  ell, w = sg((ell + c)^-p), loss_u = mean w ell
    uv: delta_v = v(z, t | c, w) - v_g, loss_v likewise;  loss = loss_u (+ loss_v)
"""
import argparse
import json
import math
import os
import warnings

import torch
import torch.nn as nn
from safetensors.torch import save_file
from torch.func import jvp

FORMAT = "meanflow-golden-v1"

# PyTorch's own JVP decompositions call torch.jit.script on first use, which warns in 2.15.
warnings.filterwarnings("ignore", message=r"`torch.jit.script` is deprecated", category=FutureWarning)


def softplus(x):  # ln(1 + e^x) without nn.Softplus's threshold at 20
    return torch.relu(x) + torch.log1p(torch.exp(-x.abs()))


ACTIVATIONS = {
    "silu": nn.functional.silu,
    "tanh": torch.tanh,
    "gelu_tanh": lambda x: nn.functional.gelu(x, approximate="tanh"),
    "relu": torch.relu,
    "softplus": softplus,
    "sigmoid": torch.sigmoid,
}


def time_embedding_width(conditioning):
    """Columns of emb(s) for one scalar s: 1 (raw) or 1 + 2K (fourierK); an `h-` prefix (h alone
    enters the network, improved MeanFlow's way) does not change it."""
    conditioning = conditioning.removeprefix("h-")
    if conditioning == "raw":
        return 1
    k = conditioning[len("fourier"):]
    return 1 + 2 * (int(k) if k else 4)


ARCHITECTURES = ("mlp", "resmlp")
LAYER_NORM_EPS = 1e-5  # nn.LayerNorm's default


def layer_norm(a):
    """Per row (a - mean) / sqrt(var + 1e-5), biased variance, no gain or bias: the value of
    nn.functional.layer_norm(a, (width,), eps=1e-5), to ~1e-16. Written out because PyTorch's
    kernel is wrong under reverse over forward: the JVP's tangent is right, but its gradient
    treats the saved mean and 1/std as constants (torch 2.15: relative errors ~0.2 in an exact
    loss's gradient; pytorch/pytorch#196700 is the same fault in a nested JVP)."""
    centred = a - a.mean(dim=1, keepdim=True)
    var = (centred * centred).mean(dim=1, keepdim=True)
    return centred / torch.sqrt(var + LAYER_NORM_EPS)


class ResidualBlock(nn.Module):
    """a + act([LN(a) | cond] W1^T + b1) W2^T + b2: a pre-normalised block seeing the condition."""

    def __init__(self, width, condition, act):
        super().__init__()
        self.act = act
        self.fc1 = nn.Linear(width + condition, width)
        self.fc2 = nn.Linear(width, width)

    def forward(self, a, cond):
        hidden = self.act(self.fc1(torch.cat([layer_norm(a), cond], dim=1)))
        return a + self.fc2(hidden)


class MeanFlowMLP(nn.Module):
    """u(z, r, t | c, w) and optionally v(z, t | c, w); state_dict names as meanflow's.

    architecture "mlp": `trunk.{i}`, act(a W^T + b) on a_0 = [z | cond];  "resmlp": `input` (a_0 =
    [z | cond] W_in^T + b_in, no activation), `blocks.{i}` (ResidualBlock), features LN(a_depth)."""

    def __init__(self, d, width, depth, activation, conditioning="raw", heads="u",
                 classes=0, class_dim=0, guidance_input=False, guidance_interval_input=False,
                 architecture="mlp"):
        super().__init__()
        if architecture not in ARCHITECTURES:
            raise ValueError(f"unknown architecture {architecture!r} (expected one of "
                             f"{', '.join(ARCHITECTURES)})")
        self.d, self.classes, self.guidance_input = d, classes, guidance_input
        self.guidance_interval_input = guidance_interval_input
        self.architecture = architecture
        self.act = ACTIVATIONS[activation]
        one = time_embedding_width(conditioning)
        self.freqs = (one - 1) // 2
        self.h_only = conditioning.startswith("h-")
        times = 1 if self.h_only else 2
        condition = (times * one + (one if guidance_input else 0)
                     + (2 * one if guidance_interval_input else 0)
                     + (class_dim if classes > 0 else 0))
        fan_in = d + condition
        # Layers are created in meanflow's canonical order (the order of torch's init draws).
        if architecture == "mlp":
            self.trunk = nn.ModuleList()
            for _ in range(depth):
                self.trunk.append(nn.Linear(fan_in, width))
                fan_in = width
        else:
            self.input = nn.Linear(fan_in, width)
            self.blocks = nn.ModuleList(ResidualBlock(width, condition, self.act)
                                        for _ in range(depth))
            fan_in = width
        self.u_head = nn.Linear(fan_in, d)
        self.v_head = nn.Linear(fan_in, d) if heads == "uv" else None
        # Row C is the null class (a dropped label).
        self.class_embed = nn.Embedding(classes + 1, class_dim) if classes > 0 else None

    @classmethod
    def from_config(cls, m):
        """From a config dict with the reference-case keys (d, width, depth, ...)."""
        return cls(m["d"], m["width"], m["depth"], m["activation"], m["conditioning"], m["heads"],
                   m.get("classes", 0), m.get("class_dim", 0), m.get("guidance_input", False),
                   m.get("guidance_interval_input", False), m.get("architecture", "mlp"))

    def embed(self, s):  # s [B, 1] -> [s, sin(pi 2^k s), cos(pi 2^k s)]
        if self.freqs == 0:
            return s
        omegas = math.pi * 2.0 ** torch.arange(self.freqs, dtype=s.dtype, device=s.device)
        phases = s * omegas
        return torch.cat([s, torch.sin(phases), torch.cos(phases)], dim=1)

    def features(self, z, t, h, labels=None, scales=None, intervals=None):
        parts = [self.embed(h)] if self.h_only else [self.embed(t), self.embed(h)]
        if self.guidance_input:
            parts.append(self.embed(1.0 - 1.0 / scales))  # g = 1 - 1/w, in [0, 1)
        if self.guidance_interval_input:  # intervals [B, 2]: t_min, t_max
            parts += [self.embed(intervals[:, :1]), self.embed(intervals[:, 1:])]
        if self.class_embed is not None:
            parts.append(self.class_embed(labels))
        cond = torch.cat(parts, dim=1)  # the condition: every input but z
        a = torch.cat([z, cond], dim=1)
        if self.architecture == "mlp":
            for layer in self.trunk:
                a = self.act(layer(a))
            return a
        a = self.input(a)
        for block in self.blocks:
            a = block(a, cond)
        return layer_norm(a)

    def u(self, z, r, t, labels=None, scales=None, intervals=None):
        # h = t - r inside: a JVP along (v, 0, 1) on (z, r, t) has dh = 1.
        return self.u_head(self.features(z, t, t - r, labels, scales, intervals))

    def v(self, z, t, labels=None, scales=None, intervals=None):
        return self.v_head(self.features(z, t, t - t, labels, scales, intervals))


def weighted(delta, p, c):
    ell = (delta ** 2).sum(dim=1)
    w = ((ell + c) ** (-p)).detach()
    return ell, w, (w * ell).mean()


def guided_target(model, loss, z, t, v_c, labels, scales, intervals=None):
    """(v_g, V(c, w)): the regression target and the model's own stop-gradient velocity."""
    full = None
    if model.guidance_interval_input:
        # iMF's interval (Lyy-iiis/imeanflow imf.py, guidance_fn and v_cond_fn): the estimates
        # see the interval [0, 1] and w' = w inside the row's [t_min, t_max], 1 outside.
        inside = (t >= intervals[:, :1]) & (t <= intervals[:, 1:])
        scales = torch.where(inside, scales, torch.ones_like(scales))
        full = torch.cat([torch.zeros_like(t), torch.ones_like(t)], dim=1)

    def velocity(lab, sc):
        with torch.no_grad():
            if loss["v_source"] == "boundary":
                return model.u(z, t, t, lab, sc, full)
            return model.v(z, t, lab, sc, full)

    own = velocity(labels, scales)
    guidance = loss.get("guidance", {"kind": "none"})
    kind = guidance["kind"]
    if kind == "none":
        return v_c, own
    null_labels = torch.full_like(labels, model.classes)
    null_scales = torch.ones_like(scales) if model.guidance_input else None
    null = velocity(null_labels, null_scales)
    if kind == "target":
        w, kappa = guidance["w"], guidance["kappa"]
        guided = w * v_c + kappa * own + (1.0 - w - kappa) * null
    elif kind == "input":
        guided = v_c + (1.0 - 1.0 / scales) * (own - null)  # w' with the interval: 0 outside
    else:
        raise ValueError(f"unknown guidance kind {kind!r}")
    has_class = (labels != model.classes).unsqueeze(1)
    if "guidance_interval" in loss:
        # MF's interval: guided only where t_min <= t <= t_max (Gsunshine/meanflow meanflow.py).
        t_min, t_max = loss["guidance_interval"]
        has_class = has_class & (t >= t_min) & (t <= t_max)
    return torch.where(has_class, guided, v_c), own


def meanflow_quantities(model, loss, x, e, t, r, labels=None, scales=None, intervals=None):
    """Every quantity of the format by name (without 'expect.'); q['loss'] carries the graph.

    `loss` holds beta, v_source, p, c, exact and optionally guidance (a dict as in the config)."""
    z = (1 - t) * x + t * e
    v_c = e - x
    v_g, v_hat = guided_target(model, loss, z, t, v_c, labels, scales, intervals)
    beta = loss["beta"]
    tangent = ((1 - beta) * v_g + beta * v_hat).detach()
    u, dudt = jvp(lambda z_, r_, t_: model.u(z_, r_, t_, labels, scales, intervals), (z, r, t),
                  (tangent, torch.zeros_like(r), torch.ones_like(t)))
    delta = u + (t - r) * (dudt if loss["exact"] else dudt.detach()) - v_g
    ell, w, loss_u = weighted(delta, loss["p"], loss["c"])
    q = dict(z=z, v_c=v_c, v_target=v_g, v_hat=v_hat, tangent=tangent, u=u, dudt=dudt,
             delta=delta, ell=ell, w=w, loss_u=loss_u)
    total = loss_u
    if model.v_head is not None:
        v = model.v(z, t, labels, scales, intervals)
        delta_v = v - v_g
        ell_v, w_v, loss_v = weighted(delta_v, loss["p"], loss["c"])
        q.update(v_head=v, delta_v=delta_v, ell_v=ell_v, w_v=w_v, loss_v=loss_v)
        total = total + loss_v
    q["loss"] = total
    return q


def case_tensors(model, config, x, e, t, r, labels=None, scales=None, intervals=None):
    """The tensors of a reference case: parameters, batch, expect.* (gradients included)."""
    q = meanflow_quantities(model, config, x, e, t, r, labels, scales, intervals)
    model.zero_grad()
    q["loss"].backward()
    tensors = {}
    for name, param in model.named_parameters():
        tensors[name] = param.detach()
        tensors["expect.grad." + name] = param.grad.detach()
    batch = {"x": x, "e": e, "t": t, "r": r}
    if labels is not None:
        batch["labels"] = labels.to(torch.float64)  # [B], integer values; C = null class
    if scales is not None:
        batch["scales"] = scales  # [B, 1], w >= 1
    if intervals is not None:
        batch["intervals"] = intervals  # [B, 2], each row's [t_min, t_max]
    for name, value in batch.items():
        tensors["batch." + name] = value
    for name, value in q.items():
        value = value.detach()
        tensors["expect." + name] = value.reshape(1) if value.dim() == 0 else value  # no rank 0
    return {k: v.detach().to("cpu", torch.float64).contiguous().clone() for k, v in tensors.items()}


def export_case(path, model, config, x, e, t, r, labels=None, scales=None, intervals=None):
    config = dict(config, dtype="f64", format=FORMAT)
    tensors = case_tensors(model, config, x, e, t, r, labels, scales, intervals)
    save_file(tensors, path, metadata={"config": json.dumps(config)})
    return tensors


def random_batch(config, gen, labels_from=None):
    """A batch for `config`: t in (0.05, 0.95), the first quarter of rows r = t, the others
    r = t U(0, 1); labels uniform over the classes with every third row dropped (null class);
    scales log-uniform on [1, 1 + w_max] (iMF's draw); with the interval input, intervals
    t_min ~ U[0, 0.5], t_max ~ U[0.5, 1], [0, 1] on the rows with r = t (iMF's draw)."""
    B, d = config["batch"], config["d"]
    x = torch.randn(B, d, generator=gen)
    e = torch.randn(B, d, generator=gen)
    t = torch.rand(B, 1, generator=gen) * 0.9 + 0.05
    r = t * torch.rand(B, 1, generator=gen)
    r[: max(1, B // 4)] = t[: max(1, B // 4)]  # rows with r == t exercise the boundary
    labels = scales = intervals = None
    classes = config.get("classes", 0)
    if classes > 0:
        labels = torch.randint(0, classes, (B,), generator=gen)
        labels[1::3] = classes  # dropped labels
    if config.get("guidance_input", False):
        w_max = config["guidance"]["w_max"]
        scales = torch.exp(torch.rand(B, 1, generator=gen) * math.log1p(w_max))
        scales[0] = 1.0  # w = 1 exactly: g = 0
    if config.get("guidance_interval_input", False):
        intervals = torch.cat([0.5 * torch.rand(B, 1, generator=gen),
                               0.5 + 0.5 * torch.rand(B, 1, generator=gen)], dim=1)
        intervals[r[:, 0] == t[:, 0]] = torch.tensor([0.0, 1.0])
    return x, e, t, r, labels, scales, intervals


def base_config(name, **kw):
    config = {"d": 2, "width": 16, "depth": 2, "activation": "silu", "conditioning": "raw",
              "heads": "u", "beta": 0.0, "v_source": "boundary", "p": 0.0, "c": 1e-3,
              "exact": False, "batch": 12, "name": name}
    config.update(kw)
    return config


# The conditional cases of tests/data (tests/data/README.md lists them), seeds 100, 101, ... in
# this order: append new cases, so that the existing ones are rewritten bit for bit.
GOLDEN_CASES = [
    base_config("cond_mf_target_tanh", d=3, width=12, depth=2, activation="tanh",
                conditioning="fourier2", classes=4, class_dim=3, p=1.0,
                guidance={"kind": "target", "w": 2.0, "kappa": 0.3}, label_dropout=0.1),
    base_config("cond_imf_input_silu", d=2, width=16, depth=3, activation="silu", beta=1.0,
                classes=3, class_dim=4, guidance_input=True,
                guidance={"kind": "input", "w_max": 4.0}, label_dropout=0.2),
    base_config("cond_imfhead_input_exact_gelu", d=2, width=10, depth=2,
                activation="gelu_tanh", conditioning="fourier1", heads="uv", beta=1.0,
                v_source="head", exact=True, p=0.5, c=0.1, classes=5, class_dim=2,
                guidance_input=True, guidance={"kind": "input", "w_max": 2.0},
                label_dropout=0.1),
    base_config("cond_blend_noguide_softplus", d=3, width=8, depth=1, activation="softplus",
                beta=0.5, classes=2, class_dim=2, exact=True),
    base_config("cond_mf_target_interval_silu", d=2, width=12, depth=2, activation="silu",
                conditioning="h-fourier2", classes=3, class_dim=3, p=1.0, c=0.01,
                guidance={"kind": "target", "w": 2.5, "kappa": 0.5},
                guidance_interval=[0.3, 0.7], label_dropout=0.1),
    # iMF's guidance interval as an input, with the official v-head source (imf.py v_cond_fn),
    # p = 1, c = 0.01 and w_max = 7 (sample_cfg_scale's s_max).
    base_config("cond_imf_interval_silu", d=2, width=12, depth=2, activation="silu",
                conditioning="fourier1", heads="uv", beta=1.0, v_source="head", p=1.0, c=0.01,
                classes=3, class_dim=3, guidance_input=True, guidance_interval_input=True,
                guidance={"kind": "input", "w_max": 7.0}, label_dropout=0.1, batch=16),
    # The resmlp trunk (residual blocks with layer norm, c in every block): the interval case
    # above on it, MF's target guidance, and an exact blend whose gradient goes through the JVP
    # of the layer norms (the network seeing h alone, three blocks).
    base_config("cond_resmlp_imf_interval_silu", architecture="resmlp", d=2, width=12, depth=2,
                activation="silu", conditioning="fourier1", heads="uv", beta=1.0,
                v_source="head", p=1.0, c=0.01, classes=3, class_dim=3, guidance_input=True,
                guidance_interval_input=True, guidance={"kind": "input", "w_max": 7.0},
                label_dropout=0.1, batch=16),
    base_config("cond_resmlp_mf_target_tanh", architecture="resmlp", d=3, width=10, depth=1,
                activation="tanh", conditioning="fourier2", classes=4, class_dim=3, p=1.0,
                guidance={"kind": "target", "w": 2.0, "kappa": 0.3}, label_dropout=0.1),
    base_config("cond_resmlp_blend_exact_gelu", architecture="resmlp", d=2, width=8, depth=3,
                activation="gelu_tanh", conditioning="h-raw", beta=0.5, exact=True, p=0.5,
                c=0.1, classes=2, class_dim=2),
]


def write_case(path, config, seed):
    torch.manual_seed(seed)
    model = MeanFlowMLP.from_config(config).double()
    gen = torch.Generator().manual_seed(seed + 1)
    export_case(path, model, config, *random_batch(config, gen))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("out", nargs="?", default="case.safetensors",
                    help="file to write (default case.safetensors), or with --golden a folder")
    ap.add_argument("--golden", action="store_true",
                    help="write the cond_* cases of tests/data into the folder OUT")
    args = ap.parse_args()
    torch.set_default_dtype(torch.float64)
    if args.golden:
        for i, config in enumerate(GOLDEN_CASES):
            path = os.path.join(args.out, config["name"] + ".safetensors")
            write_case(path, config, seed=100 + i)
            print("wrote", path)
        return
    write_case(args.out, GOLDEN_CASES[1], seed=0)
    print(f"wrote {args.out}; check it with: meanflow verify {args.out}")


if __name__ == "__main__":
    main()
