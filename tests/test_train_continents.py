"""The continent-aware sampler end to end: the toy builder's landmark->continent table (`data.continents`) feeds the
'gld' sampler through lm_train; each continent gets its share of every epoch and, within it, clean images
`clean_frac` of it; under torchrun (2 processes, gloo) the run equals one process. Asking for the sampler without the
table is an error."""
import os, sys, subprocess
from pathlib import Path
import numpy as np, pandas as pd, pytest, torch

ROOT = Path(__file__).resolve().parents[1]
ENV = dict(os.environ, OMP_NUM_THREADS='1', MKL_NUM_THREADS='1', HF_HUB_OFFLINE='1', PYTHONHASHSEED='0')
LM_TRAIN = str(Path(sys.executable).parent/'lm_train')


def _over(toy, out, name):
    return [f'data.root={toy}', f'out={out}', f'name={name}', 'opt.epochs=1', 'data.size=48', 'data.batch_size=8',
            'data.subset=all', 'data.sampler=gld', f'data.continents={toy}/train_landmark_continent.csv', 'data.clean_frac=0.7',
            'data.continent_ratios={Asia: 0.4, Europe: 0.3, Africa: 0.2, OTHER: 0.1}', 'model.freeze_bn=true', 'progress=false']

def test_the_sampler_draws_by_the_continent_table(toy, tmp_path):
    from landmark2020.training import load_train_config, training_table, make_sampler
    from landmark2020.data import LabelMap
    cfg = load_train_config(ROOT/'configs'/'smoke.yaml', _over(toy, tmp_path, 'x'))
    table = training_table(cfg)
    tr = table[~table.is_valid].reset_index(drop=True)
    s = make_sampler(cfg, tr, LabelMap.from_labels(tr.landmark_id).encode(tr.landmark_id.to_numpy()))
    cont = pd.read_csv(toy/'train_landmark_continent.csv').set_index('landmark_id').continent
    ratios = cfg.data.continent_ratios       # (the override is merged into the default ratios: 2% South America, ...)
    assert ratios['Asia'] == 0.4 and ratios['OTHER'] == 0.1
    c = tr.landmark_id.map(cont).where(lambda x: x.isin(list(ratios)), 'OTHER').to_numpy()
    noisy = tr.noisy.to_numpy(bool)
    total = sum(r for k, r in ratios.items() if (c == k).any())     # continents with no image pass their share on
    ratios = {k: r / total for k, r in ratios.items() if (c == k).any()}
    assert {'Asia', 'Europe', 'Africa'} <= set(ratios) and noisy.any() and (~noisy).any()
    for k, r in ratios.items():          # the probability of each continent, and of clean images within it
        m = c == k
        assert s.p[m].sum() == pytest.approx(r, abs=1e-9), k
        if (m & noisy).any() and (m & ~noisy).any(): assert s.p[m & ~noisy].sum() / s.p[m].sum() == pytest.approx(0.7), k
    draws = c[s.order(0)] if len(s) > 2000 else c[np.concatenate([s.order(e) for e in range(2000 // len(s) + 1)])]
    for k, r in ratios.items(): assert abs((draws == k).mean() - r) < 0.06, (k, (draws == k).mean())   # and the draws follow

def test_gld_without_a_table_is_an_error(toy, tmp_path):
    r = subprocess.run([LM_TRAIN, str(ROOT/'configs'/'smoke.yaml'), f'data.root={toy}', f'out={tmp_path}', 'data.sampler=gld'],
                       env=ENV, capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and "config key 'data.continents'" in r.stderr, r.stderr[-1500:]
    r = subprocess.run([LM_TRAIN, str(ROOT/'configs'/'smoke.yaml'), f'data.root={toy}', f'out={tmp_path}', 'data.sampler=gld',
                        f'data.continents={tmp_path}/none.csv'], env=ENV, capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and 'file not found' in r.stderr, r.stderr[-1500:]

def test_gld_under_torchrun_equals_one_process(toy, tmp_path):
    from safetensors.torch import load_file
    cfg = str(ROOT/'configs'/'smoke.yaml')
    one = subprocess.run([LM_TRAIN, cfg, *_over(toy, tmp_path, 'one')], env=ENV, capture_output=True, text=True, timeout=300)
    assert one.returncode == 0, one.stderr[-3000:]
    two = subprocess.run([sys.executable, '-m', 'torch.distributed.run', '--standalone', '--nproc_per_node=2', '--no-python',
                          LM_TRAIN, cfg, *_over(toy, tmp_path, 'two')], env=ENV, capture_output=True, text=True, timeout=300)
    assert two.returncode == 0, two.stderr[-4000:]
    assert '2 process(es) on cpu' in two.stderr
    a, b = (load_file(str(tmp_path/n/'model'/'model.safetensors')) for n in ('one', 'two'))
    for k in a:
        if a[k].is_floating_point() and a[k].numel() > 1: torch.testing.assert_close(b[k], a[k], atol=1e-5, rtol=1e-4, msg=lambda m: f"{k}: {m}")
