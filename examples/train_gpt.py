#!/usr/bin/env python3
"""Train a small character-level GPT with attn-mlir attention.

The same GPT (pre-norm blocks, learned positions, AdamW), from the same
initial weights on the same batches, is trained once per attention:

  sdpa       torch's scaled_dot_product_attention, causal (the baseline)
  softmax    attn-mlir's library variant `causal` (the same math as sdpa)
  rbf_sinks  `rbf_sink_rows`: causal RBF attention, s = -gamma |q - k|^2, with
             4 learned sink key/value rows per head, initialised to zero
  sigmoid    a DSL variant made here: causal sigmoid attention with the bias
             -log(T) of Ramapuram et al. (2024), T the context length
  softmax1   a DSL variant made here: causal softmax1 (a zero logit, so a
             head can attend to nothing)

Gradients flow through attn-mlir's backward (attn_mlir.torch: a
torch.library custom op whose backward is attn.attention_grad); the sink rows
are nn.Parameters and are learned. The text is generated here,
deterministically: sentences of a small grammar, with facts ("the key of
mira is 4172.") recalled later in the same line ("mira: 4172"), which only
attention can do.

On the GPU (bf16 autocast) it trains a 4-layer model for --steps (300)
steps; without one it trains a tiny 2-layer model on the CPU path (f32, the
compiled CPU modules of attn_mlir.cpu_module) for 80 steps. It writes a PNG
of the loss curves (--png, default build/examples/train_gpt.png), prints
tokens/s and the first-call compile times per configuration, and exits
non-zero if any loss is NaN or the final validation loss of `softmax` is off
from `sdpa`'s by more than the noise (0.02 + 3 times the difference between
two sdpa runs from different seeds).

    examples/train_gpt.py [--device=auto|cpu|cuda] [--steps N]
                          [--configs sdpa,softmax,...] [--png PATH]
                          [--torch-compile BACKEND] [--compile-only]

--compile-only compiles the GPU bundles into $ATTN_MLIR_CACHE (on a machine
with MLIR, for a GPU machine that shares the cache folder) and trains
nothing. Needs torch and matplotlib (python/requirements-examples.txt).
"""

from __future__ import annotations

import argparse
import math
import os
import random
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "python"))

try:
    import torch
    import torch.nn as nn
    import torch.nn.functional as F
except ImportError:
    sys.exit("train_gpt.py needs torch: pip install -r "
             "python/requirements-examples.txt")

from attn_mlir import compiler, dsl  # noqa: E402
from attn_mlir import torch as attn  # noqa: E402

CONFIGS = ("sdpa", "softmax", "rbf_sinks", "sigmoid", "softmax1")
SINK_ROWS = 4


# ---------------------------------------------------------------------------
# The text
# ---------------------------------------------------------------------------

_NAMES = ("mira", "oskar", "lena", "tomas", "ida", "arne", "sofia", "jonas",
          "klara", "emil", "nora", "felix", "hanna", "leo", "alma", "otto")
_ADJ = ("small", "quiet", "red", "old", "bright", "heavy", "narrow", "warm",
        "early", "empty")
_NOUN = ("compiler", "kernel", "river", "garden", "lamp", "tile", "window",
         "letter", "engine", "harbor", "forest", "table")
_VERB = ("lowers", "finds", "carries", "paints", "opens", "counts", "keeps",
         "watches", "folds", "moves")
_PREP = ("near", "under", "behind", "across", "inside", "beside")


def make_text(n_chars: int, seed: int = 1234) -> str:
    """Deterministic text of about ``n_chars`` characters: lines of grammar
    sentences that state facts and recall them."""
    r = random.Random(seed)
    lines, size = [], 0
    while size < n_chars:
        facts = {}
        parts = []
        for _ in range(r.randint(2, 4)):
            if r.random() < 0.5:
                name = r.choice(_NAMES)
                facts[name] = str(r.randint(1000, 9999))
                parts.append(f"the key of {name} is {facts[name]}.")
            else:
                parts.append(f"the {r.choice(_ADJ)} {r.choice(_NOUN)} "
                             f"{r.choice(_VERB)} the {r.choice(_NOUN)} "
                             f"{r.choice(_PREP)} the {r.choice(_NOUN)}.")
        for name in r.sample(sorted(facts), len(facts)):
            parts.append(f"{name}: {facts[name]}.")
        line = " ".join(parts)
        lines.append(line)
        size += len(line) + 1
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------------------
# The model
# ---------------------------------------------------------------------------

_VARIANTS = {}


def variant(config: str, block: int):
    """The attn-mlir variant of a configuration (None for sdpa)."""
    if config == "sdpa":
        return None
    if (config, block) not in _VARIANTS:
        _VARIANTS[config, block] = {
            "softmax": lambda: "causal",
            "rbf_sinks": lambda: "rbf_sink_rows",
            "sigmoid": lambda: dsl.Variant(
                "sigmoid_causal", normalization="sigmoid",
                bias=-math.log(block), masks=[dsl.causal()]),
            "softmax1": lambda: dsl.Variant(
                "softmax1_causal", normalization="softmax1",
                masks=[dsl.causal()]),
        }[config]()
    return _VARIANTS[config, block]


class Attention(nn.Module):
    def __init__(self, width: int, heads: int, block: int, config: str):
        super().__init__()
        self.heads, self.config = heads, config
        self.variant = variant(config, block)
        self.qkv = nn.Linear(width, 3 * width, bias=False)
        self.proj = nn.Linear(width, width, bias=False)
        if config == "rbf_sinks":
            d = width // heads
            self.sink_key = nn.Parameter(torch.zeros(heads, SINK_ROWS, d))
            self.sink_value = nn.Parameter(torch.zeros(heads, SINK_ROWS, d))

    def forward(self, x):
        B, T, C = x.shape
        q, k, v = self.qkv(x).view(B, T, 3, self.heads, C // self.heads) \
            .permute(2, 0, 3, 1, 4).unbind(0)            # [B, H, T, D] each
        if self.variant is None:
            y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        else:
            rows = ((self.sink_key.to(q.dtype), self.sink_value.to(q.dtype))
                    if self.config == "rbf_sinks" else None)
            y = attn.attention(q, k, v, variant=self.variant, sink_rows=rows)
        return self.proj(y.transpose(1, 2).reshape(B, T, C))


class Block(nn.Module):
    def __init__(self, width, heads, block, config):
        super().__init__()
        self.ln1, self.ln2 = nn.LayerNorm(width), nn.LayerNorm(width)
        self.attn = Attention(width, heads, block, config)
        self.mlp = nn.Sequential(nn.Linear(width, 4 * width), nn.GELU(),
                                 nn.Linear(4 * width, width))

    def forward(self, x):
        x = x + self.attn(self.ln1(x))
        return x + self.mlp(self.ln2(x))


class GPT(nn.Module):
    def __init__(self, vocab, width, heads, layers, block, config):
        super().__init__()
        self.tok = nn.Embedding(vocab, width)
        self.pos = nn.Embedding(block, width)
        self.blocks = nn.ModuleList(Block(width, heads, block, config)
                                    for _ in range(layers))
        self.ln = nn.LayerNorm(width)
        self.head = nn.Linear(width, vocab, bias=False)

    def forward(self, idx, targets):
        x = self.tok(idx) + self.pos(torch.arange(idx.shape[1],
                                                  device=idx.device))
        for b in self.blocks:
            x = b(x)
        logits = self.head(self.ln(x))
        return F.cross_entropy(logits.flatten(0, 1).float(),
                               targets.flatten())


# ---------------------------------------------------------------------------
# Training
# ---------------------------------------------------------------------------

def sizes(gpu: bool, steps) -> dict:
    if gpu:
        return dict(layers=4, heads=4, width=256, block=256, batch=32,
                    steps=steps or 300, lr=1e-3, chars=300_000, eval_batches=8)
    return dict(layers=2, heads=2, width=32, block=32, batch=8,
                steps=steps or 80, lr=3e-3, chars=100_000, eval_batches=4)


def batches(data, n: int, batch: int, block: int, seed: int, device):
    g = torch.Generator().manual_seed(seed)
    for _ in range(n):
        i = torch.randint(len(data) - block - 1, (batch,), generator=g)
        x = torch.stack([data[j:j + block] for j in i])
        y = torch.stack([data[j + 1:j + block + 1] for j in i])
        yield x.to(device), y.to(device)


def train(config: str, s: dict, train_data, val_data, vocab: int, device,
          seed: int = 0, backend=None) -> dict:
    torch.manual_seed(seed)
    model = GPT(vocab, s["width"], s["heads"], s["layers"], s["block"],
                config).to(device)
    params = list(model.parameters())
    if backend:
        model = torch.compile(model, backend=backend, fullgraph=True)
    opt = torch.optim.AdamW(params, lr=s["lr"],
                            weight_decay=0.0, betas=(0.9, 0.95))
    gpu = device.type == "cuda"
    amp = torch.autocast("cuda", torch.bfloat16) if gpu else \
        torch.autocast("cpu", enabled=False)
    sync = torch.cuda.synchronize if gpu else (lambda: None)
    warmup = max(1, s["steps"] // 15)
    losses, t_first, t_rest, n_rest = [], 0.0, 0.0, 0
    for step, (x, y) in enumerate(batches(train_data, s["steps"], s["batch"],
                                          s["block"], seed + 1, device)):
        for group in opt.param_groups:
            group["lr"] = s["lr"] * min(1.0, (step + 1) / warmup)
        sync()
        t0 = time.perf_counter()
        with amp:
            loss = model(x, y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        sync()
        dt = time.perf_counter() - t0
        if step < 3:                     # compiling, warming up
            t_first += dt
        else:
            t_rest += dt
            n_rest += 1
        losses.append(loss.item())
    model.eval()
    with torch.no_grad(), amp:
        val = [model(x, y).item() for x, y in batches(
            val_data, s["eval_batches"], s["batch"], s["block"], 999, device)]
    out = {"losses": losses, "val": sum(val) / len(val),
           "tokens_per_s": n_rest * s["batch"] * s["block"] / max(t_rest,
                                                                  1e-9),
           "first_steps_s": t_first}
    if config == "rbf_sinks":
        a = getattr(model, "_orig_mod", model).blocks[0].attn
        out["sink_norm"] = float(a.sink_key.detach().norm()
                                 + a.sink_value.detach().norm())
    return out


def compile_bundles(s: dict, configs) -> None:
    """The GPU forward and backward bundles of the configurations, into the
    cache."""
    d = s["width"] // s["heads"]
    for config in configs:
        var = variant(config, s["block"])
        if var is None:
            continue
        for backward in (False, True):
            path = compiler.compile(var, head_dim=d, dtype="bf16",
                                    sink_rows=config == "rbf_sinks",
                                    backward=backward)
            print(f"compiled {config}{' (backward)' if backward else ''} "
                  f"-> {path}")


def plot(results: dict, path: Path, title: str) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(8, 5))
    for config, r in results.items():
        ax.plot(r["losses"], label=f"{config} (val {r['val']:.3f})",
                linewidth=1)
    ax.set_xlabel("step")
    ax.set_ylabel("training loss (nats / char)")
    ax.set_title(title)
    ax.legend()
    ax.grid(alpha=0.3)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120, bbox_inches="tight")
    print(f"wrote {path}")


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--device", default=os.environ.get(
        "ATTN_EXAMPLES_DEVICE", "auto"), choices=("auto", "cpu", "cuda"))
    p.add_argument("--steps", type=int, default=None)
    p.add_argument("--configs", default=",".join(CONFIGS))
    p.add_argument("--png", type=Path,
                   default=ROOT / "build" / "examples" / "train_gpt.png")
    p.add_argument("--compile-only", action="store_true")
    p.add_argument("--torch-compile", metavar="BACKEND", default=None,
                   help="train torch.compile(model, backend=BACKEND, "
                        "fullgraph=True), e.g. inductor or aot_eager")
    p.add_argument("--quiet", action="store_true")
    args = p.parse_args()
    configs = [c for c in args.configs.split(",") if c]
    unknown = set(configs) - set(CONFIGS)
    if unknown:
        p.error(f"unknown configurations {sorted(unknown)}; the "
                f"configurations are {', '.join(CONFIGS)}")
    gpu = args.compile_only or args.device == "cuda" or (
        args.device == "auto" and torch.cuda.is_available())
    s = sizes(gpu, args.steps)
    if args.compile_only:
        compile_bundles(s, configs)
        return 0
    device = torch.device("cuda" if gpu else "cpu")
    if not gpu:
        torch.set_num_threads(min(4, os.cpu_count() or 1))
    text = make_text(s["chars"])
    chars = sorted(set(text))
    data = torch.tensor([chars.index(c) for c in text], dtype=torch.long)
    cut = int(0.9 * len(data))
    print(f"text: {len(text)} characters, {len(chars)} distinct; model "
          f"{s['layers']} layers, {s['heads']} heads of {s['width'] // s['heads']}"
          f", context {s['block']}, batch {s['batch']}, {s['steps']} steps on "
          f"{'the GPU (bf16 autocast)' if gpu else 'the CPU (f32)'}")
    results, failed = {}, []
    for config in configs:
        t0 = time.perf_counter()
        try:
            results[config] = r = train(config, s, data[:cut], data[cut:],
                                        len(chars), device,
                                        backend=args.torch_compile)
        except compiler.CompileError as e:
            print(f"FAIL {config}: {e}")
            failed.append(config)
            continue
        extra = (f", |sink rows| {r['sink_norm']:.3f} (zero at the start)"
                 if "sink_norm" in r else "")
        print(f"{config:10s} final loss {r['losses'][-1]:.4f}  val "
              f"{r['val']:.4f}  {r['tokens_per_s']:>10.0f} tokens/s  first "
              f"3 steps {r['first_steps_s']:.2f} s  total "
              f"{time.perf_counter() - t0:.1f} s{extra}")
    if not args.quiet:
        for st in attn.compile_stats():
            print(f"  first call: {st['op']:8s} {st['variant']:16s} "
                  f"{st['device']} {st['first_call_s']:.3f} s")
    plot(results, args.png, f"char-level GPT, {'GPU' if gpu else 'CPU'}")

    for c, r in results.items():
        if not all(math.isfinite(x) for x in r["losses"] + [r["val"]]):
            print(f"FAIL {c}: a loss is NaN or infinite")
            failed.append(c)
    if "sdpa" in results and "softmax" in results:
        # The noise: sdpa again from another seed (weights and batches).
        other = train("sdpa", s, data[:cut], data[cut:], len(chars), device,
                      seed=1, backend=args.torch_compile)
        seed_noise = abs(other["val"] - results["sdpa"]["val"])
        tol = 0.02 + 3 * seed_noise
        diff = abs(results["softmax"]["val"] - results["sdpa"]["val"])
        ok = diff <= tol and math.isfinite(other["val"])
        print(f"{'ok  ' if ok else 'FAIL'} softmax vs sdpa: |val loss "
              f"difference| {diff:.4f}, bound 0.02 + 3 x {seed_noise:.4f} "
              f"(sdpa from another seed) = {tol:.4f}")
        if not ok:
            failed.append("softmax vs sdpa")
    if failed:
        print(f"FAILED: {', '.join(failed)}")
        return 1
    print("all checks passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
