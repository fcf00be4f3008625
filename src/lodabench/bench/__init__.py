"""Benchmark suite: the cost of each method measured side by side in ONE process and ONE run.

Suites (each in its own module, all timed round-robin, see timing.py):

* ``train``  -- training-step time and memory per method, GPT-2 medium and RoBERTa-base from
  config (random weights), as ratios to our LoRA and to PEFT's LoRA (train.py);
* ``infer``  -- forward latency at 1 x 128 and the layer-0 q/k/v projection alone (infer.py);
* ``decode`` -- our beam search (hf_compatible) vs transformers ``generate``, same outputs (decode.py);
* ``score``  -- ``score_e2e`` wall time on the full E2E test set, with a breakdown (score.py).
* ``optim``  -- one optimizer step of ``lora_adamw_loop`` vs ``lora_adamw`` (fused) on GPT-2 M LoRA
  shapes: ``loop_ms``, ``fused_ms``, ``speedup`` (optim.py).

``python -m lodabench.bench`` runs them (the command line is cli.py). ``python -m lodabench.bench
cost-claims`` is separate: the papers' cost claims (CondLoRA Table 4 training speed, LoDA App. A.4
S-LoDA inference) with their verdicts, record ``results/bench/<stamp>-cost-claims.json``
(cost_claims.py). ``python -m lodabench.bench.gpu`` is ``make bench-gpu``'s (gpu.py); ``python -m lodabench.bench.loda_ops``: LoDA's batched
path vs per slot, aten calls per train step and CPU step ratios (loda_ops.py).

The record (``results/bench/<name>.json``) holds the machine, thread count, versions, every
median with its spread, and the goals of report.py (met / not met, by how much); a Markdown
summary is written beside it. Partial records are written after each suite, so an interrupted
run keeps what it measured.

Defaults keep ``make bench`` under 20 minutes on 2 CPU cores: on CPU the training shapes are
1 x 128 only (a GPT-2 medium step at 8 x 128 takes ~50 s on one core); on CUDA 8 x 128 and 1 x 128.
"""
