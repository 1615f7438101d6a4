"""`make demo` claims that fine-tuning beats the zero-shot ImageNet model on both tasks. This runs the default demo
(the same settings as `make demo`, a report folder of its own, the dataset cache in the repo's `data/`) and checks the
claim on the official metrics of its own report. The harder evaluations of the report (distractor-heavy, unseen
views) and the '+ spatial' rows are left out here (`hard=[] spatial=[]`): their figures are reported, not promised. About 5-8 minutes on 2 CPU cores (the
first run on a machine also downloads the Debian photos, about 240 MB)."""
import json, os, shutil, subprocess, sys
from pathlib import Path
import pytest

ROOT = Path(__file__).resolve().parents[1]
MARGIN = {'GAP': 0.05, 'mAP@100': 0.2}       # what the README promises: fine-tuned minus zero-shot, at least

@pytest.mark.skipif(shutil.which('apt-get') is None, reason="the demo's Debian photos need apt-get download")
def test_demo_finetuning_beats_zero_shot(tmp_path):
    out = tmp_path/'demo_out'
    r = subprocess.run([str(Path(sys.executable).parent/'lm_demo'), f'out={out}', 'progress=false', 'fallback=false', 'hard=[]', 'spatial=[]'],
                       cwd=ROOT, capture_output=True, text=True, env=dict(os.environ, HF_HUB_OFFLINE='1'), timeout=2400)
    assert r.returncode == 0, r.stderr[-3000:]
    s = json.loads((out/'summary.json').read_text())
    rows = s['scores']                                   # model -> GAP, mAP@100, ... as in report.md's table
    zs, ft = rows['zero-shot'], rows['fine-tuned']
    for m, d in MARGIN.items():
        assert ft[m] - zs[m] >= d, f"{m}: fine-tuned {ft[m]:.4f} vs zero-shot {zs[m]:.4f} (need +{d})"
    assert (out/'report.md').exists()
