"""The MeanFlow training step of `meanflow bench`, in JAX (jit), for a side-by-side comparison.

Same definition as src/bench/step.rs: u = MLP(concat(z, t, t - r)) with silu (c1-c4), or
meanflow's `resmlp` trunk (r1, r2: an input layer, residual blocks
a + silu([LN(a) | t, t - r] W1^T + b1) W2^T + b2, LN before the head; src/flow/model/mod.rs, LN
written from mean, variance and sqrt as in torch_step.py), PyTorch-default init, f32; x from
eight Gaussians (d = 2: centres on the circle of radius 2, std 0.1) or 0.5 N(0, I) (d > 2);
e ~ N(0, I); t, r uniform and ordered, r = t on 75% of the rows; mf (tangent e - x) or imf
(tangent sg(u(z, t, t))) with plain mean squared error; Adam with lr 1e-3. The whole step, batch
sampling included, is one jitted function.

Usage: python jax_step.py --config c2 --loss mf [--warmup 20 --repeats 100]
Threads: run under `taskset -c 0` for one core (XLA sizes its pools from the affinity mask).
Prints one JSON line per measurement, like `meanflow bench`, with the peak RSS of the process.
"""
import argparse
import json
import math
import resource
import time

import jax
import jax.numpy as jnp

# name: (d, width, depth, batch, architecture); depth = hidden layers (mlp) or residual blocks (resmlp).
CONFIGS = {
    "c1": (2, 128, 3, 256, "mlp"),
    "c2": (2, 256, 4, 1024, "mlp"),
    "c3": (2, 512, 4, 2048, "mlp"),
    "c4": (64, 512, 4, 1024, "mlp"),
    "r1": (64, 256, 3, 256, "resmlp"),
    "r2": (2, 256, 3, 1024, "resmlp"),
}
DEFAULT_COUNTS = {"c1": (200, 1000), "c2": (20, 100), "c3": (5, 30), "c4": (5, 30), "r1": (20, 100), "r2": (5, 30)}


def layer_shapes(d, width, depth, architecture):
    """(in, out) of every linear layer in meanflow's order: the trunk's (`mlp`: trunk.0 ..;
    `resmlp`: input, then fc1 [width + 2 -> width] and fc2 of each block), then the u-head."""
    if architecture == "resmlp":
        trunk = [(d + 2, width)] + [(width + 2, width), (width, width)] * depth
    else:
        sizes = [d + 2] + [width] * depth
        trunk = list(zip(sizes[:-1], sizes[1:]))
    return trunk + [(width, d)]


def init_params(key, d, width, depth, architecture="mlp"):
    """PyTorch nn.Linear default: weight and bias ~ U(-1/sqrt(in), 1/sqrt(in))."""
    params = []
    for fan_in, fan_out in layer_shapes(d, width, depth, architecture):
        key, kw, kb = jax.random.split(key, 3)
        bound = 1.0 / math.sqrt(fan_in)
        w = jax.random.uniform(kw, (fan_out, fan_in), jnp.float32, -bound, bound)
        b = jax.random.uniform(kb, (fan_out,), jnp.float32, -bound, bound)
        params.append((w, b))
    return params


def u_fn(params, z, r, t):
    h = jnp.concatenate([z, t, t - r], axis=1)
    for w, b in params[:-1]:
        h = jax.nn.silu(h @ w.T + b)
    w, b = params[-1]
    return h @ w.T + b


def layer_norm(x, eps=1e-5):
    """(x - mean) / sqrt(var + eps) per row, no gain or bias: meanflow's LN (biased variance)."""
    mean = jnp.mean(x, axis=1, keepdims=True)
    centred = x - mean
    var = jnp.mean(centred * centred, axis=1, keepdims=True)
    return centred / jnp.sqrt(var + eps)


def u_fn_residual(params, z, r, t):
    """meanflow's `resmlp`: a_0 = [z | c] W_in^T + b_in, a += silu([LN(a) | c] W1^T + b1) W2^T + b2
    per block, u = LN(a) U^T + U_b, with c = [t, t - r]."""
    c = jnp.concatenate([t, t - r], axis=1)
    w, b = params[0]
    a = jnp.concatenate([z, c], axis=1) @ w.T + b
    for (w1, b1), (w2, b2) in zip(params[1:-1:2], params[2:-1:2]):
        hidden = jax.nn.silu(jnp.concatenate([layer_norm(a), c], axis=1) @ w1.T + b1)
        a = a + (hidden @ w2.T + b2)
    w, b = params[-1]
    return layer_norm(a) @ w.T + b


def make_step(d, batch, loss_kind, lr=1e-3, b1=0.9, b2=0.999, eps=1e-8, u_fn=u_fn):
    n_equal = round(0.75 * batch)

    def sample(key):
        kx, kn, ke, kt = jax.random.split(key, 4)
        if d == 2:
            k = jax.random.randint(kx, (batch,), 0, 8)
            angle = k.astype(jnp.float32) * (math.pi / 4)
            centres = 2.0 * jnp.stack([jnp.cos(angle), jnp.sin(angle)], axis=1)
            x = centres + 0.1 * jax.random.normal(kn, (batch, 2))
        else:
            x = 0.5 * jax.random.normal(kn, (batch, d))
        e = jax.random.normal(ke, (batch, d))
        s = jax.random.uniform(kt, (batch, 2))
        t = jnp.max(s, axis=1, keepdims=True)
        r = jnp.min(s, axis=1, keepdims=True)
        equal = (jnp.arange(batch) >= batch - n_equal)[:, None]
        r = jnp.where(equal, t, r)
        return x, e, t, r

    def loss_fn(params, x, e, t, r):
        z = (1 - t) * x + t * e
        v = e - x
        if loss_kind == "imf":
            tangent = jax.lax.stop_gradient(u_fn(params, z, t, t))
        else:
            tangent = v
        u, dudt = jax.jvp(lambda z_, r_, t_: u_fn(params, z_, r_, t_), (z, r, t),
                          (tangent, jnp.zeros_like(r), jnp.ones_like(t)))
        delta = u + (t - r) * jax.lax.stop_gradient(dudt) - v
        return jnp.mean(jnp.sum(delta ** 2, axis=1))

    @jax.jit
    def step(params, m, v, count, key):
        key, sub = jax.random.split(key)
        x, e, t, r = sample(sub)
        loss, grads = jax.value_and_grad(loss_fn)(params, x, e, t, r)
        count = count + 1
        m = jax.tree_util.tree_map(lambda m_, g: b1 * m_ + (1 - b1) * g, m, grads)
        v = jax.tree_util.tree_map(lambda v_, g: b2 * v_ + (1 - b2) * g * g, v, grads)
        c1 = 1 - b1 ** count
        c2 = 1 - b2 ** count
        params = jax.tree_util.tree_map(
            lambda p, m_, v_: p - lr * (m_ / c1) / (jnp.sqrt(v_ / c2) + eps), params, m, v)
        return params, m, v, count, key, loss

    return step


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--config", required=True, choices=CONFIGS)
    ap.add_argument("--loss", required=True, choices=["mf", "imf"])
    ap.add_argument("--threads", type=int, default=1, help="label only; pin with taskset")
    ap.add_argument("--warmup", type=int)
    ap.add_argument("--repeats", type=int)
    a = ap.parse_args()
    d, width, depth, batch, architecture = CONFIGS[a.config]
    warmup, repeats = DEFAULT_COUNTS[a.config]
    warmup = a.warmup if a.warmup is not None else warmup
    repeats = a.repeats if a.repeats is not None else repeats
    key = jax.random.PRNGKey(0)
    params = init_params(key, d, width, depth, architecture)
    zeros = jax.tree_util.tree_map(jnp.zeros_like, params)
    m, v, count = zeros, zeros, jnp.zeros((), jnp.float32)
    step = make_step(d, batch, a.loss, u_fn=u_fn_residual if architecture == "resmlp" else u_fn)
    for _ in range(max(warmup, 2)):
        params, m, v, count, key, loss = step(params, m, v, count, key)
    loss.block_until_ready()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        params, m, v, count, key, loss = step(params, m, v, count, key)
        loss.block_until_ready()
        times.append((time.perf_counter() - start) * 1e3)
    times.sort()
    med = times[len(times) // 2]
    print(json.dumps({
        "peer": "jax", "version": jax.__version__, "config": a.config,
        "architecture": architecture, "loss": a.loss, "threads": a.threads, "median_ms": round(med, 4),
        "min_ms": round(times[0], 4), "max_ms": round(times[-1], 4), "samples_per_s": round(batch / (med / 1e3), 1),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "final_loss": float(loss),
    }))


if __name__ == "__main__":
    main()
