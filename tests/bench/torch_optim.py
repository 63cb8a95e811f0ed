#!/usr/bin/python3
# PyTorch reference for bench_optim: AdamW step (single-tensor, foreach=False, torch's CPU
# default in 1.13), clip_grad_norm_, diffusers-style EMA update, over 35.7M parameters.
import time
import torch

torch.set_num_threads(2)
n = 35746307
p = torch.nn.Parameter(torch.rand(n) - 0.5)
p.grad = torch.rand(n) - 0.5
s = p.detach().clone()
opt = torch.optim.AdamW([p], lr=1e-4, betas=(0.95, 0.999), eps=1e-8, weight_decay=1e-6)
opt.step()
for name, fn in [("adamw_step", opt.step),
                 ("grad_clip_norm", lambda: torch.nn.utils.clip_grad_norm_([p], 1e9)),
                 ("ema_update", lambda: s.sub_(0.001 * (s - p.detach())))]:
    t = time.time()
    for _ in range(5):
        fn()
    print("torch %s n=%d: %.1f ms" % (name, n, (time.time() - t) / 5 * 1e3))
