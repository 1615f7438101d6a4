#!/usr/bin/env bash
# The GPU check (issue 16): one script, at most ~8 minutes on one GPU, printing one table.
#
#   bench/gpu_check.sh                 # on a CUDA machine after `make venv`
#   bench/gpu_check.sh --dry-run       # anywhere: the CPU-safe part, tiny sizes; the CUDA rows stay empty
#   bench/gpu_check.sh --out FILE.md   # also write the table to FILE.md (default: bench/results/gpu_check.md)
#
# Rows: the `#| cuda` notebook cells (tests/test_notebooks.py with LM_TEST_FLAGS=cuda, only the notebooks that have
# such cells); a fp16 and a bf16 training step of the demo model (tf_efficientnet_lite0, configs/demo.yaml's head and
# embedding) at 224 and 512 px (images/s, peak memory); extraction throughput of `model.embed` against timm's own
# plain forward of the same backbone, same run (target >= 0.8x); the training DataLoader's images/s (JPEG decode +
# augment, every CPU core) against the model's training images/s (is decode the bottleneck?); exact kNN on the GPU
# (faiss-gpu when the installed faiss has GPUs, else torch) against CPU faiss; NCCL init + all_reduce with world
# size 1 under torchrun. Nothing is downloaded (the model is built with random weights: speed does not depend on them).
# Environment: PY (default .venv/bin/python), TORCHRUN (default: torchrun beside PY).
set -u
cd "$(dirname "$0")/.."
DRY=0; OUT=bench/results/gpu_check.md
while [ $# -gt 0 ]; do
  case "$1" in
    --dry-run) DRY=1 ;;
    --out) OUT="$2"; shift ;;
    -h|--help) sed -n '2,17p' "$0"; exit 0 ;;
    *) echo "gpu_check.sh: unknown argument $1 (--dry-run, --out FILE)" >&2; exit 2 ;;
  esac
  shift
done
PY=${PY:-.venv/bin/python}
if [ ! -x "$PY" ] && ! command -v "$PY" >/dev/null 2>&1; then echo "gpu_check.sh: $PY not found (run make venv, or set PY)" >&2; exit 2; fi
TORCHRUN=${TORCHRUN:-$(dirname "$(command -v "$PY" || echo "$PY")")/torchrun}
export HF_HUB_OFFLINE=1 PYTHONUNBUFFERED=1 PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
WORK=$(mktemp -d "${TMPDIR:-/tmp}/lm_gpu_check.XXXXXX"); trap 'rm -rf "$WORK"' EXIT
ROWS=$WORK/rows.jsonl; : > "$ROWS"
T0=$(date +%s)
row() { # check device result value target seconds
  "$PY" -c 'import json,sys; print(json.dumps(dict(zip(["check","device","result","value","target","seconds"], sys.argv[1:]))))' "$@" >> "$ROWS"
}
CUDA=$("$PY" -c 'import torch; print(int(torch.cuda.is_available()))' 2>/dev/null || echo 0)
[ "$DRY" = 1 ] && CUDA=0
echo "gpu_check: dry_run=$DRY cuda=$CUDA python=$PY" >&2

# 1. the `#| cuda` notebook cells ------------------------------------------------------------------------------------
NBS=$("$PY" -c 'import json, glob, os
print(" ".join(os.path.basename(f)[:-6] for f in sorted(glob.glob("nbs/*.ipynb"))
               if any(c["cell_type"] == "code" and "".join(c["source"]).lstrip().startswith("#| cuda") for c in json.load(open(f))["cells"])))' 2>/dev/null)
K=$(echo $NBS | sed 's/ / or /g')
if [ -z "$NBS" ]; then row "notebooks with cuda-flagged cells" "-" "no notebook has cuda-flagged cells" "" "" ""
elif [ "$CUDA" = 1 ]; then
  t=$(date +%s)
  if LM_TEST_FLAGS=cuda timeout 200 "$PY" -m pytest tests/test_notebooks.py -q -p no:cacheprovider -k "$K" > "$WORK/nb.log" 2>&1
  then row "notebooks with cuda-flagged cells ($NBS)" "cuda" "passed" "$(tail -1 "$WORK/nb.log")" "pass" "$(( $(date +%s) - t ))"
  else row "notebooks with cuda-flagged cells ($NBS)" "cuda" "FAILED (exit $?)" "$(grep -m1 -E 'Error|assert' "$WORK/nb.log" | cut -c1-120)" "pass" "$(( $(date +%s) - t ))"; tail -40 "$WORK/nb.log" >&2
  fi
else
  n=$("$PY" -m pytest tests/test_notebooks.py -q -p no:cacheprovider --collect-only -k "$K" 2>/dev/null | grep -c '::test_notebook')
  row "notebooks with cuda-flagged cells ($NBS)" "cuda" "" "collected $n (not run without CUDA)" "pass" ""
fi

# 2-5. training steps, embed vs timm, the data loader, kNN ----------------------------------------------------------
cat > "$WORK/check.py" <<'PYEOF'
import json, os, sys, time, math
import numpy as np, torch
dry, rows_f, work = sys.argv[1] == '1', sys.argv[2], sys.argv[3]
cuda = torch.cuda.is_available() and not dry
dev = torch.device('cuda' if cuda else 'cpu')
def row(check, device, result='', value='', target='', seconds=''):
    with open(rows_f, 'a') as f: f.write(json.dumps(dict(check=check, device=device, result=result, value=value, target=target, seconds=seconds)) + '\n')
def section(f):
    t = time.time()
    try: f()
    except Exception as e:
        import traceback; traceback.print_exc()
        row(f.__name__, str(dev), f'FAILED: {type(e).__name__}: {str(e)[:100]}', '', '', f'{time.time() - t:.0f}')
    return f

import yaml
from types import SimpleNamespace
from landmark2020.model import create_landmark_model
demo = yaml.safe_load(open('configs/demo.yaml'))                  # (read directly: importing the trainer costs fastai's import time)
M = SimpleNamespace(**{'head_kwargs': {}, 'kwargs': {}, 's': 30.0, 'm': 0.3, 'neck_init': 'xavier', **demo['model']})
AUGMENT = demo['data'].get('augment', 'soft')
def demo_model(n_classes=1000):
    return create_landmark_model(M.arch, n_classes, emb_dim=M.emb_dim, head=M.head, head_kwargs=dict(s=M.s, m=M.m, **M.head_kwargs),
                                 neck_init=M.neck_init, **M.kwargs)
def sync():
    if cuda: torch.cuda.synchronize()

def train_speed(size, dtype, bs, steps, warm=2):
    torch.manual_seed(0)
    m = demo_model().to(dev).to(memory_format=torch.channels_last).train()
    opt = torch.optim.AdamW(m.parameters(), lr=1e-4)
    scaler = torch.amp.GradScaler(dev.type, enabled=dtype == torch.float16 and cuda)
    x = torch.randn(bs, 3, size, size, device=dev).to(memory_format=torch.channels_last); y = torch.randint(0, 1000, (bs,), device=dev)
    def step():
        opt.zero_grad(set_to_none=True)
        with torch.autocast(dev.type, dtype=dtype, enabled=dtype != torch.float32):
            loss = torch.nn.functional.cross_entropy(m(x, y), y)
        scaler.scale(loss).backward(); scaler.step(opt); scaler.update()
        return loss
    for _ in range(warm): step()
    sync()
    if cuda: torch.cuda.reset_peak_memory_stats()
    t = time.perf_counter()
    for _ in range(steps): loss = step()
    sync(); dt = time.perf_counter() - t
    mem = torch.cuda.max_memory_allocated()/2**30 if cuda else float('nan')
    assert torch.isfinite(loss), 'non-finite loss'
    return bs*steps/dt, mem

@section
def train_step():
    if cuda:
        for size, bs in ((224, 128), (512, 32)):
            for name, dt in (('fp16', torch.float16), ('bf16', torch.bfloat16)):
                t = time.time(); ips, mem = train_speed(size, dt, bs, 20)
                row(f'train step, {M.arch}, {name}, {size} px, batch {bs}', 'cuda', 'ok', f'{ips:,.0f} img/s, peak {mem:.1f} GiB', '', f'{time.time() - t:.0f}')
    else:
        t = time.time(); ips, _ = train_speed(32, torch.float32, 2, 1, warm=0)
        row(f'train step, {M.arch}, fp32, 32 px, batch 2 (code path only)', 'cpu', 'ok', f'{ips:,.1f} img/s', '', f'{time.time() - t:.0f}')
        for size in (224, 512):
            for name in ('fp16', 'bf16'): row(f'train step, {M.arch}, {name}, {size} px', 'cuda', '', '', '', '')

@section
def embed_vs_timm():
    import timm
    size, bs, reps = (224, 256, 20) if cuda else (32, 2, 1)
    m = demo_model().to(dev).eval()
    plain = timm.create_model(M.arch, pretrained=False, num_classes=0).to(dev).eval()
    x = torch.randn(bs, 3, size, size, device=dev)
    dt = torch.float16 if cuda else torch.bfloat16
    def ours():
        with torch.inference_mode(), torch.autocast(dev.type, dtype=dt): return m.embed(x)
    def theirs():
        with torch.inference_mode(), torch.autocast(dev.type, dtype=dt): return plain(x)
    res = {}
    for name, f in (('embed', ours), ('timm', theirs), ('embed2', ours), ('timm2', theirs)):
        f(); sync(); t = time.perf_counter()
        for _ in range(reps): f()
        sync(); res[name] = bs*reps/(time.perf_counter() - t)
    e, p = max(res['embed'], res['embed2']), max(res['timm'], res['timm2'])
    ok = e/p >= 0.8
    row(f"extraction: model.embed vs timm forward ({M.arch}, {str(dt).split('.')[1]}, {size} px, batch {bs})", dev.type,
        ('ok' if ok else 'BELOW TARGET') if cuda else 'code path only', f'{e:,.0f} vs {p:,.0f} img/s = {e/p:.2f}x', '>= 0.8x', '')
    if not cuda: row('extraction: model.embed vs timm forward (224 px)', 'cuda', '', '', '>= 0.8x', '')

def _jpegs(n, w=800, h=600):
    "`n` distinct 800x600 photo-like JPEGs (q90, ~100 KB) under WORK/jpegs; returns their relative paths."
    from PIL import Image
    d = os.path.join(work, 'jpegs'); os.makedirs(d, exist_ok=True)
    rng = np.random.default_rng(0); out = []
    for i in range(n):
        a = np.asarray(Image.fromarray(rng.integers(0, 256, (6, 8, 3), dtype=np.uint8)).resize((w, h), Image.BICUBIC)).astype(np.int16)
        a = np.clip(a + rng.integers(-20, 21, a.shape), 0, 255).astype(np.uint8)    # texture: a realistic JPEG size
        p = os.path.join(d, f'{i:04d}.jpg'); Image.fromarray(a).save(p, quality=90); out.append(f'jpegs/{i:04d}.jpg')
    return out

@section
def data_loader():
    from landmark2020.loaders import LandmarkDataset, LandmarkBatchSampler, RandomSampler, make_loader
    n, files, bs = (6144, 256, 128) if cuda else (16, 16, 8)
    uniq = _jpegs(files)
    paths = [uniq[i % files] for i in range(n)]                      # files repeat (from the page cache): decode is what is timed
    workers = min(16, os.cpu_count() or 1)
    ds = LandmarkDataset(work, paths, np.zeros(n, np.int64), [(224, 224)], AUGMENT)
    dl = make_loader(ds, LandmarkBatchSampler(RandomSampler(n, 0), bs), workers=workers, pin_memory=cuda)
    it = iter(dl); next(it)                                           # workers started
    t = time.perf_counter(); k = bs
    for xb, yb in it:
        xb = xb.to(dev, non_blocking=True); k += len(xb)
    sync(); dt = time.perf_counter() - t
    ips = (k - bs)/dt
    row(f'training DataLoader: {n:,} x 800x600 JPEG (q90) -> 224 px {AUGMENT!r}, {workers} workers, batch {bs}', dev.type, 'ok',
        f'{ips:,.0f} img/s', '', f'{dt:.0f}')
    if cuda:
        mi, _ = train_speed(224, torch.bfloat16, 128, 10)
        row('data loader vs model (224 px, bf16 train step)', 'cuda', 'decode-bound' if ips < mi else 'model-bound',
            f'loader {ips:,.0f} vs model {mi:,.0f} img/s = {ips/mi:.2f}x', '>= 1x (else decode is the bottleneck)', '')
    else: row('data loader vs model (224 px, bf16 train step)', 'cuda', '', '', '>= 1x', '')

@section
def knn_check():
    from landmark2020.rerank import knn
    from landmark2020.core import import_faiss
    faiss = import_faiss()
    nq, nd = (10_000, 1_580_470) if cuda else (200, 5_000)
    rng = np.random.default_rng(0)
    db = rng.standard_normal((nd, 512), dtype=np.float32); db /= np.linalg.norm(db, axis=1, keepdims=True)
    q = rng.standard_normal((nq, 512), dtype=np.float32); q /= np.linalg.norm(q, axis=1, keepdims=True)
    t = time.perf_counter(); s0, i0 = knn(q, db, 100, backend='faiss'); tc = time.perf_counter() - t
    row(f'kNN top-100, CPU faiss ({os.cpu_count()} cores), {nq:,} x {nd:,} x 512', 'cpu', 'ok', f'{tc:.2f} s', '', '')
    if not cuda:
        t = time.perf_counter(); s1, i1 = knn(q, db, 100, backend='torch', device='cpu'); tt = time.perf_counter() - t
        row(f'kNN top-100, torch (cpu), {nq:,} x {nd:,} x 512', 'cpu', 'same top-1' if (i1[:, 0] == i0[:, 0]).mean() > 0.99 else 'DIFFERS', f'{tt:.2f} s', '', '')
        row('kNN top-100 on the GPU vs CPU faiss', 'cuda', '', '', '', '')
        return
    ngpu = faiss.get_num_gpus() if hasattr(faiss, 'get_num_gpus') else 0
    knn(q[:100], db, 100, backend='torch', device='cuda')                      # warm-up (CUDA context, kernels)
    for dtype in ('fp32', 'fp16'):
        t = time.perf_counter(); s1, i1 = knn(q, db, 100, backend='torch', device='cuda', dtype=dtype); tg = time.perf_counter() - t
        agree = (i1[:, 0] == i0[:, 0]).mean()
        row(f'kNN top-100, torch cuda {dtype}, {nq:,} x {nd:,} x 512', 'cuda', f'top-1 agrees {agree:.1%}', f'{tg:.2f} s = {tc/tg:.1f}x CPU faiss', '', '')
    if ngpu:
        t = time.perf_counter(); s2, i2 = knn(q, db, 100, backend='faiss', device='cuda'); tf = time.perf_counter() - t
        row(f'kNN top-100, faiss-gpu, {nq:,} x {nd:,} x 512', 'cuda', 'ok', f'{tf:.2f} s = {tc/tf:.1f}x CPU faiss', '', '')
    else: row('kNN top-100, faiss-gpu', 'cuda', 'not installed (this faiss has no GPU support; torch backend above)', '', '', '')
    qa = rng.standard_normal((100_000, 512), dtype=np.float32); qa /= np.linalg.norm(qa, axis=1, keepdims=True)
    t = time.perf_counter(); knn(qa, db, 100, backend='torch', device='cuda', dtype='fp16'); tg = time.perf_counter() - t
    row(f'kNN top-100, torch cuda fp16, 100,000 x {nd:,} x 512 (the full recognition search)', 'cuda', 'ok', f'{tg:.2f} s', '', '')
PYEOF
t=$(date +%s)
timeout 300 "$PY" "$WORK/check.py" "$DRY" "$ROWS" "$WORK" >&2 || row "python checks" "-" "FAILED or timed out (exit $?)" "" "" "$(( $(date +%s) - t ))"

# 6. NCCL init under torchrun, world size 1 --------------------------------------------------------------------------
cat > "$WORK/dist.py" <<'PYEOF'
import os, sys, time, torch, torch.distributed as dist
backend = sys.argv[1]
t = time.perf_counter()
dist.init_process_group(backend)
dev = torch.device('cuda', int(os.environ.get('LOCAL_RANK', 0))) if backend == 'nccl' else torch.device('cpu')
if backend == 'nccl': torch.cuda.set_device(dev)
x = torch.ones(4, device=dev); dist.all_reduce(x); dist.barrier()
assert dist.get_world_size() == 1 and x.sum().item() == 4
print(f"{backend}: world {dist.get_world_size()}, init + all_reduce {time.perf_counter() - t:.2f} s")
dist.destroy_process_group()
PYEOF
for b in gloo nccl; do
  if [ "$b" = nccl ] && [ "$CUDA" != 1 ]; then row "torchrun, world size 1, nccl init + all_reduce" "cuda" "" "" "pass" ""; continue; fi
  t=$(date +%s)
  if out=$(timeout 60 "$TORCHRUN" --standalone --nproc_per_node 1 "$WORK/dist.py" "$b" 2>"$WORK/dist_$b.log"); then
    row "torchrun, world size 1, $b init + all_reduce" "$([ $b = nccl ] && echo cuda || echo cpu)" "passed" "$out" "pass" "$(( $(date +%s) - t ))"
  else
    row "torchrun, world size 1, $b init + all_reduce" "$([ $b = nccl ] && echo cuda || echo cpu)" "FAILED (exit $?)" "$(tail -1 "$WORK/dist_$b.log" | cut -c1-120)" "pass" "$(( $(date +%s) - t ))"
  fi
done

# the table ----------------------------------------------------------------------------------------------------------
"$PY" - "$ROWS" "$OUT" "$DRY" "$(( $(date +%s) - T0 ))" <<'PYEOF'
import json, sys, os, time, platform
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
out, dry, total = sys.argv[2], sys.argv[3] == '1', sys.argv[4]
try:
    import torch
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else 'no GPU'
    tv = torch.__version__
except Exception: gpu, tv = '?', '?'
L = [f"GPU check ({'dry run, CPU part only' if dry else 'full'}), {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}: {gpu}, "
     f"{os.cpu_count()} CPU cores, torch {tv}; total {total} s", '',
     '| check | device | result | value | target | s |', '|---|---|---|---|---|---|']
L += [f"| {r['check']} | {r['device']} | {r['result']} | {r['value']} | {r['target']} | {r['seconds']} |" for r in rows]
text = '\n'.join(L) + '\n'
print(text)
if out:
    os.makedirs(os.path.dirname(out) or '.', exist_ok=True)
    tmp = out + '.tmp'; open(tmp, 'w').write(text); os.replace(tmp, out)
bad = [r for r in rows if 'FAIL' in r['result']]
sys.exit(1 if bad else 0)
PYEOF
