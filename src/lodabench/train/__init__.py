"""The training loop and what it needs: optimizer, selection, device, distribution, preemption, cost."""
