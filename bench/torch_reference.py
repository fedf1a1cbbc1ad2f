#!/usr/bin/python3
"""PyTorch reference side of lemer's engine benchmark (fp32, CPU).

Run it with Debian's Python, which is where Debian's python3-torch lives:

    OMP_WAIT_POLICY=PASSIVE /usr/bin/python3 bench/torch_reference.py --batch 4

`python3` on PATH may be a pyenv Python without torch; callers should use
/usr/bin/python3 when it exists, else `python3`. Setup:

    apt-get install -y python3-torch libopenblas0

OMP_WAIT_POLICY must be in the environment before torch is imported (OpenMP reads
it once, at load). If it is missing, the script sets it to PASSIVE and re-executes
itself, so a bare call still measures under the documented conditions; the value
in effect is reported as `omp_wait_policy`.

glibc malloc is left at its defaults unless MALLOC_* variables are set by the caller
or --tuned-malloc is given (which sets MALLOC_MMAP_THRESHOLD_ / MALLOC_TRIM_THRESHOLD_
and re-executes). On this VM a fresh page costs ~10 us to fault in, and with default
malloc every buffer over 32 MB (e.g. the conv's 78 MB activations) is a fresh mmap on
every run: conv times differ by >10x between the two settings. Compare the two
engines only under the same setting; the settings in effect are in `malloc_env`.

Measures, each as 3 warm-up runs then N timed runs (time.perf_counter):
  layer_forward  one BERT-base post-LN encoder layer, forward under no_grad
  layer_train    same layer: zero_grad(set_to_none) + forward + loss + backward + Adam
  conv_forward   wav2vec2 feature extractor layer 0: Conv1d(1,512,10,5,no bias)
                 + GroupNorm(512,512) + exact GELU, input 4 x 48000, no_grad
  conv_train     same: zero_grad + forward + mean(output) + backward + Adam

Prints ONE JSON object on stdout; progress goes to stderr.
"""

import os
import sys

# Both settings are read once at process start, so they are applied by re-executing.
TUNED_MALLOC = {"MALLOC_MMAP_THRESHOLD_": "1073741824", "MALLOC_TRIM_THRESHOLD_": "4294967296"}
_reexec = False
if "OMP_WAIT_POLICY" not in os.environ:
    os.environ["OMP_WAIT_POLICY"] = "PASSIVE"
    _reexec = True
if "--tuned-malloc" in sys.argv and any(k not in os.environ for k in TUNED_MALLOC):
    for _k, _v in TUNED_MALLOC.items():
        os.environ.setdefault(_k, _v)
    _reexec = True
if _reexec:
    os.execv(sys.executable, [sys.executable] + sys.argv)

import argparse  # noqa: E402
import ctypes  # noqa: E402
import gc  # noqa: E402
import json  # noqa: E402
import math  # noqa: E402
import re  # noqa: E402
import resource  # noqa: E402
import statistics  # noqa: E402
import time  # noqa: E402

import torch  # noqa: E402
import torch.nn as nn  # noqa: E402

THREADS = 2
WARMUP = 3
MIN_RUNS = 5  # timed runs always done, even past --max-seconds


def log(msg):
    print(msg, file=sys.stderr, flush=True)


# ---------------------------------------------------------------- memory

def _status_kb(field):
    try:
        with open("/proc/self/status") as f:
            m = re.search(rf"^{field}:\s+(\d+)\s+kB", f.read(), re.M)
        return int(m.group(1)) if m else None
    except OSError:
        return None


def rss_mb():
    kb = _status_kb("VmRSS")
    return None if kb is None else kb / 1024


_PEAK_SEEN = [0.0]  # process peak before any reset (resetting VmHWM also resets ru_maxrss)


def reset_peak():
    """Reset the kernel's RSS high-water mark (VmHWM); False where not allowed."""
    _PEAK_SEEN[0] = max(_PEAK_SEEN[0], maxrss_mb())
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def hwm_mb():
    kb = _status_kb("VmHWM")
    return None if kb is None else kb / 1024


def maxrss_mb():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: kB


def process_peak_mb():
    """Max RSS of the whole process, from getrusage, across the per-measurement resets."""
    return max(_PEAK_SEEN[0], maxrss_mb())


# ---------------------------------------------------------------- models

class EncoderLayer(nn.Module):
    """BERT post-LN encoder layer, written out op by op (as the TypeScript side builds it).

    x: [B, S, H]; mask: additive [B, 1, 1, S] (0 where valid, -10000 where padded).
    scores = (q @ k^T) / sqrt(head_dim) + mask; softmax; ctx = p @ v;
    h = LN(ctx Wo + bo + x); out = LN(GELU_erf(h W1 + b1) W2 + b2 + h). Dropout off.
    """

    def __init__(self, hidden=768, heads=12, ffn=3072, eps=1e-12):
        super().__init__()
        self.heads = heads
        self.head_dim = hidden // heads
        self.q = nn.Linear(hidden, hidden)
        self.k = nn.Linear(hidden, hidden)
        self.v = nn.Linear(hidden, hidden)
        self.o = nn.Linear(hidden, hidden)
        self.ln1 = nn.LayerNorm(hidden, eps=eps)
        self.ffn_in = nn.Linear(hidden, ffn)
        self.ffn_out = nn.Linear(ffn, hidden)
        self.ln2 = nn.LayerNorm(hidden, eps=eps)
        self.act = nn.GELU()  # approximate='none': exact erf GELU

    def _split(self, t, b, s):
        return t.view(b, s, self.heads, self.head_dim).transpose(1, 2)  # [B, nh, S, hd]

    def forward(self, x, mask):
        b, s, h = x.shape
        q = self._split(self.q(x), b, s)
        k = self._split(self.k(x), b, s)
        v = self._split(self.v(x), b, s)
        scores = torch.matmul(q, k.transpose(-1, -2)) / math.sqrt(self.head_dim)
        probs = torch.softmax(scores + mask, dim=-1)
        ctx = torch.matmul(probs, v).transpose(1, 2).reshape(b, s, h)
        h1 = self.ln1(self.o(ctx) + x)
        return self.ln2(self.ffn_out(self.act(self.ffn_in(h1))) + h1)


class ConvLayer0(nn.Module):
    """wav2vec2 (base, group-norm variant) feature extractor layer 0."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv1d(1, 512, kernel_size=10, stride=5, bias=False)
        self.norm = nn.GroupNorm(512, 512)  # eps 1e-5, affine
        self.act = nn.GELU()

    def forward(self, wav):  # wav: [B, 1, T]
        return self.act(self.norm(self.conv(wav)))


# ---------------------------------------------------------------- timing

def summarize(samples):
    s = sorted(samples)
    p90 = s[max(0, math.ceil(0.9 * len(s)) - 1)]
    return {
        "median": round(statistics.median(s), 3),
        "min": round(s[0], 3),
        "p90": round(p90, 3),
        "mean": round(statistics.fmean(s), 3),
        "runs": len(s),
        "warmup": WARMUP,
    }


def measure(name, fn, repeats, baseline, max_seconds):
    gc.collect()
    start = rss_mb()
    can_reset = reset_peak()
    log(f"{name}: {WARMUP} warm-up + {repeats} runs ...")
    for _ in range(WARMUP):
        fn()
    samples = []
    r0, w0, l0 = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter(), os.getloadavg()[0]
    for i in range(repeats):
        if i >= MIN_RUNS and time.perf_counter() - w0 > max_seconds:
            log(f"{name}: time cap {max_seconds} s reached after {i} runs")
            break
        t0 = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - t0) * 1000.0)
    r1, w1, l1 = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter(), os.getloadavg()[0]
    st = summarize(samples)
    # Contention and page-fault diagnostics for the timed runs: cpu_per_wall near the
    # thread count means the process had its cores; much lower means others took them.
    st["cpu_per_wall"] = round((r1.ru_utime - r0.ru_utime + r1.ru_stime - r0.ru_stime) / (w1 - w0), 2)
    st["sys_fraction"] = round((r1.ru_stime - r0.ru_stime)
                               / max(1e-9, r1.ru_utime - r0.ru_utime + r1.ru_stime - r0.ru_stime), 2)
    st["minor_faults_per_run"] = round((r1.ru_minflt - r0.ru_minflt) / len(samples))
    st["loadavg_1m"] = [round(l0, 2), round(l1, 2)]
    peak = hwm_mb() if can_reset else maxrss_mb()
    st["rss_start_mb"] = round(start, 1)
    st["peak_rss_mb"] = round(peak, 1)
    st["peak_rss_above_baseline_mb"] = round(peak - baseline, 1)
    st["peak_rss_above_start_mb"] = round(peak - start, 1)
    st["peak_is_per_measurement"] = can_reset
    log(f"{name}: median {st['median']:.1f} ms (min {st['min']:.1f}, p90 {st['p90']:.1f}),"
        f" peak RSS +{st['peak_rss_above_baseline_mb']:.0f} MB over baseline")
    return st


def blas_info():
    cfg = torch.__config__.show()
    in_config = "openblas" in cfg.lower()
    loaded = []
    try:
        with open("/proc/self/maps") as f:
            for line in f:
                p = line.split()[-1]
                if "openblas" in p.lower() and p not in loaded:
                    loaded.append(p)
    except OSError:
        pass
    ob_threads = None
    for p in loaded:
        if "libopenblas" in os.path.basename(p):
            try:
                ob_threads = ctypes.CDLL(p).openblas_get_num_threads()
            except (OSError, AttributeError):
                pass
            break
    return {
        "blas": in_config or bool(loaded),
        "blas_in_config": in_config,
        "blas_library": next((p for p in loaded if "libopenblas" in os.path.basename(p)), None),
        "openblas_threads": ob_threads,
    }


# ---------------------------------------------------------------- main

def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--batch", type=int, default=4, help="layer batch size (default 4)")
    ap.add_argument("--seq", type=int, default=150, help="layer sequence length (default 150)")
    ap.add_argument("--repeats", type=int, default=20, help="timed runs after 3 warm-ups (default 20)")
    ap.add_argument("--max-seconds", type=float, default=15.0,
                    help="stop a measurement's timed runs after this many seconds"
                         f" (at least {MIN_RUNS} runs; default 15; `runs` in stats says how many)")
    ap.add_argument("--only", choices=["layer", "conv"], help="run only one of the two benchmarks")
    ap.add_argument("--conv-batch", type=int, default=4, help="conv batch size (default 4)")
    ap.add_argument("--samples", type=int, default=48000, help="conv input samples (default 48000)")
    ap.add_argument("--tuned-malloc", action="store_true",
                    help="run under MALLOC_MMAP_THRESHOLD_=1073741824 MALLOC_TRIM_THRESHOLD_=4294967296"
                         " (glibc reuses freed large buffers instead of faulting in fresh pages;"
                         " the same setting MEASURED.md applies to the ORT side)")
    args = ap.parse_args()

    torch.set_num_threads(THREADS)
    torch.manual_seed(0)
    do_layer = args.only in (None, "layer")
    do_conv = args.only in (None, "conv")

    # Build every module and input before the baseline reading.
    if do_layer:
        B, S = args.batch, args.seq
        layer = EncoderLayer()
        x = torch.randn(B, S, 768)
        # Padded tail: sequence b keeps S - (b * 13) % (S // 3) tokens (batch 0 is full).
        lengths = [S - (b * 13) % max(1, S // 3) for b in range(B)]
        valid = torch.zeros(B, S)
        for b, n in enumerate(lengths):
            valid[b, :n] = 1.0
        mask = ((1.0 - valid) * -10000.0).view(B, 1, 1, S)
        padded = int(B * S - sum(lengths))
    if do_conv:
        conv = ConvLayer0()
        wav = torch.randn(args.conv_batch, 1, args.samples)

    gc.collect()
    baseline = rss_mb()
    log(f"torch {torch.__version__}, {torch.get_num_threads()} threads, "
        f"OMP_WAIT_POLICY={os.environ.get('OMP_WAIT_POLICY')}, baseline RSS {baseline:.0f} MB")

    out = {
        "torch_version": torch.__version__,
        "threads": torch.get_num_threads(),
        "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY"),
        "python": sys.executable,
        "dtype": "float32",
        "malloc_env": {k: v for k, v in sorted(os.environ.items()) if k.startswith("MALLOC_")},
        "cpus": os.cpu_count(),
    }
    out.update(blas_info())
    stats = {}

    if do_layer:
        out.update({"batch": B, "seq": S, "padded_tokens": padded, "loss": "mean(output^2)"})

        def layer_fwd():
            with torch.no_grad():
                layer(x, mask)

        stats["layer_forward"] = measure("layer_forward", layer_fwd, args.repeats, baseline, args.max_seconds)

        opt = torch.optim.Adam(layer.parameters(), lr=1e-4, betas=(0.9, 0.999), eps=1e-8)

        def layer_step():
            opt.zero_grad(set_to_none=True)
            loss = layer(x, mask).pow(2).mean()
            loss.backward()
            opt.step()

        stats["layer_train"] = measure("layer_train", layer_step, args.repeats, baseline, args.max_seconds)
        del opt
        layer.zero_grad(set_to_none=True)

    if do_conv:
        out.update({"conv_batch": args.conv_batch, "conv_samples": args.samples,
                    "conv_loss": "mean(output)"})

        def conv_fwd():
            with torch.no_grad():
                conv(wav)

        stats["conv_forward"] = measure("conv_forward", conv_fwd, args.repeats, baseline, args.max_seconds)

        copt = torch.optim.Adam(conv.parameters(), lr=1e-4, betas=(0.9, 0.999), eps=1e-8)

        def conv_step():
            copt.zero_grad(set_to_none=True)
            loss = conv(wav).mean()
            loss.backward()
            copt.step()

        stats["conv_train"] = measure("conv_train", conv_step, args.repeats, baseline, args.max_seconds)
        del copt

    for k, st in stats.items():
        out[f"{k}_ms"] = st["median"]
    out["baseline_rss_mb"] = round(baseline, 1)
    peak = process_peak_mb()
    out["peak_rss_mb"] = round(peak, 1)
    out["peak_rss_above_baseline_mb"] = round(peak - baseline, 1)
    out["stats"] = stats
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
