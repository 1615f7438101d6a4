#!/usr/bin/env python
"""Benchmark `landmark2020.training`: the fastai training path against a hand-written PyTorch loop, and the reduced-size JPEG decode.

    .venv/bin/python bench/bench_train.py                  # CPU, full size (about 2-3 minutes on 2 cores)
    .venv/bin/python bench/bench_train.py --quick          # under a minute
    .venv/bin/python bench/bench_train.py --device cuda    # GPU (the precision follows the config: bf16/fp16 autocast)

(a) Training-loop overhead. One epoch of our training path -- `make_learner` (the fastai `Learner` that `lm_train` runs,
with every callback: TrainState, MarginLabels, WarmupCosine, NonFiniteStop, AmpClip, Checkpointer with its atomic
checkpoint, log.csv, curves.png and model folder at the epoch end) -- against a minimal hand-written PyTorch loop:
set the lr from the same warmup-cosine schedule, `model(x, y)`, the same loss, `backward`, SGD `step`, and a
`torch.save` of the model at the end. Same model (a tiny timm backbone, the same initial weights), the same DataLoader
(our `LandmarkDataset` over synthetic JPEGs, same sampler and seed) and batch size. Two data variants: the real image
pipeline (decode + augment in the loop, as in training), and the batches decoded once up front (in memory), which
leaves only model compute plus loop overhead and so is the strict measure of what fastai costs per batch. Each
variant runs `--repeat` interleaved rounds; the best round of each is kept. Both loops end with the same weights
(checked and reported).

(b) Data-loader throughput with and without the reduced-size decode (`data.draft`, PIL `draft`): our training
`LandmarkDataset` + DataLoader over ~800 px JPEGs at a small target size (`--decode-size`, default 128), images/s.

Prints a Markdown table and writes `bench/results/train.json` (see bench/run_all.py for the format).
"""
from __future__ import annotations
import argparse, copy, json, os, platform, shutil, sys, tempfile, time, datetime as dt
from pathlib import Path
os.environ.setdefault('HF_HUB_OFFLINE', '1')
import numpy as np, pandas as pd, torch
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from landmark2020.core import atomic_write, get_device, seed_everything
from landmark2020.data import LabelMap
from landmark2020.losses import create_loss
from landmark2020.loaders import LandmarkDataset, LandmarkBatchSampler, SequentialSampler, make_loader, group_sizes
from landmark2020.training import (load_train_config, build_model, build_dataloaders, make_learner, warmup_cosine, amp_dtype)
from fastai.data.core import DataLoaders


def sync(device):
    if device.type == 'cuda': torch.cuda.synchronize(device)


def smooth_image(rng, w, h):
    "A photo-like synthetic image: a smooth random colour field plus mild noise (JPEG-compresses like a photo)."
    small = (rng.random((max(2, h // 32), max(2, w // 32), 3)) * 255).astype(np.uint8)
    im = np.asarray(Image.fromarray(small).resize((w, h), Image.BICUBIC), dtype=np.int16)
    im = im + rng.integers(-12, 13, im.shape)
    return Image.fromarray(np.clip(im, 0, 255).astype(np.uint8))


def write_images(folder, n, sizes, n_classes, seed=0, quality=90):
    "n JPEGs under folder/train with sizes drawn from `sizes`; returns the training table (all rows in training)."
    rng, rows = np.random.default_rng(seed), []
    for i in range(n):
        w, h = sizes[i % len(sizes)]
        p = Path('train')/f'{i:05d}.jpg'
        (folder/p).parent.mkdir(parents=True, exist_ok=True)
        smooth_image(rng, w, h).save(folder/p, quality=quality)
        rows.append(dict(id=f'{i:05d}', path=str(p), landmark_id=i % n_classes, width=w, height=h, is_valid=False))
    return pd.DataFrame(rows)


def hand_loop(model, dl, loss_fn, o, total, warm, device, dtype, out_file):
    "The minimal PyTorch loop: same schedule, optimizer, loss and precision as the fastai path; saves the model at the end."
    opt = torch.optim.SGD(model.parameters(), lr=o.lr, momentum=o.momentum, weight_decay=o.wd)
    scaler = torch.amp.GradScaler(device.type, enabled=dtype == torch.float16)
    model.train(); step = 0
    if hasattr(getattr(dl, 'batch_sampler', None), 'set_epoch'): dl.batch_sampler.set_epoch(0)
    for x, y in dl:
        x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
        for g in opt.param_groups: g['lr'] = warmup_cosine(step, total, o.lr, warm, o.warmup_init, o.lr_min)
        with torch.autocast(device.type, dtype=dtype, enabled=dtype is not None):
            out = model(x, y)
        loss = loss_fn(out.float(), y)
        opt.zero_grad()
        scaler.scale(loss).backward()
        if o.clip: scaler.unscale_(opt); torch.nn.utils.clip_grad_norm_(model.parameters(), o.clip)
        scaler.step(opt); scaler.update(); step += 1
    sync(device); t = time.process_time()
    torch.save(model.state_dict(), out_file)
    return time.process_time() - t


def bench_loop(a, device, work):
    n = 256 if a.quick else 1024
    table = write_images(work/'loop', n, [(a.size + 16, a.size + 16)], n_classes=16, seed=1)
    cfg = load_train_config(ROOT/'configs'/'smoke.yaml', [
        f'data.root={work/"loop"}', f'data.size={a.size}', f'data.batch_size={a.batch_size}', 'data.holdout=0',
        'data.augment=soft', f'model.arch={a.arch}', 'opt.epochs=1', 'opt.warmup_epochs=0.5', f'device={device}',
        'opt.precision=auto', 'progress=false', f'out={work}/runs'])
    labels = LabelMap.from_labels(table.landmark_id)
    seed_everything(cfg.seed)
    init = build_model(cfg, labels).state_dict()
    o, dtype = cfg.opt, amp_dtype(cfg.opt.precision, device)
    loss_fn = create_loss(cfg.loss.name, label_smoothing=cfg.loss.label_smoothing)
    mem, k = None, 0

    def one(who, variant):
        "One epoch of `who` on `variant` data: (wall s, process CPU s, epoch-end writes s, final weights)."
        nonlocal mem, k
        model = build_model(cfg, labels, init=False); model.load_state_dict(init); model.to(device)
        dls, gal = build_dataloaders(cfg, table, labels, model.cfg['mean'], model.cfg['std'], device=device)
        train_dl = dls.train
        if variant == 'memory':   # decode + augment once; both loops then iterate the same list of batches
            if mem is None: dls.train.batch_sampler.set_epoch(0); mem = [b for b in dls.train]
            m = DataLoaders(mem, []); m._device, m.unreadable = device, dls.unreadable
            dls, train_dl = m, mem
        steps = len(train_dl) // o.accum
        torch.manual_seed(0); k += 1
        if who == 'fastai':
            learn = make_learner(cfg, model, dls, gal, work/'runs'/f'{variant}_{k}', device=device)
            learn.logger = lambda *a, **kw: None
            ck = [c for c in learn.cbs if type(c).__name__ == 'Checkpointer'][0]
            f, end = ck.after_epoch, [0.0]
            def timed():
                sync(device); t = time.process_time(); f(); end[0] += time.process_time() - t
            ck.after_epoch = timed
            sync(device); t, c = time.perf_counter(), time.process_time()
            learn.fit(1)
            sync(device); wall, cpu, end = time.perf_counter() - t, time.process_time() - c, end[0]
        else:
            sync(device); t, c = time.perf_counter(), time.process_time()
            end = hand_loop(model, train_dl, loss_fn, o, o.epochs * steps, int(round(o.warmup_epochs * steps)), device, dtype, work/'hand.pth')
            sync(device); wall, cpu = time.perf_counter() - t, time.process_time() - c
        return wall, cpu, end, {kk: v.detach().cpu().clone() for kk, v in model.state_dict().items()}, steps

    one('fastai', 'memory'); one('hand', 'memory')   # warm-up (imports, allocator), not timed
    results = {}
    for variant in ('images', 'memory'):
        runs = {'fastai': [], 'hand': []}
        for r in range(a.repeat):
            for who in (('fastai', 'hand') if r % 2 == 0 else ('hand', 'fastai')):
                runs[who].append(one(who, variant))
        wf, wh = runs['fastai'][0][3], runs['hand'][0][3]
        diff = max((wf[kk].float() - wh[kk].float()).abs().max().item() for kk in wh if wh[kk].is_floating_point())
        best = {w: min(v, key=lambda x: x[0]) for w, v in runs.items()}
        results[variant] = dict(steps=runs['fastai'][0][4], diff=diff,
                                **{f'{w}_{q}': min(x[i] for x in v) for w, v in runs.items() for i, q in enumerate(('wall', 'cpu', 'end'))},
                                walls={w: [round(x[0], 2) for x in v] for w, v in runs.items()},
                                loop={w: min(x[1] - x[2] for x in v) for w, v in runs.items()})
    return cfg, results


def write_photos(folder, n, long_side=800, quality=90):
    "n JPEGs of real photos (the sample images that scikit-image, scikit-learn and matplotlib ship) at `long_side` px."
    from landmark2020.toy import _pip_files
    files = [p for p in _pip_files().values()]
    srcs = [im for im in (Image.open(p).convert('RGB') for p in files) if min(im.size) >= 300]
    if not srcs: return None
    rows = []
    for i in range(n):
        im = srcs[i % len(srcs)]
        r = long_side / max(im.size); im = im.resize((round(im.size[0] * r), round(im.size[1] * r)), Image.BICUBIC)
        if (i // len(srcs)) % 2: im = im.transpose(Image.FLIP_LEFT_RIGHT)
        p = Path('photos')/f'{i:05d}.jpg'; (folder/p).parent.mkdir(parents=True, exist_ok=True); im.save(folder/p, quality=quality)
        rows.append(dict(path=str(p), landmark_id=i % 8, width=im.size[0], height=im.size[1]))
    return pd.DataFrame(rows)


def bench_decode(a, device, work, quality):
    "img/s (process CPU and wall) of the training loader with and without the reduced-size decode, on 800 px JPEGs of `quality`."
    n = 48 if a.quick else 160
    folder = work/f'decode_q{quality}'
    table = write_photos(folder, n, quality=quality)
    if table is None: table = write_images(folder, n, [(800, 600), (600, 800), (800, 533)], n_classes=8, seed=2, quality=quality)
    rates, walls = {True: 0.0, False: 0.0}, {True: 0.0, False: 0.0}
    sz = group_sizes(a.decode_size)
    for r in range(a.repeat):
        for draft in (True, False):
            ds = LandmarkDataset(folder, table.path, table.landmark_id, sz, 'soft', draft=draft)
            dl = make_loader(ds, LandmarkBatchSampler(SequentialSampler(n), 16, drop_last=False), workers=0)
            t, c = time.perf_counter(), time.process_time(); k = sum(len(x) for x, _ in dl)
            rates[draft] = max(rates[draft], k / (time.process_time() - c)); walls[draft] = max(walls[draft], k / (time.perf_counter() - t))
    return rates, walls, n


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--quick', action='store_true', help='small sizes (< 1 minute)')
    ap.add_argument('--device', default='cpu', help='cpu (default) or cuda')
    ap.add_argument('--arch', default='test_resnet', help='timm backbone (default: the tiny test_resnet)')
    ap.add_argument('--size', type=int, default=64, help='training image size')
    ap.add_argument('--batch-size', type=int, default=32)
    ap.add_argument('--decode-size', type=int, default=128, help='target size of the decode benchmark')
    ap.add_argument('--threads', type=int, default=1, help='torch threads on the CPU (default 1: a stable measure on a shared machine)')
    ap.add_argument('--repeat', type=int, default=None, help='interleaved rounds, best kept (default 3, 2 with --quick)')
    a = ap.parse_args()
    a.repeat = a.repeat or (2 if a.quick else 3)
    device = get_device(a.device)
    if a.device.startswith('cuda') and device.type != 'cuda': sys.exit('bench_train: --device cuda but no CUDA device is available')
    if device.type == 'cpu': torch.set_num_threads(a.threads)
    t0 = time.time()
    work = Path(tempfile.mkdtemp(prefix='bench_train_'))
    try:
        cfg, loop = bench_loop(a, device, work)
        dec = {q: bench_decode(a, device, work, q) for q in (90, 75)}
    finally: shutil.rmtree(work, ignore_errors=True)
    prec = amp_dtype(cfg.opt.precision, device)
    prec = 'fp32' if prec is None else str(prec).replace('torch.', '')
    rows = []
    for variant, what in (('images', 'JPEG decode + augment in the loop'), ('memory', 'batches decoded once, in memory')):
        r = loop[variant]; over = r['fastai_cpu'] / r['hand_cpu']
        rows.append(dict(work=f"one epoch, fastai training path (make_learner, all callbacks, epoch-end checkpoint + log + curves + model folder), "
                              f"{a.arch} {a.size} px, batch {a.batch_size}, {r['steps']} steps, {what}, {device.type} {prec}",
                         baseline='hand-written PyTorch loop, same model/data/batch/schedule + torch.save (same run)',
                         ratio=round(r['hand_cpu'] / r['fastai_cpu'], 3), value=round(r['fastai_cpu'], 3), baseline_value=round(r['hand_cpu'], 3),
                         unit='s', target='overhead <= 1.10x', ok=bool(over <= 1.10),
                         notes=f"process CPU seconds, {torch.get_num_threads()} torch thread(s): overhead {over:.3f}x; wall-clock {r['fastai_wall']:.2f} vs {r['hand_wall']:.2f} s ({r['fastai_wall'] / r['hand_wall']:.3f}x); epoch-end writes {r['fastai_end']:.2f} s "
                               f"(hand loop's torch.save {r['hand_end']:.2f} s); final weights differ by at most {r['diff']:.2g}; "
                               f"wall per round fastai {r['walls']['fastai']}, hand {r['walls']['hand']}"))
    r = loop['memory']; over = r['loop']['fastai'] / r['loop']['hand']
    rows.append(dict(work=f"the {r['steps']} training steps alone (epoch minus its end-of-epoch writes, CPU s), in memory, {a.arch} {a.size} px, batch {a.batch_size}, {device.type} {prec}",
                     baseline='hand-written PyTorch loop, same steps (same run)', ratio=round(1 / over, 3),
                     value=round(r['loop']['fastai'], 3), baseline_value=round(r['loop']['hand'], 3), unit='s', target='overhead <= 1.10x',
                     ok=bool(over <= 1.10), notes=f"per-step fastai overhead {(r['loop']['fastai'] - r['loop']['hand']) / r['steps'] * 1e3:.1f} ms"))
    for q, (rates, walls, n_dec) in dec.items():
        ratio = rates[True] / rates[False]
        rows.append(dict(work=f"training DataLoader, {n_dec} photo JPEGs of 800 px (quality {q}) -> {a.decode_size} px ('soft' augment), reduced-size decode (PIL draft)",
                         baseline='same loader, full-size decode (data.draft=false) (same run)', ratio=round(ratio, 2),
                         value=round(rates[True], 1), baseline_value=round(rates[False], 1), unit='img/s', higher_is_better=True,
                         target='>= 2x', ok=bool(ratio >= 2),
                         notes=f"img/s of process CPU time, 1 process, workers=0; wall-clock {walls[True]:.1f} vs {walls[False]:.1f} img/s ({walls[True] / walls[False]:.2f}x)"))
    print(f"\nTraining benchmarks, {device} ({torch.get_num_threads()} torch threads), torch {torch.__version__}, best of {a.repeat} interleaved rounds, "
          f"times in process CPU seconds (load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cpus); "
          f"{time.time() - t0:.0f} s\n")
    print("| work | ours | baseline | ratio | target | ok |\n|---|---|---|---|---|---|")
    for r in rows:
        u = r['unit']
        shown = f"{r['value'] / r['baseline_value']:.3f}x overhead" if u == 's' else f"{r['ratio']:.2f}x faster"
        print(f"| {r['work']} | {r['value']} {u} | {r['baseline_value']} {u} | {shown} | {r['target']} | {r['ok']} |")
    out = ROOT/'bench'/'results'/('train.json' if device.type == 'cpu' else f'train_{device.type}.json')
    res = dict(module='train', quick=a.quick, device=str(device), date=dt.datetime.now(dt.timezone.utc).strftime('%Y-%m-%d %H:%M UTC'),
               machine=f"{platform.node()} {platform.processor() or platform.machine()}, {os.cpu_count()} cpus"
                       + (f", {torch.cuda.get_device_name(device)}" if device.type == 'cuda' else ''), rows=rows)
    with atomic_write(out, 'w') as f: json.dump(res, f, indent=1)
    print(f"\nwrote {out.relative_to(ROOT)}")


if __name__ == '__main__':
    main()
