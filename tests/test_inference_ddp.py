"""Embedding extraction under torchrun: 2 gloo processes on the CPU give the same file as 1 process, also when resuming.

Each rank embeds every 2nd missing shard and rank 0 gathers (`gather_object`) and writes them, then merges.
"""
import os, socket, subprocess, sys, shutil, textwrap
from pathlib import Path
import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]

SCRIPT = textwrap.dedent('''
    import sys, torch, torch.distributed as dist
    from landmark2020.model import load_landmark_model
    from landmark2020.data import LandmarkData
    from landmark2020.inference import ExtractConfig, embed_split
    torch.set_num_threads(1)
    model_dir, data_root, *outs = sys.argv[1:]
    if 'RANK' in __import__('os').environ: dist.init_process_group('gloo')
    model, data = load_landmark_model(model_dir), LandmarkData(data_root)
    for out in outs:
        emb = embed_split(model, data, 'test', out, ExtractConfig(size=64, shard_size=5, batch_size=3, scales=[0.707, 1.0], flip=True), progress=False)
        rank = dist.get_rank() if dist.is_initialized() else 0
        print(f"rank {rank}: {len(emb)} embeddings in {out}")
    if dist.is_initialized(): dist.destroy_process_group()
''')

def _free_port():
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0)); return s.getsockname()[1]

def _run(args, env_extra=None, torchrun=False):
    env = dict(os.environ, OMP_NUM_THREADS='1', HF_HUB_OFFLINE='1')
    cmd = [sys.executable] + (['-m', 'torch.distributed.run', '--nproc_per_node=2', f'--master_port={_free_port()}'] if torchrun else []) + args
    r = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
    return r.stdout

@pytest.fixture(scope='module')
def setup(tmp_path_factory):
    import torch
    from landmark2020.toy import make_toy_gldv2
    from landmark2020.model import create_landmark_model, save_landmark_model
    tmp = tmp_path_factory.mktemp('ddp')
    data = make_toy_gldv2(tmp/'toy')
    torch.manual_seed(0)
    save_landmark_model(create_landmark_model('test_efficientnet', n_classes=10, emb_dim=16).eval(), tmp/'model')
    (tmp/'extract.py').write_text(SCRIPT)
    _run([str(tmp/'extract.py'), str(tmp/'model'), str(data), str(tmp/'single')])
    return tmp, data

def _load(d):
    from landmark2020.inference import load_embeddings
    return load_embeddings(Path(d)/'test')

def test_two_ranks(setup):
    "One torchrun launch, two jobs: a fresh extraction, and the resume of a run killed after one of its shards."
    tmp, data = setup
    shutil.copytree(tmp/'single', tmp/'resume')
    d = tmp/'resume'/'test'
    for f in ['shard_00000.npz', 'shard_00002.npz', 'shard_00003.npz', 'embeddings.npy', 'ids.txt']: (d/f).unlink()
    kept = (d/'shard_00001.npz').stat().st_mtime_ns
    out = _run([str(tmp/'extract.py'), str(tmp/'model'), str(data), str(tmp/'two'), str(tmp/'resume')], torchrun=True)
    assert 'rank 0' in out and 'rank 1' in out
    a = _load(tmp/'single')
    assert len(a) > 10
    for name in ('two', 'resume'):
        b = _load(tmp/name)
        assert list(a.ids) == list(b.ids), name
        np.testing.assert_allclose(np.asarray(b.feats), np.asarray(a.feats), atol=1e-6, err_msg=name)
    assert len(list((tmp/'two'/'test').glob('shard_*.npz'))) == -(-len(a) // 5) >= 3   # several shards over both ranks
    assert (d/'shard_00001.npz').stat().st_mtime_ns == kept     # a finished shard is not redone
