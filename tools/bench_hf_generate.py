"""The reference figure for benches/generate.rs: transformers' `generate` on the same shape.

GPT-2-124M-shaped model with random weights, B = 8 prompts of 16 tokens, 128 new tokens each,
greedy, float32, on CPU with the given number of threads (default 2, as on the CI machines).
Run with torch and transformers installed:  python tools/bench_hf_generate.py [threads]
"""

import sys
import time

import torch
from transformers import GPT2Config, GPT2LMHeadModel

threads = int(sys.argv[1]) if len(sys.argv) > 1 else 2
torch.set_num_threads(threads)
torch.manual_seed(0)
model = GPT2LMHeadModel(GPT2Config()).eval()
prompts = torch.tensor([[(b * 131 + t * 17) % 50000 for t in range(16)] for b in range(8)])
mask = torch.ones_like(prompts)
kwargs = dict(attention_mask=mask, max_new_tokens=128, min_new_tokens=128, do_sample=False,
              pad_token_id=0)
with torch.no_grad():
    model.generate(prompts, **kwargs)  # warm-up
    times = []
    for _ in range(3):
        start = time.perf_counter()
        out = model.generate(prompts, **kwargs)
        times.append(time.perf_counter() - start)
assert out.shape == (8, 16 + 128)
best = min(times)
print(f"transformers generate: threads={threads} best of 3 {best:.2f} s, {8 * 128 / best:.1f} tokens/s")
