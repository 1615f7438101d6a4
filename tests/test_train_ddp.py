"""DDP: `torchrun --nproc_per_node=2` (gloo, CPU) equals one process with the same global batch.

Each rank takes its half of every global batch (same images, same per-image augmentation seeds as the single process),
DDP averages the two half-batch mean gradients = the full-batch mean gradient. BatchNorm is frozen (`model.freeze_bn`)
because without SyncBatchNorm (CUDA only) DDP normalises each half with its own statistics, a real difference from
one process, not a rounding one. What remains is float summation order (all-reduce of two partial gradients vs one
sum over 8 samples), so the weights agree to a tolerance, not bitwise: measured max |diff| ~1e-7 on this run, the
assertion uses atol 1e-5 (relative 1e-4). The run also imprints the head (each process embeds its shard, the class
sums are all-reduced) and gives the head its own learning rate (two parameter groups), so both are checked under DDP.
"""
import os, sys, subprocess
from pathlib import Path
import pytest, torch

ROOT = Path(__file__).resolve().parents[1]
ENV = dict(os.environ, OMP_NUM_THREADS='1', MKL_NUM_THREADS='1', HF_HUB_OFFLINE='1', PYTHONHASHSEED='0')
LM_TRAIN = str(Path(sys.executable).parent/'lm_train')


def _args(toy, out, name):
    return [str(ROOT/'configs'/'smoke.yaml'), f'data.root={toy}', f'out={out}', f'name={name}', 'opt.epochs=1',
            'data.size=48', 'data.batch_size=8', 'model.freeze_bn=true', 'progress=false', 'data.augment=flip_pad_crop_erase',
            'model.imprint=true', 'opt.head_lr_mult=5']   # also: class sums all-reduced, two parameter groups

def _weights(run):
    from safetensors.torch import load_file
    return load_file(str(Path(run)/'model'/'model.safetensors'))

def test_torchrun_two_processes_equal_one_process(toy, tmp_path):
    one = subprocess.run([LM_TRAIN, *_args(toy, tmp_path, 'one')], env=ENV, capture_output=True, text=True, timeout=300)
    assert one.returncode == 0, one.stderr[-3000:]
    two = subprocess.run([sys.executable, '-m', 'torch.distributed.run', '--standalone', '--nproc_per_node=2', '--no-python',
                          LM_TRAIN, *_args(toy, tmp_path, 'two')], env=ENV, capture_output=True, text=True, timeout=300)
    assert two.returncode == 0, two.stderr[-4000:]
    assert '2 process(es) on cpu' in two.stderr
    assert 'head imprinted' in one.stderr and 'head imprinted' in two.stderr
    a, b = _weights(tmp_path/'one'), _weights(tmp_path/'two')
    assert a.keys() == b.keys()
    changed = [k for k in a if a[k].is_floating_point() and a[k].numel() > 1]
    worst = max((a[k] - b[k]).abs().max().item() for k in changed)
    print(f"max |w_ddp - w_single| = {worst:.3g}")
    for k in changed: torch.testing.assert_close(b[k], a[k], atol=1e-5, rtol=1e-4, msg=lambda m: f"{k}: {m}")
    ck = torch.load(tmp_path/'two'/'checkpoints'/'last.pth', weights_only=True)
    assert ck['step'] == torch.load(tmp_path/'one'/'checkpoints'/'last.pth', weights_only=True)['step'] == 4
    # and the weights did move: the comparison is not between two untouched initialisations
    from landmark2020.training import load_train_config, build_model
    from landmark2020.data import LabelMap
    from landmark2020.core import seed_everything
    cfg = load_train_config(ROOT/'configs'/'smoke.yaml', _args(toy, tmp_path, 'x')[1:])
    seed_everything(cfg.seed)                                   # as `train` does before building the model
    init = build_model(cfg, LabelMap.load(tmp_path/'one'/'labels.json')).state_dict()
    assert max((init[k] - a[k]).abs().max().item() for k in changed) > 1e-3
