"""Peers timed on this machine, in the same run as pcmem's benches (ci/bench-peers.sh).

numpy's sgemm at the shapes of target/bench-peers/sgemm.json, and one PCX 0.6.3 (JAX jit)
training iteration of a generative PCN (T = 50 inference steps, then one weight update, full
batch, f32) at the sizes of target/bench-peers/train_iteration.json. Then one Markdown table
of pcmem against the peers, with ratios, to stdout and to the file given as argument.

With `--gpu DIR` (on a GPU machine, after `benches/gpu_iteration.rs` wrote DIR/gpu_iteration.json)
it times PCX on the same GPU instead, at the same five sizes in f32 (XLA matmul precision
"highest") and TF32 ("tensorfloat32"), and writes the GPU table.
"""

import json
import os
import sys
import time

import numpy as np

OUT = os.path.join(os.path.dirname(__file__), "..", "target", "bench-peers")
T = 50


def best_of(f, repeats):
    f()  # warm-up (and, for JAX, compilation)
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        f()
        times.append(time.perf_counter() - t)
    return float(np.median(times))


def numpy_sgemm(shapes):
    rows = []
    for s in shapes:
        m, k, n = s["m"], s["k"], s["n"]
        a = np.random.default_rng(0).random((m, k), dtype=np.float32)
        b = np.random.default_rng(1).random((k, n), dtype=np.float32)
        sec = best_of(lambda: a @ b, 10 if m * k * n < 4e9 else 3)
        rows.append(dict(s, numpy_seconds=sec, numpy_gflops=2 * m * k * n / sec / 1e9))
    return rows


def numpy_products(d, n, layers, rows, repeats):
    """The matrix products of one direct-kernel iteration (target/bench-peers' products_only
    row), done by numpy: per step and layer the prediction from the transposed weights and the
    bottom-up product, T + 1 times, then one weight gradient per layer."""
    dims = [d] + [n] * layers
    rng = np.random.default_rng(0)
    w = [rng.random((dims[l - 1], dims[l]), dtype=np.float32) for l in range(1, len(dims))]
    wt = [np.ascontiguousarray(m.T) for m in w]
    xs = [rng.random((rows, dl), dtype=np.float32) for dl in dims]
    outs = [np.empty((rows, dl), dtype=np.float32) for dl in dims]
    grads = [np.empty(m.shape, dtype=np.float32) for m in w]

    def once():
        for _ in range(T + 1):
            for l in range(1, len(dims)):
                np.matmul(xs[l], wt[l - 1], out=outs[l - 1])
                np.matmul(xs[l - 1], w[l - 1], out=outs[l])
        for l in range(1, len(dims)):
            np.matmul(xs[l - 1].T, xs[l], out=grads[l - 1])

    return best_of(once, repeats)


def pcx_iteration(d, n, layers, rows, repeats):
    import jax
    import jax.numpy as jnp
    import optax
    import pcx as px
    import pcx.functional as pxf
    import pcx.nn as pxnn
    import pcx.predictive_coding as pxc
    import pcx.utils as pxu

    class Generative(pxc.EnergyModule):
        """Memory vode -> (Linear, ReLU, vode) x (L - 1) -> Linear -> sensory vode (clamped)."""

        def __init__(self):
            super().__init__()
            self.layers = [pxnn.Linear(n, n) for _ in range(layers - 1)] + [pxnn.Linear(n, d)]
            self.vodes = [
                pxc.Vode(
                    energy_fn=None,
                    ruleset={pxc.STATUS.INIT: ("h, u <- u:to_zero",)},
                    tforms={"to_zero": lambda node, k, v, rkg: jnp.zeros((n,))},
                )
            ] + [
                pxc.Vode(
                    ruleset={pxc.STATUS.INIT: ("h, u <- u:to_zero",)},
                    tforms={"to_zero": lambda node, k, v, rkg: jnp.zeros_like(v)},
                )
                for _ in range(layers - 1)
            ] + [pxc.Vode()]
            self.vodes[-1].h.frozen = True

        def __call__(self, y):
            x = self.vodes[0](jnp.empty(()))
            for i, layer in enumerate(self.layers):
                x = layer(jax.nn.relu(x))
                x = self.vodes[i + 1](x)
            if y is not None:
                self.vodes[-1].set("h", y.flatten())
            return self.vodes[-1].get("u")

    @pxf.vmap(pxu.M(pxc.VodeParam | pxc.VodeParam.Cache).to((None, 0)), in_axes=0, out_axes=0)
    def forward(x, *, model):
        return model(x)

    @pxf.vmap(
        pxu.M(pxc.VodeParam | pxc.VodeParam.Cache).to((None, 0)),
        out_axes=(None, 0),
        axis_name="batch",
    )
    def energy(*, model):
        y_ = model(None)
        return jax.lax.psum(model.energy(), "batch"), y_

    @pxf.jit()
    def train_step(x, *, model, optim_w, optim_h):
        model.train()
        inference = pxf.value_and_grad(
            pxu.M_hasnot(pxc.VodeParam, frozen=True).to([False, True]), has_aux=True
        )(energy)
        learning = pxf.value_and_grad(pxu.M_hasnot(pxnn.LayerParam).to([False, True]), has_aux=True)(
            energy
        )
        with pxu.step(model, pxc.STATUS.INIT, clear_params=pxc.VodeParam.Cache):
            forward(x, model=model)
        optim_h.init(pxu.M_hasnot(pxc.VodeParam, frozen=True)(model))
        for _ in range(T):
            with pxu.step(model, clear_params=pxc.VodeParam.Cache):
                _, g = inference(model=model)
            optim_h.step(model, g["model"])
        optim_h.clear()
        with pxu.step(model, clear_params=pxc.VodeParam.Cache):
            _, g = learning(model=model)
        optim_w.step(model, g["model"])

    model = Generative()
    x = jnp.asarray(np.random.default_rng(0).random((rows, d), dtype=np.float32))
    with pxu.step(model, pxc.STATUS.INIT, clear_params=pxc.VodeParam.Cache):
        forward(x, model=model)
    optim_h = pxu.Optim(lambda: optax.sgd(0.03))
    optim_w = pxu.Optim(lambda: optax.sgd(1e-6), pxu.M(pxnn.LayerParam)(model))

    def once():
        train_step(x, model=model, optim_w=optim_w, optim_h=optim_h)
        jax.block_until_ready(model.layers[-1].nn.weight.get())

    return best_of(once, repeats)


def gpu_main(src, target):
    """PCX on the GPU beside pcmem's gpu_iteration.json, same device, same run."""
    import jax

    it = json.load(open(os.path.join(src, "gpu_iteration.json")))
    lines = []
    out = lines.append
    out(f"GPU: {jax.devices()[0].device_kind}; JAX {jax.__version__}; T = {it['steps']}.\n")
    out(
        f"Same-run {it['matmul_size']}^2 matmul (candle, cuBLAS): f32 {it['matmul_f32_gflops']:.0f} "
        f"GFLOP/s, TF32 {it['matmul_tf32_gflops']:.0f} GFLOP/s.\n"
    )
    skip_d = int(os.environ.get("PCX_MAX_D", "0")) or None
    if skip_d:
        out(
            f"PCX is not timed at d > {skip_d} (PCX_MAX_D): at the ImageNet size it did not finish "
            "within 200 s, compilation included, on the H200 before, and device time is short.\n"
        )
    out(
        "| d, n, L, N | precision | pcmem kernel | pcmem s | GFLOP/s (formula) "
        "| ratio to same-precision matmul | PCX s | speed-up vs PCX |"
    )
    out("|---|---|---|---|---|---|---|---|")
    pcx = {}  # PCX once per size and precision, whatever the number of pcmem kernels
    for r in it["rows"]:
        key = (r["d"], r["n"], r["layers"], r["rows"])
        if (key, r["precision"]) not in pcx:
            if skip_d and r["d"] > skip_d:
                pcx[key, r["precision"]] = None
            else:
                jax.config.update(
                    "jax_default_matmul_precision",
                    "tensorfloat32" if r["precision"] == "tf32" else "highest",
                )
                try:
                    pcx[key, r["precision"]] = pcx_iteration(*key, repeats=5)
                except Exception as e:  # a peer that fails is reported, not hidden
                    pcx[key, r["precision"]] = None
                    print(f"PCX failed at {key} ({r['precision']}): {type(e).__name__}: {e}", file=sys.stderr)
        p = pcx[key, r["precision"]]
        ptxt = f"{p:.4f}" if p else ("not timed" if skip_d and r["d"] > skip_d else "failed")
        sp = f"{p / r['seconds']:.2f}" if p else "-"
        out(
            f"| {r['d']}, {r['n']}, {r['layers']}, {r['rows']} | {r['precision']} | {r.get('kernel', 'candle')} "
            f"| {r['seconds']:.4f} | {r['gflops_formula']:.0f} | {r['ratio_to_matmul']:.2f} | {ptxt} | {sp} |"
        )
        print(lines[-1], flush=True)
        if target:  # written after every row: a run cut short keeps what it measured
            with open(target, "w") as f:
                f.write("\n".join(lines) + "\n")
    text = "\n".join(lines) + "\n"
    print(text)
    if target:
        with open(target, "w") as f:
            f.write(text)


def main():
    if len(sys.argv) > 1 and sys.argv[1] == "--gpu":
        gpu_main(sys.argv[2], sys.argv[3] if len(sys.argv) > 3 else None)
        return
    target = sys.argv[1] if len(sys.argv) > 1 else None
    sg = json.load(open(os.path.join(OUT, "sgemm.json")))
    it = json.load(open(os.path.join(OUT, "train_iteration.json")))
    lines = []
    out = lines.append
    out(f"CPU with AVX-512: {sg['avx512']}; {os.cpu_count()} logical cores; numpy {np.__version__}.\n")
    out("### f32 matrix products (pcmem: `gemm` as the fused kernel calls it)\n")
    out("| shape (m x k x n) | pcmem s | pcmem GFLOP/s | numpy s | numpy GFLOP/s | pcmem / numpy rate |")
    out("|---|---|---|---|---|---|")
    for r in numpy_sgemm(sg["shapes"]):
        out(
            f"| {r['label']}: {r['m']} x {r['k']} x {r['n']} | {r['seconds']:.5f} | {r['gflops']:.1f} "
            f"| {r['numpy_seconds']:.5f} | {r['numpy_gflops']:.1f} | {r['gflops'] / r['numpy_gflops']:.2f} |"
        )
    try:
        import pcx  # noqa: F401

        have_pcx = True
    except ImportError:
        have_pcx = False
    out("\n### One training iteration (T = 50 inference steps + one weight update, full batch, f32)\n")
    out(f"Same-run 2048^3 matmul (candle): {it['matmul_gflops']:.1f} GFLOP/s. ")
    out("`products_only`: the direct kernel's matrix products alone, as bare `gemm` calls; ")
    out("`numpy products`: the same products by numpy. *Of best products* divides the faster ")
    out("of the two by the row's time (1.00 = nothing beyond the fastest same-run products).\n")
    out("| d, n, L, N | pcmem kernel | pcmem s | GFLOP/s (formula) | ratio to matmul | of best products | PCX s | speed-up vs PCX |")
    out("|---|---|---|---|---|---|---|---|")
    pcx_times = {}
    best_products = {}
    for r in it["rows"]:
        key = (r["d"], r["n"], r["layers"], r["rows"])
        if key not in best_products:
            deep = r["d"] * r["n"] * r["rows"] > 1e9
            npp = numpy_products(*key, repeats=2 if deep else 7)
            ours = [x["seconds"] for x in it["rows"] if x["kernel"] == "products_only"
                    and (x["d"], x["n"], x["layers"], x["rows"]) == key]
            best_products[key] = min([npp] + ours)
            flops = r["gflops_formula"] * r["seconds"]
            out(f"| {r['d']}, {r['n']}, {r['layers']}, {r['rows']} | numpy products | {npp:.4f} "
                f"| {flops / npp:.1f} | {flops / npp / it['matmul_gflops']:.2f} "
                f"| {best_products[key] / npp:.2f} | - | - |")
        if have_pcx and key not in pcx_times:
            deep = r["d"] * r["n"] * r["rows"] > 1e9
            try:
                pcx_times[key] = pcx_iteration(*key, repeats=2 if deep else 7)
            except Exception as e:  # a peer that fails is reported, not hidden
                pcx_times[key] = None
                print(f"PCX failed at {key}: {e}", file=sys.stderr)
        p = pcx_times.get(key) if r["kernel"] != "products_only" else None
        ptxt = f"{p:.4f}" if p else "-"
        sp = f"{p / r['seconds']:.2f}" if p else "-"
        of_best = best_products[key] / r["seconds"]
        out(
            f"| {r['d']}, {r['n']}, {r['layers']}, {r['rows']} | {r['kernel']} | {r['seconds']:.4f} "
            f"| {r['gflops_formula']:.1f} | {r['ratio_to_matmul']:.2f} | {of_best:.2f} | {ptxt} | {sp} |"
        )
    text = "\n".join(lines) + "\n"
    print(text)
    if target:
        with open(target, "w") as f:
            f.write(text)


if __name__ == "__main__":
    main()
