"""TEST-ONLY hook for the tools/train.py tests (imported by the test config
``configs/simclr_tiny_srh.py`` through ``custom_imports``).

``TrainProbeHook`` writes what each rank did to ``work_dir`` and can stop
training after an epoch, to simulate a crash for the resume test.
"""
import json
import os.path as osp

import torch
from mmengine.dist import get_dist_info
from mmengine.hooks import Hook
from mmengine.model import is_model_wrapper
from mmpretrain.registry import HOOKS


class SimulatedCrash(RuntimeError):
    """Raised by ``TrainProbeHook`` to stop a run after an epoch."""


@HOOKS.register_module()
class TrainProbeHook(Hook):
    """Record each rank's training and optionally stop after an epoch.

    After every epoch it rewrites ``work_dir/probe_rank{rank}.json`` with
    ``rank``, ``world_size``, ``iter`` (iterations done) and ``patients``
    (per epoch, the patient of every sample this rank trained on). After
    training it saves the rank's model parameters (``named_parameters``, no
    buffers) to ``work_dir/probe_rank{rank}_params.pth``.

    Args:
        stop_after_epoch (int, optional): Raise :class:`SimulatedCrash` at the
            end of this (1-based) epoch, after the checkpoint is saved.
            Defaults to None (never).
    """

    priority = 'LOWEST'  # after CheckpointHook has saved the epoch

    def __init__(self, stop_after_epoch=None):
        self.stop_after_epoch = stop_after_epoch
        self.patients = {}

    def _path(self, runner, suffix):
        rank, _ = get_dist_info()
        return osp.join(runner.work_dir, f'probe_rank{rank}{suffix}')

    def after_train_iter(self, runner, batch_idx, data_batch=None,
                         outputs=None):
        epoch = str(runner.epoch + 1)
        self.patients.setdefault(epoch, []).extend(
            s.patient for s in data_batch['data_samples'])

    def after_train_epoch(self, runner):
        rank, world_size = get_dist_info()
        with open(self._path(runner, '.json'), 'w') as f:
            json.dump(dict(rank=rank, world_size=world_size,
                           iter=runner.iter, patients=self.patients), f)
        if self.stop_after_epoch == runner.epoch + 1:
            raise SimulatedCrash(
                f'TrainProbeHook: stopped after epoch {runner.epoch + 1}')

    def after_train(self, runner):
        model = runner.model.module if is_model_wrapper(
            runner.model) else runner.model
        params = {k: v.detach().clone() for k, v in model.named_parameters()}
        torch.save(params, self._path(runner, '_params.pth'))
