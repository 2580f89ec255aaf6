"""Config and checkpoint checks of ``tools/test.py``."""
import argparse
import os.path as osp
import re
from typing import Dict

import torch
from mmengine.config import Config

from ..utils.checkpoint import read_state_dict, state_dict_mismatch
from .tool_error import ToolError
from .train_args import merge_args

__all__ = [
    'EVAL_BASE', 'METRIC_TYPE', 'TEST_KEYS', 'register_evaluation',
    'prepare_test_config', 'check_checkpoint', 'find_metric'
]

TEST_KEYS = ('test_dataloader', 'test_evaluator', 'test_cfg')
EVAL_BASE = 'configs/mmpretrain/_base_/datasets/opensrh_knn_eval.py'
METRIC_TYPE = 'HierarchicalKNNMetric'


def register_evaluation() -> None:
    """Register the evaluation pieces (kNN dataset, centre crop, metric)
    even where ``hlss_plugin`` does not import them."""
    import hlss_plugin  # noqa: F401
    import hlss_plugin.datasets.hierarchical_knn_dataset  # noqa: F401
    import hlss_plugin.datasets.transforms.center_crop_tensor  # noqa: F401
    import hlss_plugin.evaluation  # noqa: F401


def prepare_test_config(cfg: Config, args: argparse.Namespace) -> Config:
    """Apply the command line of ``tools/test.py`` to ``cfg`` (in place).

    Training settings are dropped (not needed to test, and an
    ``AmpOptimWrapper`` would stop a CPU run); ``--work-dir``,
    ``--data-root``, ``--cfg-options`` and ``--launcher`` work as in
    ``tools/train.py`` (:func:`~hlss_plugin.apis.train_args.merge_args`);
    the checkpoint is loaded by the runner after :func:`check_checkpoint`.

    Args:
        cfg (Config): The config.
        args (argparse.Namespace): ``config``, ``checkpoint``, ``work_dir``,
            ``data_root``, ``cfg_options``, ``launcher``.

    Returns:
        Config: ``cfg``.

    Raises:
        ToolError: When the config lacks test settings or the checkpoint
            does not exist.

    Example:
        >>> cfg = prepare_test_config(cfg, args)  # doctest: +SKIP
    """
    missing = [key for key in TEST_KEYS if cfg.get(key, None) is None]
    if missing:
        raise ToolError(
            f'the config {args.config} has no {", ".join(missing)}; add '
            f'\'{EVAL_BASE}\' (as \'_base_/datasets/opensrh_knn_eval.py\') '
            f'to its _base_ list, or define them.')
    if not osp.isfile(args.checkpoint):
        raise ToolError(f'checkpoint {args.checkpoint!r} not found.')
    for key in ('train_dataloader', 'train_cfg', 'optim_wrapper',
                'param_scheduler'):
        cfg[key] = None
    train_args = argparse.Namespace(
        config=args.config, work_dir=args.work_dir,
        data_root=args.data_root, cfg_options=args.cfg_options,
        launcher=args.launcher)
    cfg = merge_args(cfg, train_args)
    cfg.load_from = args.checkpoint
    cfg.resume = False
    return cfg


def _state_dict(path: str) -> Dict[str, torch.Tensor]:
    try:
        state = read_state_dict(path)
    except (FileNotFoundError, ValueError) as err:
        raise ToolError(str(err)) from err
    return {re.sub(r'^module\.', '', k): v for k, v in state.items()}


def check_checkpoint(model: torch.nn.Module, path: str) -> None:
    """Check that ``path`` matches ``model`` exactly (strict loading).

    mmengine's own loading only warns about mismatching keys; a test run
    on a half-loaded model would report meaningless numbers.

    Args:
        model (nn.Module): The model built from the config (unwrapped).
        path (str): Checkpoint file (read with ``weights_only=True``).

    Raises:
        ToolError: Listing the missing, unexpected and differently shaped
            keys, and pointing to the config saved in the checkpoint's work
            dir.

    Example:
        >>> check_checkpoint(runner.model, 'epoch_1.pth')  # doctest: +SKIP
    """
    mismatch = state_dict_mismatch(model.state_dict(), _state_dict(path))
    if mismatch:
        folder = osp.dirname(osp.abspath(path))
        raise ToolError(
            f'checkpoint {path} does not match the model of the config '
            f'({mismatch}). Pass the config the checkpoint was trained '
            f'with: use the config saved in the work dir ({folder}/'
            f'<config name>.py, next to the checkpoint); backbone depth, '
            f'in_channels and heads must agree.')


def find_metric(evaluator):
    """The evaluator's :class:`HierarchicalKNNMetric`.

    Args:
        evaluator (Evaluator): ``runner.test_loop.evaluator`` (or the val
            loop's).

    Returns:
        HierarchicalKNNMetric: The first one.

    Raises:
        ToolError: When the evaluator has none.
    """
    for metric in evaluator.metrics:
        if type(metric).__name__ == METRIC_TYPE:
            return metric
    raise ToolError(f'test_evaluator has no {METRIC_TYPE}; set '
                    f'test_evaluator = dict(type="{METRIC_TYPE}") (see '
                    f'{EVAL_BASE}).')
