#!/usr/bin/env python
"""Train a model from an MMPretrain config (with hlss_plugin's additions).

Run from the repository root; no ``pip install`` is needed::

    python tools/train.py CONFIG [--work-dir DIR] [--resume [CKPT]] [--amp]
        [--no-validate] [--auto-scale-lr] [--no-pin-memory]
        [--no-persistent-workers] [--epochs N] [--data-root DIR]
        [--cfg-options KEY=VALUE ...] [--launcher {none,pytorch,slurm}]

The options work as in MMPretrain's ``tools/train.py`` (see
:func:`hlss_plugin.apis.merge_args`). Additions:

* ``--data-root DIR`` replaces every ``data_root`` in the config.
* ``--epochs N`` trains N epochs with the whole schedule rescaled (warm-up
  and decay keep their share; validation and checkpoint intervals are
  clipped to N), see :func:`hlss_plugin.apis.rescale_epochs`.
* ``--launcher pytorch`` / ``slurm`` on a machine without CUDA trains with
  gloo on the CPU (:func:`hlss_plugin.apis.prepare_distributed`).
* ``--amp`` on a machine without CUDA stops at once with a clear message.
* ``--resume`` checks the checkpoint before resuming
  (:func:`hlss_plugin.utils.resume.guard_resume`).
* ``PreflightHook`` checks what validation will need before the first
  iteration; the number of bad patches skipped is printed at the end.

The dedicated options are applied after ``--cfg-options``.
"""
import argparse
import os
import os.path as osp
import sys
import warnings

REPO_ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
if REPO_ROOT not in sys.path:
    sys.path.insert(0, REPO_ROOT)

with warnings.catch_warnings(record=True) as _startup:
    warnings.simplefilter('always')
    from hlss_plugin.apis import filter_startup_warnings
filter_startup_warnings(_startup)

from mmengine.config import Config, DictAction  # noqa: E402

from hlss_plugin.apis import (ToolError, build_runner,  # noqa: E402
                              merge_args, prepare_distributed,
                              report_skipped_patches, rescale_epochs)
from hlss_plugin.engine.hooks import PreflightError  # noqa: E402
from hlss_plugin.utils.arg_checks import positive_int  # noqa: E402
from hlss_plugin.utils.dist import close_process_group  # noqa: E402
from hlss_plugin.utils.resume import ResumeError, guard_resume  # noqa: E402


def parse_args(argv=None) -> argparse.Namespace:
    """Parse the command line (``sys.argv[1:]`` when ``argv`` is None)."""
    parser = argparse.ArgumentParser(
        description='Train a model from an MMPretrain config.')
    parser.add_argument('config', help='train config file path')
    parser.add_argument(
        '--work-dir',
        help='folder for logs and checkpoints (default: the config\'s '
        'work_dir, else ./work_dirs/<config name>)')
    parser.add_argument(
        '--resume', nargs='?', const='auto', metavar='CKPT',
        help='resume from CKPT; without a value, from the latest checkpoint '
        'in the work dir')
    parser.add_argument(
        '--amp', action='store_true',
        help='automatic mixed precision (AmpOptimWrapper); needs a GPU')
    parser.add_argument(
        '--no-validate', action='store_true',
        help='do not evaluate checkpoints during training')
    parser.add_argument(
        '--auto-scale-lr', action='store_true',
        help='scale the learning rate by the actual total batch size over '
        'the config\'s auto_scale_lr.base_batch_size')
    parser.add_argument(
        '--no-pin-memory', action='store_true',
        help='turn off pin_memory in every dataloader')
    parser.add_argument(
        '--no-persistent-workers', action='store_true',
        help='turn off persistent_workers in every dataloader')
    parser.add_argument(
        '--epochs', type=positive_int, metavar='N',
        help='train N epochs with the whole schedule (warm-up, decay) '
        'rescaled to them; validation and checkpoint intervals are clipped '
        'to N (needs the training data)')
    parser.add_argument(
        '--data-root', metavar='DIR',
        help='replace every data_root in the config by DIR')
    parser.add_argument(
        '--cfg-options', nargs='+', action=DictAction,
        help='override config settings, e.g. train_cfg.val_interval=5 or '
        'key="[a,b]"; applied before the options above')
    parser.add_argument(
        '--launcher', choices=['none', 'pytorch', 'slurm'], default='none',
        help='job launcher (pytorch: started by torchrun / '
        'tools/dist_train.sh; slurm: by srun / tools/slurm_train.sh)')
    # torch.distributed.launch passes --local-rank (--local_rank before 2.0).
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0,
                        help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if 'LOCAL_RANK' not in os.environ:
        os.environ['LOCAL_RANK'] = str(args.local_rank)
    return args


def main(argv=None) -> None:
    """Parse ``argv``, build the runner and train."""
    args = parse_args(argv)
    owns_group = False
    clean = False  # every rank reached the end
    runner = None
    try:
        if not osp.isfile(args.config):
            raise ToolError(f'config file {args.config!r} not found.')
        cfg = merge_args(Config.fromfile(args.config), args)
        if args.launcher != 'none':
            owns_group = prepare_distributed(cfg, args.launcher)
        if args.epochs is not None:
            # after the process group: iterations per epoch of this rank
            rescale_epochs(cfg, args.epochs, args.launcher)
        runner = build_runner(cfg)
        guard_resume(runner)
        runner.train()
        report_skipped_patches(runner)
        clean = True
    except (ToolError, ResumeError, PreflightError) as err:
        sys.exit(f'tools/train.py: error: {err}')
    finally:
        # Frees the DDP wrapper, which holds the backend, before the group.
        runner = None  # noqa: F841
        if owns_group:
            close_process_group(clean)


if __name__ == '__main__':
    main()
