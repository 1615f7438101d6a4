"""Resume after SIGKILL: a run killed mid-epoch and resumed with `lm_train --resume` ends with bit-identical weights.

Why exact: the data order is a function of (seed, epoch); every image has its own augmentation seed; the DataLoaders
use their own generators; a checkpoint holds model, optimizer (momentum buffers), GradScaler, step, position in the
epoch, the Recorder's smoothed loss and the python/numpy/torch RNG states; all runs use the same thread count.
The killed run also uses a DataLoader worker (the uninterrupted one does not): augmentation does not depend on it.
"""
import os, sys, signal, subprocess, time
from pathlib import Path
import pytest, torch, pandas as pd

ROOT = Path(__file__).resolve().parents[1]
ENV = dict(os.environ, OMP_NUM_THREADS='1', MKL_NUM_THREADS='1', HF_HUB_OFFLINE='1', PYTHONHASHSEED='0')
TRAIN = [str(Path(sys.executable).parent/'lm_train')]   # the console script (call_parse reads sys.argv)


def _args(toy, out, name, *extra):
    return [str(ROOT/'configs'/'smoke.yaml'), f'data.root={toy}', f'out={out}', f'name={name}', 'opt.epochs=2',
            'data.size=48', 'ckpt_every=1', 'progress=false', *extra]

def _weights(run):
    from safetensors.torch import load_file
    return load_file(str(Path(run)/'model'/'model.safetensors'))

def _ck(path):
    try: return torch.load(path, map_location='cpu', weights_only=True)
    except Exception: return None

def test_sigkill_mid_epoch_then_resume_is_bit_exact(toy, tmp_path):
    ref = subprocess.run(TRAIN + _args(toy, tmp_path, 'ref'), env=ENV, capture_output=True, text=True, timeout=300)
    assert ref.returncode == 0, ref.stderr[-3000:]
    p = subprocess.Popen(TRAIN + _args(toy, tmp_path, 'killed', 'data.workers=1'), env=ENV,
                         stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    ck_path, t0, killed_at = tmp_path/'killed'/'checkpoints'/'last.pth', time.time(), None
    try:
        while time.time() - t0 < 240 and p.poll() is None:
            ck = _ck(ck_path) if ck_path.exists() else None
            if ck and ck['epoch'] == 1 and ck['epoch_iter'] >= 1:       # inside the second epoch
                p.send_signal(signal.SIGKILL); killed_at = (ck['epoch'], ck['epoch_iter'], ck['step']); break
            time.sleep(0.02)
        p.wait(30)
    finally:
        if p.poll() is None: p.kill()
    assert killed_at is not None, f"the run ended before it could be killed: {p.stderr.read()[-2000:]}"
    assert p.returncode == -signal.SIGKILL
    ck = _ck(ck_path)
    assert ck['epoch'] == 1 and 1 <= ck['epoch_iter'] < 4, (ck['epoch'], ck['epoch_iter'])   # a mid-epoch checkpoint
    res = subprocess.run(TRAIN + ['--resume', str(tmp_path/'killed')], env=ENV, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr[-3000:]
    assert f"resuming at epoch 1 batch {ck['epoch_iter']}" in res.stderr
    a, b = _weights(tmp_path/'ref'), _weights(tmp_path/'killed')
    assert a.keys() == b.keys()
    diff = {k: (a[k].float() - b[k].float()).abs().max().item() for k in a if not torch.equal(a[k], b[k])}
    assert not diff, f"resumed weights differ from the uninterrupted run: {diff}"
    la, lb = pd.read_csv(tmp_path/'ref'/'log.csv'), pd.read_csv(tmp_path/'killed'/'log.csv')
    cols = ['epoch', 'train_loss', 'valid_loss', 'gap', 'map@100', 'step', 'lr']
    pd.testing.assert_frame_equal(la[cols], lb[cols])           # the log too, including the smoothed train loss
    ca, cb = torch.load(tmp_path/'ref'/'checkpoints'/'last.pth', weights_only=True), _ck(ck_path)
    for k in ca['opt']['state']:
        assert torch.equal(ca['opt']['state'][k]['momentum_buffer'], cb['opt']['state'][k]['momentum_buffer'])

def test_resume_refuses_a_changed_config_and_a_finished_run_is_not_retrained(toy, tmp_path):
    r = subprocess.run(TRAIN + ['--resume', str(tmp_path/'nothing')], env=ENV, capture_output=True, text=True)
    assert r.returncode == 2 and 'not a run folder' in r.stderr
    from landmark2020.training import resume_run
    from landmark2020.core import LandmarkError
    (tmp_path/'r').mkdir(); (tmp_path/'r'/'config.yaml').write_text('seed: 0\n')
    with pytest.raises(LandmarkError, match="only data.root"): resume_run(tmp_path/'r', ['opt.lr=1'])
