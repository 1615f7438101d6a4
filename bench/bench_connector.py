#!/usr/bin/env python
"""Benchmark `landmark2020.connector.build_index` against the seed's `generate_df.py` method, in the same run.

    .venv/bin/python bench/bench_connector.py            # 20,000 JPEGs of 500-1000 px, ~2% corrupt
    .venv/bin/python bench/bench_connector.py --quick    # 2,000 JPEGs
    .venv/bin/python bench/bench_connector.py --n 50000 --tree /tmp/lm_bench_tree

The tree (GLDv2 layout, `train/a/b/c/{id}.jpg` + `train.csv`) is generated once and reused from `--tree` (default
`bench/results/connector_tree_<n>/`, gitignored). Its images are a pool of distinct toy views at 500-1000 px (long
side) from `make_toy_gldv2`, each written under many ids (the header reader and the full decode do the same work per
file whatever its pixels); 2% of the files are corrupt: zero-byte, truncated, random bytes, PNG named .jpg.

Measured, all on this tree, warm page cache unless said:
* **seed**: the seed's method: `Path.glob('**/*.jpg')` twice, a full decode per image (PIL here; the seed used
  `cv2.imread`, the same libjpeg work), one process, `df.loc[id_, 'height'] = h` row by row after a merge (setting
  with enlargement on a RangeIndex). A try/except keeps it alive on corrupt files (the seed would crash).
* **ours**: `build_index(check='eoi')` with a process pool, a thread pool and one process (`--workers`, default 2).
* **cold**: `build_index` (process pool) after evicting the tree's files from the page cache with
  `posix_fadvise(DONTNEED)` (file data only; directory entries stay cached).

Prints a Markdown table and writes `bench/results/connector.json`.
"""
from __future__ import annotations
import argparse, datetime as dt, glob, json, os, platform, shutil, sys, time
from pathlib import Path
import numpy as np, pandas as pd
from PIL import Image
from landmark2020.core import atomic_write, id_relpath
from landmark2020.connector import make_toy_gldv2, build_index, index_summary

ROOT = Path(__file__).resolve().parent
CORRUPT = ('zero', 'truncated', 'random', 'png')

def make_tree(dest:Path, n:int, corrupt:float=0.02, seed:int=0) -> Path:
    "A GLDv2-shaped train tree of `n` JPEGs (500-1000 px) with `corrupt` of them broken; reused when complete."
    marker = dest/'.complete.json'
    want = dict(n=n, corrupt=corrupt, seed=seed, version=1)
    if marker.exists() and json.loads(marker.read_text()) == want: return dest
    if dest.exists(): shutil.rmtree(dest)
    t0 = time.time()
    pool_dir = make_toy_gldv2(dest.parent/(dest.name + '.pool'), seed=seed, size=(500, 1000), n_train=12, n_index=6,
                              n_test=4, overwrite=True)
    pool = [Path(p).read_bytes() for p in sorted(glob.glob(str(pool_dir/'*'/'*'/'*'/'*'/'*.jpg')))]
    rng = np.random.default_rng(seed)
    v = np.unique(rng.integers(0, 2**63, int(n*1.01) + 10, dtype=np.int64))[:n]
    ids = [f'{x:016x}' for x in rng.permutation(v).tolist()]
    bad = set(rng.choice(n, int(round(n*corrupt)), replace=False).tolist())
    for k, i in enumerate(ids):
        p = dest/id_relpath(i, 'train'); p.parent.mkdir(parents=True, exist_ok=True)
        b = pool[k % len(pool)]
        if k in bad:
            kind = CORRUPT[k % len(CORRUPT)]
            if kind == 'zero': b = b''
            elif kind == 'truncated': b = b[:len(b)//3]
            elif kind == 'random': b = rng.bytes(len(b)//4)
            else:
                import io; buf = io.BytesIO(); Image.open(io.BytesIO(b)).save(buf, 'PNG'); b = buf.getvalue()
        p.write_bytes(b)
    labels = rng.integers(0, max(1, n//20), n)
    pd.DataFrame({'id': ids, 'url': '', 'landmark_id': labels}).to_csv(dest/'train.csv', index=False)
    shutil.rmtree(pool_dir)
    marker.write_text(json.dumps(want))
    print(f"built {dest} ({n} files, {len(bad)} corrupt) in {time.time() - t0:.0f} s", file=sys.stderr)
    return dest

def seed_method(root:Path, limit:int|None=None) -> tuple:
    "The seed's generate_df.py, faithfully (full decode, one process, two walks, row-by-row df.loc)."
    df = pd.read_csv(root/'train.csv')
    train_dir = root/'train'
    paths = sorted(Path(train_dir).glob('**/*.jpg'))[:limit]
    df_path = pd.DataFrame({'id': [p.stem for p in paths], 'path': [str(p) for p in paths]})
    df = df.merge(df_path, on='id')
    keep = {p.stem for p in paths}
    for p in Path(train_dir).glob('**/*.jpg'):                 # second walk, as in the seed
        id_ = p.stem
        if id_ not in keep: continue
        try:
            img = np.asarray(Image.open(p).convert('RGB'))     # full decode (cv2.imread in the seed)
            h, w = img.shape[:2]
        except Exception: continue                             # the seed would crash here
        df.loc[id_, 'height'] = h
        df.loc[id_, 'width'] = w
    df = df.reset_index()
    return df, len(paths)

def evict(root:Path):
    "Drop the tree's file data from the page cache (this process's view; needs no root)."
    n = 0
    for dp, _, fn in os.walk(root):
        for f in fn:
            fd = os.open(os.path.join(dp, f), os.O_RDONLY)
            try: os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED); n += 1
            finally: os.close(fd)
    return n

def timed(f):
    t = time.perf_counter(); r = f(); return r, time.perf_counter() - t

def main(quick=False, n=None, tree=None, workers=2, baseline_n=None):
    n = n or (2_000 if quick else 20_000)
    tree = Path(tree) if tree else ROOT/'results'/f'connector_tree_{n}'
    make_tree(tree, n)
    rows = []
    # warm the cache, then measure ours
    build_index(tree, 'train', workers=workers, executor='process')
    res = {}
    for ex in ('process', 'thread', 'serial'):
        best = float('inf')
        for _ in range(2):
            df, t = timed(lambda: build_index(tree, 'train', workers=workers, executor=ex))
            best = min(best, t)
        res[ex] = (df, best)
    ref = res['process'][0]
    for ex in ('thread', 'serial'): pd.testing.assert_frame_equal(res[ex][0], ref)
    n_bad = int((~ref.ok).sum())
    evict(tree)
    cold_df, t_cold = timed(lambda: build_index(tree, 'train', workers=workers, executor='process'))
    pd.testing.assert_frame_equal(cold_df, ref)
    # the seed's method on (up to) the same files
    (sdf, n_seed), t_seed = timed(lambda: seed_method(tree, baseline_n))
    seed_rate = n_seed/t_seed
    expected = len(pd.read_csv(tree/'train.csv'))
    for ex, label in (('process', f'build_index, process pool ({workers})'), ('thread', f'build_index, thread pool ({workers})'),
                      ('serial', 'build_index, one process')):
        rate = n/res[ex][1]
        rows.append(dict(work=f"{label}, {n:,} JPEGs, warm cache", baseline="seed generate_df.py method (same run, same tree)",
                         ratio=round(rate/seed_rate, 1), value=round(rate), baseline_value=round(seed_rate, 1), unit='img/s',
                         higher_is_better=True, target='>= 30x and >= 5,000 img/s' if ex == 'process' else '',
                         ok=(rate/seed_rate >= 30 and rate >= 5000) if ex == 'process' else None,
                         notes=f"{res[ex][1]:.2f} s; {n_bad} bad rows reported ({', '.join(f'{k}: {v}' for k, v in index_summary(ref).items())})"))
    rate = n/t_cold
    rows.append(dict(work=f"build_index, process pool ({workers}), {n:,} JPEGs, cold page cache", baseline="seed method, warm cache",
                     ratio=round(rate/seed_rate, 1), value=round(rate), baseline_value=round(seed_rate, 1), unit='img/s',
                     higher_is_better=True, notes=f"{t_cold:.2f} s; file data evicted with posix_fadvise(DONTNEED), directories cached"))
    rows.append(dict(work=f"seed generate_df.py method, {n_seed:,} JPEGs", baseline='-', ratio=1.0, value=round(seed_rate, 1),
                     baseline_value=round(seed_rate, 1), unit='img/s', higher_is_better=True,
                     notes=f"{t_seed:.1f} s; its output has {len(sdf):,} rows for {n_seed:,} files (quadratic df.loc appends junk rows) "
                           f"({int((sdf['id'].isna() & sdf['width'].notna()).sum()):,} of them carry the sizes and have no id)"))
    print(f"| work | ours | seed method | ratio |\n|---|---|---|---|")
    for r in rows: print(f"| {r['work']} | {r['value']:,} {r['unit']} | {r['baseline_value']:,} {r['unit']} | {r['ratio']}x |")
    out = dict(module='connector', quick=quick, machine=f"{platform.node()} {os.cpu_count()} CPUs (shared with other jobs)",
               date=dt.datetime.utcnow().strftime('%Y-%m-%d %H:%M UTC'), rows=rows)
    with atomic_write(ROOT/'results'/'connector.json', 'w') as f: json.dump(out, f, indent=1)
    return out

if __name__ == '__main__':
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--quick', action='store_true', help='2,000 files instead of 20,000')
    ap.add_argument('--n', type=int, default=None, help='number of files in the tree')
    ap.add_argument('--tree', default=None, help='where the generated tree is kept (reused)')
    ap.add_argument('--workers', type=int, default=2)
    ap.add_argument('--baseline_n', type=int, default=None, help='run the seed method on only this many files')
    a = ap.parse_args()
    main(a.quick, a.n, a.tree, a.workers, a.baseline_n)
