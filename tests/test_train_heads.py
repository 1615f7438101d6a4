"""Every head and loss of the registries trains through `lm_train`'s code path on the toy data: a few steps of
configs/smoke.yaml (a tiny timm test model) with only `model.head`, `model.margins` or `loss.*` changed, and the
training loss falls. Also: a key the head does not use stops the run, and every shipped recipe names its weights."""
import os, sys, subprocess
from pathlib import Path
import numpy as np, pandas as pd, pytest, torch, yaml

ROOT = Path(__file__).resolve().parents[1]
SMOKE = ROOT/'configs'/'smoke.yaml'
ENV = dict(os.environ, OMP_NUM_THREADS='1', HF_HUB_OFFLINE='1')
torch.set_num_threads(1)      # tiny models: threads only add overhead on a shared CPU


FULL = ['data.subset=full', 'data.min_per_class=1']   # the toy's 'full' subset has classes of 5 and 6 images
CASES = {   # id: overrides
    'arcface': ['model.head=arcface'],
    'cosface': ['model.head=cosface', 'model.m=0.2'],
    'adacos': ['model.head=adacos'],
    'cosine': ['model.head=cosine', 'model.s=16'],
    'subcenter': ['model.head=subcenter', 'model.head_kwargs={k: 2}'],
    'arcface_easy_margin': ['model.head=arcface', 'model.head_kwargs={easy_margin: true}'],
    'dynamic_arcface': ['model.head=arcface', 'model.margins=dynamic', *FULL, 'model.head_kwargs={lam: 0.25, m_min: 0.1, m_max: 0.4}'],
    'dynamic_cosface_ab': ['model.head=cosface', 'model.margins=dynamic', *FULL, 'model.head_kwargs={a: 0.2, b: 0.1, lam: 0.5}'],
    'ce_label_smoothing': ['loss.name=ce', 'loss.label_smoothing=0.1'],
    'focal': ['loss.name=focal', 'loss.kwargs={gamma: 2.0}'],
    'focal_smoothing': ['loss.name=focal', 'loss.label_smoothing=0.1'],
    'dolg_subcenter': ['model.head=subcenter', 'model.kwargs={pool: dolg}', 'opt.lr=0.01'],   # (new conv layers: lr 0.05 diverges)
}

def _loss(model, xb, yb, loss_func):
    "The training loss (margin included) of `model` on a fixed batch, in eval mode (no BatchNorm updates, no AdaCos update)."
    model.eval()
    with torch.no_grad(): return loss_func(model(xb, yb), yb).item()

@pytest.mark.parametrize('name', list(CASES))
def test_every_head_and_loss_trains(toy, tmp_path, name):
    from landmark2020.training import (load_train_config, training_table, build_model, build_dataloaders, make_learner,
                                    class_counts)
    from landmark2020.data import LabelMap
    from landmark2020.core import seed_everything
    cfg = load_train_config(SMOKE, [f'data.root={toy}', f'out={tmp_path}', f'name={name}', 'data.size=32', 'data.holdout=0',
                                    'opt.epochs=6', 'opt.lr=0.05', 'opt.warmup_epochs=0', 'progress=false', *CASES[name]])
    seed_everything(0)
    table = training_table(cfg)
    labels = LabelMap.from_labels(table.landmark_id)
    counts = class_counts(table, labels) if cfg.model.margins == 'dynamic' else None
    model = build_model(cfg, labels, counts=counts)
    if counts is not None:      # the margins follow the training table: rarer classes get larger margins
        m = model.head.margins.numpy()
        assert m.min() < m.max() and np.corrcoef(counts, m)[0, 1] < 0, (counts, m)
    dls, gal = build_dataloaders(cfg, table, labels, model.cfg['mean'], model.cfg['std'])
    learn = make_learner(cfg, model, dls, gal, tmp_path/name)
    xb, yb = next(iter(dls.plain_train()))
    before = _loss(model, xb, yb, learn.loss_func)
    learn.fit(cfg.opt.epochs)
    after = _loss(learn.model, xb, yb, learn.loss_func)
    assert np.isfinite(after) and after < 0.9 * before, f"{name}: loss {before:.3f} -> {after:.3f}"

def test_dynamic_margins_through_lm_train_resume_and_next_stage(toy, tmp_path):
    "lm_train computes the margins from the run's training table; resume keeps them; a next stage computes its own."
    from landmark2020.training import load_train_config, training_table, class_counts, load_checkpoint
    from landmark2020.data import LabelMap
    from landmark2020.losses import dynamic_margins
    from landmark2020.model import load_landmark_model
    dyn = ['model.margins=dynamic', 'model.head_kwargs={lam: 0.5, m_min: 0.1, m_max: 0.45}']
    base = [str(SMOKE), f'data.root={toy}', f'out={tmp_path}', 'data.size=32', 'opt.epochs=1', 'progress=false', *FULL, *dyn]
    r = subprocess.run([str(Path(sys.executable).parent/'lm_train'), *base, 'name=one'], env=ENV, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    cfg = load_train_config(tmp_path/'one'/'config.yaml')
    table = training_table(cfg)
    counts = class_counts(table, LabelMap.load(tmp_path/'one'/'labels.json'))
    want = dynamic_margins(counts, m_min=0.1, m_max=0.45, lam=0.5)
    m = load_landmark_model(tmp_path/'one'/'model')
    torch.testing.assert_close(m.head.margins, want)
    torch.testing.assert_close(load_checkpoint(tmp_path/'one'/'checkpoints'/'last.pth')['model']['head.margins'], want)
    # a finished run resumed keeps the margins of its checkpoint
    r = subprocess.run([str(Path(sys.executable).parent/'lm_train'), '--resume', str(tmp_path/'one')], env=ENV, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    torch.testing.assert_close(load_landmark_model(tmp_path/'one'/'model').head.margins, want)
    # the next stage (subset 'all': other counts) computes its margins from its own training table
    r = subprocess.run([str(Path(sys.executable).parent/'lm_train'), *base, 'name=two', 'data.subset=all',
                        f'init_from={tmp_path/"one"}'], env=ENV, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    cfg2 = load_train_config(tmp_path/'two'/'config.yaml')
    c2 = class_counts(training_table(cfg2), LabelMap.load(tmp_path/'two'/'labels.json'))
    torch.testing.assert_close(load_landmark_model(tmp_path/'two'/'model').head.margins, dynamic_margins(c2, m_min=0.1, m_max=0.45, lam=0.5))

def test_a_key_the_head_does_not_use_stops_lm_train(toy, tmp_path):
    for extra, msg in ((['model.head=adacos', 'model.m=0.3'], "config key 'model.m': head 'adacos' does not take 'm'"),
                       (['model.head=cosine', 'model.head_kwargs={easy_margin: true}'], "head 'cosine' does not take 'easy_margin'"),
                       (['loss.name=ce', 'loss.kwargs={gamma: 2}'], "loss 'ce' does not take 'gamma'"),
                       (['model.pretrained=timm'], "not in the Hugging Face cache")):
        r = subprocess.run([str(Path(sys.executable).parent/'lm_train'), str(SMOKE), f'data.root={toy}', f'out={tmp_path}', *extra],
                           env=dict(ENV, HF_HUB_CACHE=str(tmp_path/'empty_hub')), capture_output=True, text=True, timeout=120)
        assert r.returncode == 2 and msg in r.stderr, (extra, r.stderr[-1500:])
        assert len(r.stderr.strip().splitlines()) <= 3, r.stderr   # one line (plus library warnings)

def _chain(p):
    "The YAML files a config reads, itself first, following `base:`."
    out = [Path(p)]
    while (b := yaml.safe_load(out[-1].read_text()).get('base')): out.append(out[-1].parent/b)
    return out

@pytest.mark.parametrize('path', sorted((ROOT/'configs').glob('*.yaml')), ids=lambda p: p.stem)
def test_every_recipe_names_its_weights(path):
    "Each shipped recipe says where its weights come from (or `none`) in its own YAML chain, not by the default."
    from landmark2020.training import load_train_config
    named = [p for p in _chain(path) if 'pretrained' in (yaml.safe_load(p.read_text()).get('model') or {})]
    assert named, f"{path.name}: no model.pretrained"
    cfg = load_train_config(path)
    assert cfg.model.pretrained, path
    if cfg.init_from: assert str(cfg.model.pretrained).lower() == 'none', f"{path.name}: init_from gives the weights"

ARCHS = {   # the 2021 winners' architectures, tiny: DOLG on a timm CNN, and a hybrid CNN + ViT (ResNet stem, ViT-Tiny)
    'dolg': ['model.kwargs={pool: dolg}', 'data.size=32'],
    'hybrid_vit': ['model.arch=vit_tiny_r_s16_p8_224', 'model.kwargs={pool: timm, img_size: 64}', 'data.size=64'],
}

@pytest.mark.parametrize('name', list(ARCHS))
def test_architecture_trains_saves_loads_packages_and_predicts(toy, tmp_path, name):
    "DOLG and a hybrid ViT through lm_train, reloaded from the run folder (same embeddings), packaged, and predicting from the package."
    from landmark2020.training import load_train_config, train
    from landmark2020.model import load_landmark_model, DOLG
    from landmark2020.inference import predict_recognition, load_predict_config
    from landmark2020.package import build_package, verify_package
    from landmark2020.data import LandmarkData
    run = train(load_train_config(SMOKE, [f'data.root={toy}', f'out={tmp_path}', f'name={name}', 'opt.epochs=1',
                                          'progress=false', *ARCHS[name]]))
    m = load_landmark_model(run/'model')
    if name == 'dolg':
        assert isinstance(m.pool, DOLG) and m.neck.fc.in_features == 2 * m.backbone.num_features
        assert m.pool.local_stage == -2 and m.pool.atrous.convs[0].in_channels == m.backbone.feature_info[-2]['num_chs']   # the paper's stage
    else: assert m.pool is None and m.cfg['arch'] == 'vit_tiny_r_s16_p8_224' and m.cfg['timm_kwargs'] == {'img_size': 64}
    size = m.cfg['input_size'][0] if name == 'hybrid_vit' else 32
    x = torch.randn(2, 3, size, size)
    with torch.no_grad(): e1, e2 = m.embed(x), load_landmark_model(run/'model').embed(x)
    torch.testing.assert_close(e1, e2)
    build_package([run], tmp_path/'pkg', user='me', wheels={}, repo=ROOT)
    pkg = verify_package(tmp_path/'pkg')
    packaged = tmp_path/'pkg'/pkg['runs'][0]['path']
    with torch.no_grad(): torch.testing.assert_close(load_landmark_model(packaged/'model').embed(x), e1)
    cfg = load_predict_config(overrides=[f'extract.size={size}', 'extract.flip=true'])   # (a fixed-size ViT gets square inputs by itself)
    pred = predict_recognition([packaged], LandmarkData(toy), cfg, cache=tmp_path/'cache', progress=False)
    assert len(pred) == len(LandmarkData(toy).ids('test')) and pred.landmark_id.notna().any()
    if name == 'hybrid_vit':                       # other sizes are refused before any image is read, with the reason
        with pytest.raises(Exception, match='takes only 64 x 64 images'):
            predict_recognition([packaged], LandmarkData(toy), load_predict_config(overrides=['extract.scales=[0.707,1]']), cache=tmp_path/'c2', progress=False)
