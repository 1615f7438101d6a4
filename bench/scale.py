#!/usr/bin/env python
"""Full-size rehearsal: every pipeline stage at 1%, 10% and 100% of GLDv2's real cardinalities (issue 16).

    .venv/bin/python bench/scale.py                          # scales 0.01, 0.1, 1 (make bench-scale)
    .venv/bin/python bench/scale.py --scales 0.01,0.1        # the two small sizes only
    .venv/bin/python bench/scale.py --scales 1 --stages build,lm_index,train_frame   # some stages at full size
    .venv/bin/python bench/scale.py --scales 0.001 --no-write                         # a smoke run (tests)

The data is `toy.make_synthetic_gldv2(WORK/s<scale>/data, scale)`: 1,580,470 clean train images in 81,313
long-tailed classes, a 76,176-image index and 100,000 test images at scale 1 (tiny hard-linked JPEGs). Stages
after the model use random unit vectors of dimension 512 as embeddings. Each stage runs in a fresh subprocess
(`--run-stage`) that reports its own timings and its peak RSS (`ru_maxrss` of itself and of its waited children,
e.g. DataLoader workers); a stage that dies (out of memory, timeout) is reported as failed. Stages of one size
hand their outputs (index, frames, embeddings) on through files in WORK/s<scale>/.

The exact kNN of 100k queries x 1.58 M (and the re-rankings that search the 1.58 M train set) grow linearly with
the number of queries for a fixed database; where `--knn-queries` (searches against the train set, default 2,000),
`--ret-queries` (the query side of retrieval: QE, kNN, re-rankings, default 10,000) or `--kr-queries` (k-reciprocal,
default 2,000) cap the queries, the time is measured on that sample and scaled to all queries ("ext." in the table).
On 2 shared cores `make bench-scale` takes about 45 minutes (most of it the 100% size).

Results: bench/results/scale.json (merged over runs: a run of some stages/sizes keeps the other cells) and the
section "Full-size rehearsal (bench/scale.py)" of bench/RESULTS.md (the other sections are kept).
"""
from __future__ import annotations
import argparse, json, math, os, platform, resource, shutil, subprocess, sys, time
from pathlib import Path
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
STAGES = ('build', 'lm_index', 'train_frame', 'sampler', 'train_step', 'emb_cache', 'knn', 'recognition', 'retrieval', 'submission')
POST_MODEL = ('emb_cache', 'knn', 'recognition', 'retrieval', 'submission')
DIM = 512
SECTION = '## Full-size rehearsal (bench/scale.py)'

# ---------------------------------------------------------------------------------------------------------------
# the stages (each runs in its own process: `scale.py --run-stage NAME --scale S --work DIR`)

def _t():
    return time.perf_counter()

class Stage:
    "Collects the timings (seconds) and notes of one stage run."
    def __init__(self): self.times, self.notes, self.extrapolated, self.work = {}, [], set(), {}
    def time(self, name, f, *a, work=None, **kw):
        "Time `f(*a, **kw)` as `name`; `work`: its amount when that is not proportional to the size (e.g. query x database pairs)."
        t = _t(); out = f(*a, **kw); self.times[name] = time.perf_counter() - t
        if work: self.work[name] = float(work)
        return out

def _rand_unit(n, d=DIM, seed=0, chunk=200_000, out=None):
    "n random unit vectors (float32), generated in chunks (into `out`, e.g. a memmap, when given)."
    rng = np.random.default_rng(seed)
    out = np.empty((n, d), np.float32) if out is None else out
    for a in range(0, n, chunk):
        x = rng.standard_normal((min(chunk, n - a), d), dtype=np.float32)
        x /= np.linalg.norm(x, axis=1, keepdims=True)
        out[a:a + len(x)] = x
    return out

def _data(work): return work/'data'

def st_build(st, work, scale, a):
    from landmark2020.toy import make_synthetic_gldv2
    d = _data(work)
    if d.exists(): shutil.rmtree(d)
    st.time('make_synthetic_gldv2', make_synthetic_gldv2, d, scale=scale, seed=0)
    m = json.loads((d/'synthetic_meta.json').read_text())['counts']
    kb = int(subprocess.run(['du', '-sk', str(d)], capture_output=True, text=True).stdout.split()[0])
    st.notes.append(f"{m['train']:,} train rows ({m['clean']:,} clean, {m['classes']:,} classes), {m['index']:,} index, "
                    f"{m['test']:,} test images; {kb/2**20:.2f} GiB on disk")
    return dict(counts=m, disk_gib=kb/2**20)

def st_lm_index(st, work, scale, a):
    from landmark2020.data import build_index, save_index, LandmarkData
    data = LandmarkData(_data(work))
    n = 0
    for split in ('train', 'index', 'test'):
        df = st.time(f'build_index {split}', build_index, data, split)
        save_index(df, work/f'index_{split}.parquet')
        bad = int((~df.ok).sum()); n += len(df)
        if bad: raise RuntimeError(f"lm_index: {bad} bad rows in {split}")
    st.notes.append(f"{n:,} files indexed (check=eoi, thread pool), all ok")

def st_train_frame(st, work, scale, a):
    import pandas as pd
    from landmark2020.data import LandmarkData, load_index, train_frame, build_subset
    data = LandmarkData(_data(work))
    idx = load_index(work/'index_train.parquet')
    df, lm = st.time('train_frame clean (+ index join, LabelMap, holdout)', train_frame, data, 'clean', index=idx)
    full = st.time('build_subset full (noisy flags)', build_subset, data, 'full')
    c2x = st.time('build_subset c2x', build_subset, data, 'c2x')
    st.time('LabelMap save + load', lambda: (lm.save(work/'labels.json'), type(lm).load(work/'labels.json')))
    df.drop(columns=['path']).to_parquet(work/'frame.parquet', index=False)
    full.to_parquet(work/'full.parquet', index=False)
    st.notes.append(f"clean {len(df):,} rows / {len(lm):,} classes; full {len(full):,} ({int(full.noisy.sum()):,} noisy); c2x {len(c2x):,}")

def st_sampler(st, work, scale, a):
    import pandas as pd, torch
    from landmark2020.loaders import BalancedSampler, GLDSampler, LandmarkBatchSampler, LandmarkDataset, make_loader
    from landmark2020.data import LandmarkData
    data = LandmarkData(_data(work))
    df = pd.read_parquet(work/'frame.parquet'); tr = df[~df.is_valid].reset_index(drop=True)
    full = pd.read_parquet(work/'full.parquet')
    cc = pd.read_csv(_data(work)/'train_label_to_country.csv')
    cont = full.landmark_id.map(dict(zip(cc.landmark_id, cc.continent)))
    bs = 64
    def plan(sampler):
        b = LandmarkBatchSampler(sampler, bs); return b.global_batches(0)
    gb = st.time('epoch plan: balanced sampler (order + batches)', lambda: plan(BalancedSampler(tr.label.to_numpy(), seed=0)))
    gg = st.time('epoch plan: continent-aware (gld) sampler', lambda: plan(GLDSampler(cont, full.noisy.to_numpy(), seed=0)))
    paths = data.paths(tr.id, 'train', relative=True)
    ds = LandmarkDataset(data.root, paths, tr.label.to_numpy(), [(64, 64)], 'soft')
    bsamp = LandmarkBatchSampler(BalancedSampler(tr.label.to_numpy(), seed=0), bs)
    def first():
        dl = make_loader(ds, bsamp, workers=2, seed=0)
        it = iter(dl); x, y = next(it); del it
        return x
    x = st.time('first batch from the DataLoader (2 workers, 64 x 64 px, batch 64)', first)
    st.notes.append(f"{len(gb):,} balanced / {len(gg):,} gld batches of {bs}; first batch {tuple(x.shape)}")

def st_train_step(st, work, scale, a):
    import torch
    from landmark2020.data import LabelMap
    from landmark2020.model import create_landmark_model
    from landmark2020.training import load_checkpoint
    from landmark2020.core import atomic_path
    torch.manual_seed(0); torch.set_num_threads(max(1, os.cpu_count() or 1))
    lm = LabelMap.load(work/'labels.json'); n = len(lm)
    x = torch.randn(32, 3, 64, 64); y = torch.randint(0, n, (32,))
    for head in ('arcface', 'subcenter'):
        m = create_landmark_model('test_efficientnet', n, emb_dim=DIM, head=head)
        opt = torch.optim.SGD(m.parameters(), lr=0.01, momentum=0.9)
        def step():
            opt.zero_grad(set_to_none=True); loss = torch.nn.functional.cross_entropy(m(x, y), y); loss.backward(); opt.step()
        step()                                                       # warm-up (allocates the momentum buffers)
        t = _t(); [step() for _ in range(3)]; st.times[f'train step, {head} head ({n:,} classes), batch 32, 64 px'] = (time.perf_counter() - t)/3
        p = work/f'ckpt_{head}.pth'
        def write():
            with atomic_path(p) as tmp: torch.save(dict(format='landmark2020.checkpoint', version=1, model=m.state_dict(), opt=opt.state_dict()), tmp)
        st.time(f'checkpoint write, {head}', write)
        def resume():
            ck = load_checkpoint(p)
            m2 = create_landmark_model('test_efficientnet', n, emb_dim=DIM, head=head)
            m2.load_state_dict(ck['model']); o2 = torch.optim.SGD(m2.parameters(), lr=0.01, momentum=0.9); o2.load_state_dict(ck['opt'])
            return m2
        m2 = st.time(f'checkpoint resume (load + rebuild), {head}', resume)
        assert torch.equal(m2.head.weight, m.head.weight)
        st.notes.append(f"{head}: head {tuple(m.head.weight.shape)}, checkpoint {p.stat().st_size/2**20:.0f} MiB")
        p.unlink(); del m, m2, opt

def _counts(work): return json.loads((_data(work)/'synthetic_meta.json').read_text())['counts']

def st_emb_cache(st, work, scale, a):
    from landmark2020.inference import _write_shard, _merge, load_embeddings
    c = _counts(work)
    import pandas as pd
    ids = pd.read_parquet(work/'frame.parquet', columns=['id']).id.to_numpy(dtype=str)   # the clean training set
    out = work/'emb_train'
    if out.exists(): shutil.rmtree(out)
    out.mkdir(parents=True)
    S = 65536
    man = dict(n=len(ids), dim=DIM, extract=dict(shard_size=S, store_dtype='float32'))
    rng = np.random.default_rng(1)
    def write():
        for s in range(math.ceil(len(ids)/S)):
            f = _rand_unit(len(ids[s*S:(s + 1)*S]), seed=s)
            _write_shard(out, s, ids[s*S:(s + 1)*S], f, np.zeros(len(f), bool), 'float32')
    st.time(f'sharded write ({len(ids):,} x {DIM} float32, shards of {S:,})', write)
    st.time('merge shards into one memory-mapped embeddings.npy', _merge, out, man)
    for p in out.glob('shard_*.npz'): p.unlink()
    e = st.time('load_embeddings (memory map + ids)', load_embeddings, out)
    def scan():
        t = np.zeros(DIM, np.float64)
        for a_ in range(0, len(e.feats), 131072): t += e.feats[a_:a_ + 131072].sum(0)
        return t
    st.time('read every row of the memory map (chunked sum)', scan)
    ng = min(100_000, len(e.feats))
    st.time(f'gather {ng:,} random rows from the memory map', lambda: e.feats[np.sort(rng.choice(len(e.feats), ng, replace=False))].sum())
    st.notes.append(f"embeddings.npy {(out/'embeddings.npy').stat().st_size/2**30:.2f} GiB; peak RSS counts the mapped pages read")
    # the other splits' embeddings for the later stages (random unit vectors; not timed)
    for split, n, seed in (('test', c['test'], 7), ('index', c['index'], 8)):
        np.save(work/f'emb_{split}.npy', _rand_unit(n, seed=seed))

def _train_mm(work):
    from landmark2020.inference import load_embeddings
    return load_embeddings(work/'emb_train').feats

def _cap(st, name, n, cap):
    "How many queries to search: all, or `cap` (then the time is scaled to all and marked extrapolated)."
    if cap and n > cap:
        st.extrapolated.add(name); return cap, n/cap
    return n, 1.0

def st_knn(st, work, scale, a):
    from landmark2020.rerank import knn
    db = _train_mm(work); q = np.load(work/'emb_test.npy')
    for backend in ('faiss', 'torch'):
        name = f'knn top-10, {backend}, {len(q):,} x {len(db):,} x {DIM}'
        nq, f = _cap(st, name, len(q), a.knn_queries)
        t = _t(); s, i = knn(q[:nq], db, 10, backend=backend); st.times[name] = (time.perf_counter() - t)*f
        st.work[name] = len(q)*len(db)
        if backend == 'faiss': np.save(work/'knn_s.npy', s); np.save(work/'knn_i.npy', i)
        if f > 1: st.notes.append(f"{backend}: {nq:,} of {len(q):,} queries searched in {st.times[name]/f:.1f} s, scaled x{f:.1f}")

def st_recognition(st, work, scale, a):
    import pandas as pd
    from landmark2020.rerank import vote, nonlandmark_similarity, penalize_frequent
    db = _train_mm(work); q = np.load(work/'emb_test.npy'); nl = np.load(work/'emb_index.npy')   # the index as non-landmark set
    s, i = np.load(work/'knn_s.npy'), np.load(work/'knn_i.npy')
    if len(s) < len(q):                                           # the kNN stage searched a sample: tile its rows,
        n0 = len(s); r = np.arange(len(q)) % n0; s, i = s[r], i[r].copy()
        i[n0:] = np.random.default_rng(0).integers(0, len(db), (len(q) - n0, i.shape[1]))   # neighbours beyond it: random rows
        st.notes.append(f"the kNN stage searched {n0:,} queries: the other rows' neighbours are random train rows (a realistic count of used rows for B_j)")
    lab = pd.read_parquet(work/'frame.parquet', columns=['landmark_id']).landmark_id.to_numpy()
    k = 3
    used = st.time('used train rows (np.unique of the top-3)', lambda: np.unique(i[:, :k]))
    name = f'B_j: {len(used):,} used train rows vs {len(nl):,} non-landmarks (top-5)'
    nu, f = _cap(st, name, len(used), a.knn_queries and 2*a.knn_queries)
    pen = np.zeros(len(db), np.float32)
    t = _t(); pen[used[:nu]] = nonlandmark_similarity(np.ascontiguousarray(db[used[:nu]]), nl, 5); st.times[name] = (time.perf_counter() - t)*f
    st.work[name] = len(used)*len(nl)
    labels, conf = st.time(f'vote (top-{k}, penalty)', vote, s, i, lab, k, pen)
    name = f'C_i: {len(q):,} queries vs {len(nl):,} non-landmarks (top-10)'
    nq, f = _cap(st, name, len(q), a.knn_queries)
    t = _t(); ci = nonlandmark_similarity(q[:nq], nl, 10); st.times[name] = (time.perf_counter() - t)*f
    st.work[name] = len(q)*len(nl)
    ci = ci[np.arange(len(q)) % nq]
    conf = conf - ci
    conf = st.time('penalize_frequent', penalize_frequent, labels, conf)
    np.save(work/'rec_labels.npy', labels); np.save(work/'rec_conf.npy', conf)

def st_retrieval(st, work, scale, a):
    import pandas as pd
    from landmark2020.rerank import dba, alpha_qe, knn, k_reciprocal_rerank, landmark_country_rerank, country_codes
    q, x = np.load(work/'emb_test.npy'), np.load(work/'emb_index.npy')
    xd = st.time(f'alpha-DBA of the index ({len(x):,}, n=10)', dba, x, 3.0, 10, work=len(x)**2)
    n_all = len(q)
    nq, f = (a.ret_queries, n_all/a.ret_queries) if a.ret_queries and n_all > a.ret_queries else (n_all, 1.0)
    q = q[:nq]                                                    # every query-side step is linear in the queries
    def qtime(name, fn, *args, work=None):
        t = _t(); out = fn(*args); st.times[name] = (time.perf_counter() - t)*f
        if work: st.work[name] = work
        if f > 1: st.extrapolated.add(name)
        return out
    qe = qtime(f'alpha-QE of {n_all:,} queries (n=10)', alpha_qe, q, xd, 3.0, 10, work=n_all*len(x))
    s, i = qtime(f'knn top-100, {n_all:,} x {len(x):,}', knn, qe, xd, 100, work=n_all*len(x))
    if f > 1: st.notes.append(f"query-side steps (QE, kNN, re-rankings) run on {nq:,} of the {n_all:,} queries, times scaled x{f:.1f}")
    name = f'k-reciprocal re-ranking, {n_all:,} queries + {len(x):,} index (k1=10, k2=3)'
    nk = min(nq, a.kr_queries) if a.kr_queries else nq
    t = _t(); k_reciprocal_rerank(qe[:nk], xd, 100, 10, 3, 0.3); dt = time.perf_counter() - t
    st.times[name] = dt*(len(x) + n_all)/(len(x) + nk)
    if nk < n_all:
        st.extrapolated.add(name)
        st.notes.append(f"k-reciprocal: {nk:,} queries with the whole index ({len(x) + nk:,} points) in {dt:.1f} s, scaled to {len(x) + n_all:,} "
                        "points (linear in the points: its per-point loops; its two kNN over all points are quadratic, so this is a lower bound)")
    st.work[name] = (len(x) + n_all)**2
    db = _train_mm(work)
    lab = pd.read_parquet(work/'frame.parquet', columns=['landmark_id']).landmark_id.to_numpy()
    cc = pd.read_csv(_data(work)/'train_label_to_country.csv')
    ctry = st.time('country_codes of the train rows', country_codes, lab, cc)
    name = f'landmark-country references: knn of {n_all + len(x):,} queries+index vs {len(db):,} train'
    nr, f2 = _cap(st, name, len(q), a.knn_queries)
    t = _t()
    q_ref = knn(qe[:nr], db, 3); top1 = knn(xd[:min(len(x), nr)], db, 1)[1][:, 0]
    st.times[name] = (time.perf_counter() - t)*(n_all + len(x))/(nr + min(len(x), nr))
    st.work[name] = (n_all + len(x))*len(db)
    if nr < n_all: st.extrapolated.add(name)
    if f2 > 1:
        r = np.arange(len(q)) % nr; q_ref = (q_ref[0][r], q_ref[1][r])
    top1 = top1[np.arange(len(x)) % len(top1)]
    s2, i2 = qtime('landmark_country_rerank (alpha 1, beta 0.1, 3 votes)', landmark_country_rerank, s, i, q_ref, top1, lab, ctry)
    i2 = i2[np.arange(n_all) % nq]                                 # (sampled queries: rows tiled to every test id)
    np.save(work/'ret_idx.npy', i2)

def st_submission(st, work, scale, a):
    import pandas as pd
    from landmark2020.submission import write_recognition_submission, write_retrieval_submission, score_submission
    d = _data(work)
    te = pd.read_csv(d/'test.csv', dtype=str).id.to_numpy(dtype=object)
    ix = pd.read_csv(d/'index.csv', dtype=str).id.to_numpy(dtype=object)
    labels, conf = np.load(work/'rec_labels.npy'), np.load(work/'rec_conf.npy')
    rec = pd.DataFrame({'id': te, 'landmark_id': labels, 'score': conf})
    idx = np.load(work/'ret_idx.npy')
    ret = pd.DataFrame({'id': te, 'images': list(ix[idx])})
    pr, pt = work/'submission_recognition.csv', work/'submission_retrieval.csv'
    st.time(f'write_recognition_submission ({len(te):,} rows)', write_recognition_submission, rec, pr, test_ids=te)
    st.time(f'write_retrieval_submission ({len(te):,} x 100)', write_retrieval_submission, ret, pt, test_ids=te, index_ids=ix)
    g = st.time('score_submission recognition (GAP)', score_submission, pr, d/'recognition_solution_v2.1.csv', 'recognition')
    m = st.time('score_submission retrieval (mAP@100)', score_submission, pt, d/'retrieval_solution_v2.1.csv', 'retrieval')
    st.notes.append(f"files {pr.stat().st_size/2**20:.1f} + {pt.stat().st_size/2**20:.1f} MiB; scores of random vectors: {json.dumps(g, default=str)[:80]}...")

def run_stage(name, scale, work, a) -> dict:
    st = Stage()
    t = _t(); err = None
    try: globals()[f'st_{name}'](st, Path(work), scale, a)
    except Exception as e:
        import traceback; traceback.print_exc(); err = f"{type(e).__name__}: {e}"
    wall = time.perf_counter() - t
    me, ch = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    ru = max(me.ru_maxrss, ch.ru_maxrss)
    cpu = me.ru_utime + me.ru_stime + ch.ru_utime + ch.ru_stime
    return dict(stage=name, scale=scale, wall=wall, times=st.times, work=st.work, notes=st.notes, extrapolated=sorted(st.extrapolated),
                rss_gib=ru/2**20, cpu=cpu, error=err)

# ---------------------------------------------------------------------------------------------------------------
# the driver

def _spawn(name, scale, work, a) -> dict:
    cmd = [sys.executable, __file__, '--run-stage', name, '--scale', str(scale), '--work', str(work),
           '--knn-queries', str(a.knn_queries), '--kr-queries', str(a.kr_queries), '--ret-queries', str(a.ret_queries)]
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get('PYTHONPATH', ''), HF_HUB_OFFLINE='1')
    t = _t()
    try:
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=a.timeout, env=env)
    except subprocess.TimeoutExpired:
        return dict(stage=name, scale=scale, wall=time.perf_counter() - t, times={}, notes=[], extrapolated=[], rss_gib=None,
                    error=f"timed out after {a.timeout} s")
    lines = [l for l in p.stdout.splitlines() if l.startswith('{"stage"')]
    if p.returncode != 0 or not lines:
        return dict(stage=name, scale=scale, wall=time.perf_counter() - t, times={}, notes=[], extrapolated=[], rss_gib=None,
                    error=f"exit {p.returncode} (killed by signal {-p.returncode}" + (": out of memory?)" if p.returncode == -9 else ")") if p.returncode < 0 else
                          f"exit {p.returncode}: {p.stderr.strip()[-300:]}")
    r = json.loads(lines[-1]); r['process_wall'] = time.perf_counter() - t
    if r.get('error'): print(p.stderr[-2000:], file=sys.stderr)
    return r

def _exp(t1, t2, s1, s2):
    if not t1 or not t2 or t1 <= 0 or t2 <= 0: return None
    return math.log(t2/t1)/math.log(s2/s1)

def _label_key(k:str) -> str:
    "A timing's label with its numbers blanked, so the same timing matches across sizes."
    import re
    return re.sub(r'\d[\d,]*', 'N', k)

def _work_exponent(w1, w2, s1, s2):
    "How a timing's work grows with the size (log(w2/w1)/log(s2/s1)), or None when the work is not given or does not change."
    return math.log(w2/w1)/math.log(s2/s1) if w1 and w2 and w1 != w2 else None

def _fmt_t(x): return '' if x is None else (f'{x:.3g} s' if x < 100 else f'{x:,.0f} s')

def render(results:dict, scales:list, meta:dict) -> str:
    "The markdown section: per stage and timing, the time at each size, the growth exponents, the stage's peak RSS."
    L = [SECTION, '',
         f"Written by `bench/scale.py` (`make bench-scale`); last run {meta['date']}. Machine: {meta['machine']}. "
         "Data: `toy.make_synthetic_gldv2` at 1%, 10%, 100% of GLDv2's cardinalities (100% = 1,580,470 clean train "
         "images in 81,313 classes + 5% noisy rows, 76,176 index, 100,000 test); embeddings are random unit vectors "
         f"of dimension {DIM}. Each stage is a fresh process; RSS = its peak resident memory (`ru_maxrss`, incl. "
         "waited child processes and the memory-mapped pages it read). Exponent = log(t2/t1)/log(10) between sizes "
         "(1 = linear; n log n reads about 1.1 here; small times are noisy); where a timing's work is not proportional to the "
         "size (exact search: queries x database, both growing with n, so work ∝ n^2) the exponent per unit of work follows. "
         "**ext.** = measured on a sample of the queries and scaled linearly to all of them (exact kNN is linear in the "
         "queries for a fixed database). Empty cells: not run at that size.", '',
         '| stage | timing | ' + ' | '.join(f'{s:g}×' for s in scales) + ' | exp. 1%→10% | exp. 10%→100% | peak RSS ' + ' / '.join(f'{s:g}×' for s in scales) + ' |',
         '|---|---|' + '---|'*len(scales) + '---|---|---|']
    notes = []
    for name in STAGES:
        rs = {s: results.get(f'{name}@{s:g}') for s in scales}
        if not any(rs.values()): continue
        norm = _label_key
        keys, shown = [], {}
        for r in rs.values():                                   # the label as the largest size shows it
            for k in (r or {}).get('times', {}):
                if norm(k) not in keys: keys.append(norm(k))
                shown[norm(k)] = k
        rss = ' / '.join('' if not r or r.get('rss_gib') is None else f"{r['rss_gib']:.2f} GiB" for r in rs.values())
        for r in rs.values():
            if r and r.get('error'): notes.append(f"* `{name}` at {r['scale']:g}×: **failed**: {r['error']}")
            if r and r.get('notes'): notes.append(f"* `{name}` at {r['scale']:g}×: " + '; '.join(r['notes']))
        for k in keys:
            cells, vals, works = [], [], []
            for s, r in rs.items():
                v = w = None
                if r:
                    hit = [kk for kk in r.get('times', {}) if norm(kk) == k]
                    v = r['times'][hit[0]] if hit else None
                    w = r.get('work', {}).get(hit[0]) if hit else None
                    if v is not None and hit[0] in r.get('extrapolated', []): cells.append(_fmt_t(v) + ' ext.')
                    else: cells.append(_fmt_t(v))
                else: cells.append('')
                vals.append(v); works.append(w)
            ex = []
            for j in range(len(scales) - 1):
                e = _exp(vals[j], vals[j + 1], scales[j], scales[j + 1])
                wr = _work_exponent(works[j], works[j + 1], scales[j], scales[j + 1])
                if e is not None and wr:
                    ex.append(f'{e:.2f} (work ∝ n^{wr:.0f}: {e/wr:.2f} per unit)')
                else: ex.append(None if e is None else f'{e:.2f}')
            ex = (ex + [None, None])[:2]
            L.append(f"| `{name}` | {shown[k]} | " + ' | '.join(cells) + ' | ' + ' | '.join('' if e is None else e for e in ex)
                     + f' | {rss if k == keys[0] else ""} |')
        tot = [r['wall'] if r else None for r in rs.values()]
        cpu = ' / '.join('' if not r or r.get('cpu') is None else f"{r['cpu']:,.0f}" for r in rs.values())
        L.append(f"| `{name}` | *stage total (in-process wall{'; CPU s of the process: ' + cpu if cpu.strip(' /') else ''})* | " + ' | '.join(_fmt_t(v) for v in tot) + ' | '
                 + ' | '.join('' if e is None else f'{e:.2f}' for e in ([_exp(tot[j], tot[j + 1], scales[j], scales[j + 1]) for j in range(len(scales) - 1)] + [None, None])[:2]) + ' |  |')
    L += ['', *summary(results, scales, meta), '', *notes, '']
    return '\n'.join(L)

def _unit_exponents(r1, r2, s1, s2):
    "Per timing present at both sizes: (label at s2, seconds at s2, growth exponent per unit of work)."
    out = []
    for k, v2 in (r2.get('times') or {}).items():
        k1 = next((kk for kk in (r1.get('times') or {}) if _label_key(kk) == _label_key(k)), None)
        if k1 is None: continue
        e = _exp(r1['times'][k1], v2, s1, s2)
        wr = _work_exponent((r1.get('work') or {}).get(k1), (r2.get('work') or {}).get(k), s1, s2)
        if e is not None: out.append((k, v2, e / wr if wr else e))
    return out

def summary(results:dict, scales:list, meta:dict) -> list:
    "The findings, computed from the table: completion, post-model peak RSS against 8 GiB, the fastest growth, the longest stage."
    big = max(scales)
    at = {n: results.get(f'{n}@{big:g}') for n in STAGES}
    failed = sorted(k for k, r in results.items() if r and r.get('error'))
    L = [f"**Findings (computed by the script from this table).** This invocation: {meta.get('ran', '?')} in "
         f"{meta.get('total_s', 0)/60:.1f} min of wall time (load average {meta.get('load_start', 0):.2f} at the start, "
         f"{meta.get('load_end', 0):.2f} at the end; 2 cores)."]
    L.append('* Completion: ' + ('every stage ran to the end at every size.' if not failed else f"**failed**: {', '.join(failed)}."))
    rss = {n: r['rss_gib'] for n, r in at.items() if n in POST_MODEL and r and r.get('rss_gib') is not None}
    if rss:
        n, v = max(rss.items(), key=lambda kv: kv[1])
        L.append(f"* Peak RSS of the post-model stages at {big:g}×: at most {v:.2f} GiB (`{n}`); goal 8 GiB: {'met' if v <= 8 else '**missed**'}.")
    if len(scales) > 1:
        s1 = sorted(scales)[-2]
        ex = [(n, k, v, e) for n in STAGES if results.get(f'{n}@{s1:g}') and at.get(n)
              for k, v, e in _unit_exponents(results[f'{n}@{s1:g}'], at[n], s1, big) if v >= 1.0]    # under 1 s: noise
        if ex:
            n, k, v, e = max(ex, key=lambda t: t[3])
            L.append(f"* Fastest growth {s1:g}×→{big:g}× per unit of work among timings of at least 1 s: {e:.2f} (`{n}`: {k}); "
                     f"n log n reads about 1.1, and exponents between two sizes on a shared machine carry about ±0.2 of noise.")
        tops = sorted(((v, n, k) for n in STAGES if at.get(n) for k, v in (at[n].get('times') or {}).items()), reverse=True)[:2]
        L.append('* Longest at ' + f'{big:g}×: ' + '; '.join(f"{k} (`{n}`) {v/60:,.0f} min{' (extrapolated)' if k in (at[n].get('extrapolated') or []) else ''}"
                                                           for v, n, k in tops) + ': exact search over the whole train set is the GPU\'s job (`bench/gpu_check.sh`).')
    return L

def write_results_md(section:str, path:Path):
    "Replace (or append) the rehearsal section of RESULTS.md, keeping every other section."
    text = path.read_text() if path.exists() else '# Benchmarks\n'
    if SECTION in text:
        a = text.index(SECTION)
        b = text.find('\n## ', a + len(SECTION))
        text = text[:a] + section.rstrip() + '\n' + (text[b:] if b >= 0 else '')
    else:
        text = text.rstrip() + '\n\n' + section.rstrip() + '\n'
    tmp = path.with_name(f'.{path.name}.tmp'); tmp.write_text(text); os.replace(tmp, path)

def _machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for l in open('/proc/cpuinfo'):
            if l.startswith('model name'): cpu = l.split(':', 1)[1].strip(); break
    except OSError: pass
    mem = os.sysconf('SC_PAGE_SIZE')*os.sysconf('SC_PHYS_PAGES')/2**30
    return f"{cpu}, {os.cpu_count()} cores, {mem:.0f} GiB RAM (shared with other jobs: see the load average {os.getloadavg()[0]:.2f})"

def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    ap.add_argument('--scales', default='0.01,0.1,1', help='comma-separated fractions of the real cardinalities')
    ap.add_argument('--stages', default=','.join(STAGES), help=f"comma-separated, from {','.join(STAGES)}")
    ap.add_argument('--work', default=None, help='working folder (default: $TMPDIR/lm_scale); data and caches live here')
    ap.add_argument('--knn-queries', type=int, default=2_000, help='search at most this many queries against the train set, then scale (0: all)')
    ap.add_argument('--kr-queries', type=int, default=2_000, help='k-reciprocal with at most this many queries, then scale (0: all)')
    ap.add_argument('--ret-queries', type=int, default=10_000, help='retrieval: QE, kNN and re-rankings on at most this many queries, then scale (0: all)')
    ap.add_argument('--timeout', type=int, default=3600, help='seconds per stage')
    ap.add_argument('--keep', action='store_true', help='keep the working folder (default: delete each size after its stages)')
    ap.add_argument('--no-write', action='store_true', help='print the table only (no bench/results/scale.json or RESULTS.md)')
    ap.add_argument('--out', default=str(ROOT/'bench'/'RESULTS.md'))
    ap.add_argument('--run-stage', help=argparse.SUPPRESS)
    ap.add_argument('--scale', type=float, help=argparse.SUPPRESS)
    a = ap.parse_args(argv)
    if a.run_stage:
        print(json.dumps(run_stage(a.run_stage, a.scale, a.work, a)), flush=True)
        return 0
    import tempfile
    scales = [float(s) for s in a.scales.split(',')]
    stages = [s for s in a.stages.split(',') if s]
    bad = [s for s in stages if s not in STAGES]
    if bad: ap.error(f"unknown stage(s) {bad} (known: {', '.join(STAGES)})")
    base = Path(a.work or Path(tempfile.gettempdir())/'lm_scale')
    jf = ROOT/'bench'/'results'/'scale.json'
    results = json.loads(jf.read_text()) if jf.exists() and not a.no_write else {}
    t_all = _t(); failed = []; load_start = os.getloadavg()[0]
    for s in scales:
        work = base/f's{s:g}'; work.mkdir(parents=True, exist_ok=True)
        todo = list(stages)
        if 'build' not in todo and not (work/'data'/'synthetic_meta.json').exists(): todo.insert(0, 'build')
        for name in [n for n in STAGES if n in todo]:
            print(f"[{time.strftime('%H:%M:%S')}] scale {s:g}: {name} ...", file=sys.stderr, flush=True)
            r = _spawn(name, s, work, a)
            results[f'{name}@{s:g}'] = r
            msg = f"  {r['wall']:.1f} s, peak RSS {r['rss_gib']:.2f} GiB" if r.get('rss_gib') is not None else ''
            print(msg + (f"  FAILED: {r['error']}" if r.get('error') else ''), file=sys.stderr, flush=True)
            if r.get('error'): failed.append(f'{name}@{s:g}')
        if not a.keep: shutil.rmtree(work, ignore_errors=True)
    if not a.keep and base.exists() and not any(base.iterdir()): base.rmdir()
    all_scales = sorted({r['scale'] for r in results.values()})
    meta = dict(date=time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime()), machine=_machine(), total_s=time.perf_counter() - t_all,
                ran=f"{len(stages)} stage(s) at {', '.join(f'{s:g}×' for s in scales)}", load_start=load_start, load_end=os.getloadavg()[0])
    text = render(results, all_scales, meta)
    print(text)
    print(f"total {time.perf_counter() - t_all:.0f} s", file=sys.stderr)
    if not a.no_write:
        jf.parent.mkdir(parents=True, exist_ok=True)
        jf.write_text(json.dumps(results, indent=1))
        write_results_md(text, Path(a.out))
        print(f"wrote {a.out} and {jf}", file=sys.stderr)
    return 1 if failed else 0

if __name__ == '__main__': sys.exit(main())
