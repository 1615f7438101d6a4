#!/usr/bin/env python
"""Spatial verification on this CPU: local-feature extraction (images/s), verification (pairs/s) and the cost per query at k=100.

    .venv/bin/python bench/bench_spatial.py            # 120 database images, 6 queries x 100 neighbours
    .venv/bin/python bench/bench_spatial.py --quick    # 40 images, 2 queries x 30 neighbours

The images are real photos from the scikit-image wheel (and sklearn's two), each written as several JPEG views
(random homographies of the photo, 512 px on the long side), so extraction includes the JPEG decode, as in
prediction. Extraction runs `inference.extract_local_features` (cache shards included) with 1 and 2 threads.
Verification runs `rerank.spatial_inliers` (RootSIFT ratio + mutual matching in numpy, then OpenCV's USAC
MAGSAC++ homography) on each query's 100 neighbours: every view of the query's photo, then others; the baseline does the
same pairs with OpenCV's brute-force matcher (`knnMatch` k=2 + a reverse `match` for the mutual check) and the
same RANSAC. Every row is SIFT at the defaults of `rerank.SpatialConfig` (1000 keypoints, 512 px) unless it says
otherwise. Writes bench/results/spatial.json (see bench/run_all.py for the format).
"""
from __future__ import annotations
import argparse, json, os, sys, tempfile, time
from pathlib import Path
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

def photos():
    "The real photos shipped in the scikit-image and scikit-learn wheels (RGB uint8)."
    import skimage.data as skd
    from sklearn.datasets import load_sample_images
    ims = [skd.astronaut(), skd.coffee(), skd.chelsea(), skd.rocket(), *skd.stereo_motorcycle()[:2]]
    ims += [np.dstack([skd.camera()] * 3), np.dstack([skd.brick()] * 3)]
    return ims + list(load_sample_images().images)

def warp(im, rng, cv2, side=512):
    "A random homography view of `im`, resized to `side` on the long side."
    h, w = im.shape[:2]
    src = np.float32([[0, 0], [w, 0], [w, h], [0, h]])
    dst = (src + rng.uniform(-.12, .12, (4, 2)) * [w, h]).astype(np.float32)
    H = cv2.getPerspectiveTransform(src, dst)
    out = cv2.warpPerspective(im, H, (w, h), borderMode=cv2.BORDER_REFLECT)
    r = side / max(h, w)
    return cv2.resize(out, (round(w * r), round(h * r)), interpolation=cv2.INTER_AREA)

def bf_inliers(fq, fd, cfg, cv2):
    "The baseline: OpenCV's brute-force matcher (ratio + mutual), then the same RANSAC as verify_pair."
    from landmark2020.rerank import descriptor_vectors
    a, b = descriptor_vectors(fq[1]), descriptor_vectors(fd[1])
    if len(a) < 2 or len(b) < 2: return 0
    bf = cv2.BFMatcher(cv2.NORM_L2)
    back = {m.queryIdx: m.trainIdx for m in bf.match(b, a)}
    m = [(x.queryIdx, x.trainIdx) for x, y in bf.knnMatch(a, b, k=2) if x.distance < cfg.ratio * y.distance and back[x.trainIdx] == x.queryIdx]
    if len(m) < max(4, cfg.min_inliers): return 0
    m = np.array(m)
    _, mask = cv2.findHomography(fq[0][m[:, 0]], fd[0][m[:, 1]], cv2.USAC_MAGSAC, cfg.threshold, maxIters=cfg.max_iters, confidence=cfg.confidence)
    return 0 if mask is None else int(mask.sum())

def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--quick', action='store_true', help='40 images, 2 queries x 30 neighbours')
    a = ap.parse_args()
    import cv2
    from landmark2020.core import atomic_write
    from landmark2020.rerank import SpatialConfig, spatial_inliers
    from landmark2020.inference import extract_local_features
    n_db, n_q, k = (40, 2, 30) if a.quick else (120, 6, 100)
    load0 = os.getloadavg()[0]
    rng = np.random.default_rng(0)
    ims = photos()
    rows, lines = [], []
    with tempfile.TemporaryDirectory() as d:
        d = Path(d)
        ids, rel = [], []
        for j in range(n_db + n_q):
            p = f'img/{j:05d}.jpg'; (d/'img').mkdir(exist_ok=True)
            cv2.imwrite(str(d/p), cv2.cvtColor(warp(ims[j % len(ims)], rng, cv2), cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 90])
            ids.append(f'{j:05d}'); rel.append(p)
        ext = {}
        for workers in (1, 2):
            cfg = SpatialConfig(workers=workers)
            t = time.perf_counter()
            feats = extract_local_features(d, rel, ids, d/f'cache{workers}', cfg, progress=False)
            ext[workers] = len(ids) / (time.perf_counter() - t)
        nkp = np.mean([len(feats[i][0]) for i in ids])
        for workers in (1, 2):
            rows.append(dict(work=f"local features (SIFT, <= 1000 keypoints, 512 px JPEG views), {workers} thread(s)",
                             baseline="", value=round(ext[workers], 2), unit='img/s', higher_is_better=True,
                             notes=f"{len(ids)} images, {nkp:.0f} keypoints per image on average, decode and cache write included"))
        # queries: the last n_q images; neighbours: the database views of the query's photo first, then others
        cfg = SpatialConfig(k=k)
        q_rows = list(range(n_db, n_db + n_q))
        photo = lambda j: j % len(ims)
        idx = np.array([([j for j in range(n_db) if photo(j) == photo(q)] + [j for j in range(n_db) if photo(j) != photo(q)])[:k] for q in q_rows])
        rows_db = feats.rows(ids)
        qf = [feats[ids[q]] for q in q_rows]
        t = time.perf_counter(); inl = spatial_inliers(idx, qf, rows_db, cfg); t_ours = time.perf_counter() - t
        t = time.perf_counter()
        inl_bf = np.array([[bf_inliers(qf[r], rows_db[j], cfg, cv2) for j in idx[r]] for r in range(n_q)])
        t_bf = time.perf_counter() - t
        same = np.array([[photo(j) == photo(q) for j in idx[r]] for r, q in enumerate(q_rows)])
        pairs = n_q * idx.shape[1]
        sep = f"median inliers {np.median(inl[same]):.0f} for views of the same photo vs {np.median(inl[~same]):.0f} for others"
        rows.append(dict(work=f"spatial verification (RootSIFT ratio + mutual NN, MAGSAC++ homography), {pairs} pairs",
                         baseline="OpenCV BFMatcher knnMatch + reverse match, same RANSAC (same run)",
                         value=round(pairs / t_ours, 1), baseline_value=round(pairs / t_bf, 1), unit='pairs/s', higher_is_better=True,
                         notes=f"{sep}; inlier counts equal to the baseline's on {np.mean(inl == inl_bf):.0%} of the pairs (RANSAC sees the same matches)"))
        rows.append(dict(work=f"spatial verification per query at k={idx.shape[1]} (1 thread)", baseline="",
                         value=round(t_ours / n_q, 2), unit='s/query',
                         notes=f"{n_q} queries; at k=20 (the default) about {t_ours / n_q * 20 / idx.shape[1]:.2f} s"))
        cfg2 = SpatialConfig(k=k, workers=2)
        t = time.perf_counter(); spatial_inliers(idx, qf, rows_db, cfg2); t2 = time.perf_counter() - t
        rows.append(dict(work=f"spatial verification per query at k={idx.shape[1]} (2 threads)", baseline="1 thread (same run)",
                         value=round(t2 / n_q, 2), baseline_value=round(t_ours / n_q, 2), unit='s/query'))
    print("| work | value | baseline | notes |\n|---|---|---|---|")
    for r in rows: print(f"| {r['work']} | {r['value']} {r['unit']} | {r.get('baseline_value', '')} | {r.get('notes', '')} |")
    print(f"\nload average at the start {load0:.2f}, at the end {os.getloadavg()[0]:.2f}")
    out = ROOT/'bench'/'results'/'spatial.json'
    out.parent.mkdir(parents=True, exist_ok=True)
    with atomic_write(out, 'w') as f:
        json.dump(dict(module='spatial', quick=a.quick, load_average=[round(load0, 2), round(os.getloadavg()[0], 2)], rows=rows), f, indent=1)

if __name__ == '__main__': main()
