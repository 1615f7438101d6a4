"""Memory bounds of the search and re-ranking on a memory-mapped database, measured (peak RSS of a fresh process).

`knn` streams the database in chunks of `chunk_mb` and keeps every block of similarities within `chunk_mb` too,
and `k_reciprocal_rerank` keeps only sparse neighbourhoods. Here the sizes are chosen so that a dense
similarity matrix would need gigabytes, while the peak may grow by a few tens of MB; the results are also
checked against a direct numpy computation on some rows (exact, not just small).
"""
import os, subprocess, sys, textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

SCRIPT = textwrap.dedent('''
    import resource, sys, json, numpy as np
    from landmark2020.rerank import knn, k_reciprocal_rerank, l2n
    peak = lambda: resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024        # MB (ru_maxrss is in KB)
    path = sys.argv[1]
    nd, dim, nq, k = 1_000_000, 8, 500, 10
    rng = np.random.default_rng(0)
    mm = np.lib.format.open_memmap(path, mode='w+', dtype=np.float32, shape=(nd, dim))
    for a in range(0, nd, 100_000): mm[a:a + 100_000] = l2n(rng.standard_normal((100_000, dim)))
    mm.flush(); del mm
    db = np.load(path, mmap_mode='r')                        # 32 MB on disk; 500 x 1M similarities = 2 GB dense
    q = l2n(rng.standard_normal((nq, dim)))
    knn(q[:2], db[:1000], 2); knn(q[:2], db[:1000], 2, backend='torch')             # warm up both backends
    g = l2n(rng.standard_normal((20_000, 16))); qk = l2n(g[:200] + .1 * rng.standard_normal((200, 16)))
    k_reciprocal_rerank(qk[:2], g[:50], k=5, k1=4, k2=2)
    out = {}
    base = peak()
    sf, i_f = knn(q, db, k, backend='faiss', chunk_mb=8)
    out['faiss'] = peak() - base
    st, i_t = knn(q, db, k, backend='torch', chunk_mb=8)
    out['torch'] = peak() - base
    sk, ik = k_reciprocal_rerank(qk, g, k=100, k1=10, k2=3, chunk_mb=8)   # dense: 3 matrices of 20,200^2 floats = 4.9 GB
    out['k_reciprocal'] = peak() - base
    ref = np.asarray(q[:20] @ np.asarray(db).T)
    out['same_faiss'] = bool((i_f[:20] == np.argsort(-ref, 1, kind='stable')[:, :k]).all())
    out['same_torch'] = bool((i_t == i_f).all() and np.abs(st - sf).max() < 1e-6)
    out['kr_shape'] = list(ik.shape); out['kr_valid'] = bool((ik >= 0).all() and (ik < len(g)).all())
    print(json.dumps(out))
''')

def test_knn_and_k_reciprocal_memory_bounded(tmp_path):
    import json
    (tmp_path/'mem.py').write_text(SCRIPT)
    env = dict(os.environ, OMP_NUM_THREADS='2', HF_HUB_OFFLINE='1')
    r = subprocess.run([sys.executable, str(tmp_path/'mem.py'), str(tmp_path/'db.npy')], capture_output=True, text=True,
                       env=env, timeout=300, cwd=ROOT)
    assert r.returncode == 0, r.stdout + r.stderr
    out = json.loads(r.stdout.strip().splitlines()[-1])
    assert out['same_faiss'] and out['same_torch'], out
    assert out['kr_shape'] == [200, 100] and out['kr_valid'], out
    # the database file itself (32 MB) may become resident; a dense similarity matrix would add >= 2,000 MB
    for name in ('faiss', 'torch', 'k_reciprocal'): assert out[name] < 150, (name, out)
