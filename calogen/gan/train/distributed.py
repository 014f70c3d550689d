"""Data-parallel training with ``torch.distributed``: ``torchrun --nproc_per_node=K -m calogen train ...``.

Each rank reads its own shard of the batches; the weights start equal (rank 0's are broadcast), the gradients are
averaged with one ``all_reduce`` per backward pass (gloo on CPU, NCCL on CUDA), so every rank takes the same
optimiser step that one process would take on the K shards together; only rank 0 writes to the run directory.
With one process every function here is a no-op.
"""

from __future__ import annotations

import os

import torch

__all__ = ["any_rank", "average_gradients", "barrier", "broadcast_module", "init", "rank_device", "shutdown"]


def init(device_type: str) -> tuple[int, int]:
    """(rank, world size) of this process; starts the process group when torchrun launched several
    (``WORLD_SIZE`` > 1), with NCCL for ``device_type == "cuda"`` and gloo otherwise."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return 0, 1
    import torch.distributed as dist

    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if device_type == "cuda" else "gloo")
    return dist.get_rank(), dist.get_world_size()


def rank_device(device: torch.device, world: int) -> torch.device:
    """The device of this rank: with several CUDA processes, the GPU numbered ``LOCAL_RANK``."""
    if device.type != "cuda" or world <= 1:
        return device
    local = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
    torch.cuda.set_device(local)
    return local


def broadcast_module(module: torch.nn.Module, world: int) -> None:
    """Copy rank 0's parameters and buffers of ``module`` to every rank."""
    if world <= 1:
        return
    import torch.distributed as dist

    for tensor in list(module.parameters()) + list(module.buffers()):
        dist.broadcast(tensor.data, src=0)


def average_gradients(module: torch.nn.Module, world: int) -> None:
    """Replace each gradient of ``module`` by its mean over the ranks (one all-reduce of a flat buffer).

    With equal shards, the mean of the per-rank gradients of a batch-mean loss is the gradient of the loss on the
    union of the shards, so the optimiser step equals the single-process step on the whole batch.
    """
    if world <= 1:
        return
    import torch.distributed as dist

    grads = [p.grad for p in module.parameters() if p.grad is not None]
    if not grads:
        return
    flat = torch.cat([g.reshape(-1) for g in grads])
    dist.all_reduce(flat)
    flat /= world
    offset = 0
    for grad in grads:
        n = grad.numel()
        grad.copy_(flat[offset:offset + n].view_as(grad))
        offset += n


def any_rank(flag: bool, world: int, device: torch.device) -> bool:
    """True when ``flag`` is true on at least one rank (all ranks get the same answer)."""
    if world <= 1:
        return flag
    import torch.distributed as dist

    t = torch.tensor([1.0 if flag else 0.0], device=device)
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return bool(t.item() > 0)


def barrier(world: int) -> None:
    """Wait for every rank."""
    if world > 1:
        import torch.distributed as dist

        dist.barrier()


def shutdown(world: int) -> None:
    """End the process group, if this process started one."""
    if world > 1:
        import torch.distributed as dist

        if dist.is_initialized():
            dist.destroy_process_group()
