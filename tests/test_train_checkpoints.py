"""Checkpoints users expect: best.pth / model_best by a validation metric, per-epoch copies (keep_last), an EMA of the
weights (timm ModelEmaV3) checked against a plain transcription of the EMA formula, an interrupted run resumed to the
same weights, EMA and best, and lm_predict's `checkpoint=last|best|ema`."""
import shutil
from pathlib import Path
import pandas as pd, pytest, torch
from fastai.callback.core import Callback

ROOT = Path(__file__).resolve().parents[1]
torch.set_num_threads(1)


def _cfg(toy, out, name, *extra):
    from landmark2020.training import load_train_config
    return load_train_config(ROOT/'configs'/'smoke.yaml', [f'data.root={toy}', f'out={out}', f'name={name}', 'data.size=32',
                                                           'progress=false', *extra])

class _Weights(Callback):
    "Keep a copy of the model's state after every optimizer step."
    order = 13
    def __init__(self, store): self.store = store
    def after_step(self): self.store.append({k: v.detach().clone() for k, v in self.learn.model.state_dict().items()})

def test_best_keep_last_and_ema(toy, tmp_path, monkeypatch):
    import landmark2020.training as T
    from landmark2020.model import load_landmark_model
    steps, orig = [], T.extra_callbacks
    monkeypatch.setattr(T, 'extra_callbacks', lambda *a, **k: orig(*a, **k) + [_Weights(steps)])
    run = T.train(_cfg(toy, tmp_path, 'r', 'opt.epochs=3', 'keep_last=2', 'ema=0.8', 'best_metric=valid_loss'))
    ck = run/'checkpoints'
    assert sorted(p.name for p in ck.iterdir()) == ['best.pth', 'epoch_002.pth', 'epoch_003.pth', 'last.pth']
    log = pd.read_csv(run/'log.csv')
    best = T.load_checkpoint(ck/'best.pth')
    assert best['epoch'] == int(log.valid_loss.idxmin()) + 1                      # the epoch with the lowest valid_loss
    assert best['best'] == dict(metric='valid_loss', value=pytest.approx(log.valid_loss.min()), epoch=int(log.valid_loss.idxmin()))
    mb = load_landmark_model(run/'model_best').state_dict()
    assert all(torch.equal(mb[k], v) for k, v in best['model'].items())
    assert T.load_checkpoint(ck/'epoch_003.pth')['step'] == T.load_checkpoint(ck/'last.pth')['step'] == len(steps)
    # EMA: e_1 = w_1 (ModelEmaV3 copies at the first step), e_t = d e_{t-1} + (1 - d) w_t for floats, buffers too
    e = {k: v.clone() for k, v in steps[0].items()}
    for w in steps[1:]:
        for k, v in w.items(): e[k] = 0.8 * e[k] + 0.2 * v if v.is_floating_point() else v.clone()
    ema = load_landmark_model(run/'model_ema').state_dict()
    for k, v in e.items(): torch.testing.assert_close(ema[k], v, rtol=1e-5, atol=1e-6, msg=k)
    assert not torch.equal(ema['neck.fc.weight'], load_landmark_model(run/'model').state_dict()['neck.fc.weight'])
    torch.testing.assert_close(T.load_checkpoint(ck/'last.pth')['ema']['neck.fc.weight'], ema['neck.fc.weight'])

class _Stop(Exception): pass
class _StopAt(Callback):
    "Stop the fit right after the mid-epoch checkpoint of step `n` (as a kill would)."
    order = 70
    def __init__(self, n): self.n = n
    def after_batch(self):
        if self.training and self.learn.step == self.n: raise _Stop('interrupted')

def test_interrupted_run_resumes_weights_ema_and_best_exactly(toy, tmp_path, monkeypatch):
    import landmark2020.training as T
    extra = ['opt.epochs=2', 'ckpt_every=1', 'ema=0.9', 'ema_warmup=true', 'keep_last=1']
    ref = T.train(_cfg(toy, tmp_path, 'ref', *extra))
    orig = T.extra_callbacks
    monkeypatch.setattr(T, 'extra_callbacks', lambda *a, **k: orig(*a, **k) + [_StopAt(6)])
    with pytest.raises(_Stop): T.train(_cfg(toy, tmp_path, 'cut', *extra))
    ck = T.load_checkpoint(tmp_path/'cut'/'checkpoints'/'last.pth')
    assert (ck['epoch'], ck['epoch_iter'], ck['step']) == (1, 2, 6) and 'ema' in ck and ck['best']['epoch'] == 0
    monkeypatch.setattr(T, 'extra_callbacks', orig)
    T.resume_run(tmp_path/'cut')
    a, b = (T.load_checkpoint(r/'checkpoints'/'last.pth') for r in (ref, tmp_path/'cut'))
    for key in ('model', 'ema'):
        diff = [k for k in a[key] if not torch.equal(a[key][k], b[key][k])]
        assert not diff, f"{key} differs after resume: {diff[:5]}"
    assert a['best'] == b['best']
    ba, bb = (T.load_checkpoint(r/'checkpoints'/'best.pth') for r in (ref, tmp_path/'cut'))
    assert ba['step'] == bb['step'] and all(torch.equal(ba['model'][k], bb['model'][k]) for k in ba['model'])
    # a run resumed with EMA switched on has no EMA to continue
    from landmark2020.core import LandmarkError
    with pytest.raises(LandmarkError, match='no EMA weights'): T.extra_callbacks(T.load_train_config(overrides=['ema=0.9']), ref, 0, {'step': 1})

def test_lm_predict_picks_last_best_or_ema(toy, tmp_path):
    import landmark2020.training as T
    from landmark2020.inference import _load_runs, load_predict_config
    from landmark2020.model import load_landmark_model
    from landmark2020.core import LandmarkError
    run = T.train(_cfg(toy, tmp_path, 'p', 'opt.epochs=1', 'ema=0.5'))
    for which, folder in (('last', 'model'), ('best', 'model_best'), ('ema', 'model_ema')):
        cfg = load_predict_config(overrides=[f'checkpoint={which}'])
        (r, m), = _load_runs([run], cfg.checkpoint)
        want = load_landmark_model(run/folder).state_dict()
        assert all(torch.equal(v, want[k]) for k, v in m.state_dict().items()), which
    with pytest.raises(LandmarkError, match="config key 'checkpoint'"): load_predict_config(overrides=['checkpoint=swa'])
    shutil.rmtree(run/'model_ema')
    with pytest.raises(LandmarkError, match='no model_ema/'): _load_runs([run], 'ema')
