"""Checks that make a bad ``--resume`` stop with one clear line.

mmengine's ``Runner.resume`` loads the model non-strictly (missing or
differently shaped weights are only logged) and passes torch's errors on
as they are (for a file that is not a checkpoint: a long message advising to
turn ``weights_only`` off). :func:`guard_resume` checks the checkpoint first,
always with ``torch.load(weights_only=True)``, and raises
:class:`ResumeError` naming the file and the fix.
"""
import os.path as osp
import re
from typing import Any, List, Optional, Tuple

from .checkpoint import load_weights_only, state_dict_mismatch

__all__ = ['ResumeError', 'check_resume_checkpoint', 'guard_resume',
           'resume_source']

#: The fix for a file that is not a training checkpoint.
RESUME_FIX = ('pass a checkpoint a training run wrote (work_dirs/<config>/'
              'epoch_N.pth, or the file named in work_dirs/<config>/'
              'last_checkpoint), or drop --resume to start a new run')
#: The fix for a checkpoint of another model / optimizer.
SAME_CONFIG = ('Resume with the config the checkpoint was trained with (its '
               'text is stored in the checkpoint as meta["cfg"]); model and '
               'optimizer must be the same to continue a run')
#: Optimizer group keys that may differ between runs of the same config.
_IGNORED_GROUP_KEYS = ('params', 'initial_lr')


class ResumeError(ValueError):
    """The checkpoint given to ``--resume`` cannot continue this run."""


def resume_source(runner) -> Optional[str]:
    """The checkpoint ``runner`` will resume from, or None.

    Mirrors ``Runner.load_or_resume``: ``load_from`` when given, else the
    file named in ``<work_dir>/last_checkpoint`` (None without one, and then
    training starts afresh).

    Args:
        runner (Runner): An mmengine runner.

    Returns:
        str | None: The checkpoint path.
    """
    if not getattr(runner, '_resume', False):
        return None
    if getattr(runner, '_load_from', None) is not None:
        return runner._load_from
    last = osp.join(runner.work_dir, 'last_checkpoint')
    if not osp.isfile(last):
        return None
    with open(last) as f:
        return f.read().strip() or None


def _optimizer_pairs(wrapper: Any, saved: Any) -> List[Tuple[str, Any, Any]]:
    """``(name, optimizer, saved state)`` for each optimizer of a wrapper."""
    if hasattr(wrapper, 'optim_wrappers'):  # OptimWrapperDict
        saved = saved if isinstance(saved, dict) else {}
        return [(f'optimizer "{name}"', w.optimizer, saved.get(name))
                for name, w in wrapper.optim_wrappers.items()]
    return [('optimizer', wrapper.optimizer, saved)]


def optimizer_mismatch(wrapper: Any, saved: Any) -> str:
    """How a saved optimizer state differs from the built optimizer, or
    ``''``.

    Compares the number of parameter groups, the parameters per group and
    the hyper-parameter names (an SGD state has ``momentum``, an AdamW one
    ``betas``), which is what must agree to continue a run.

    Args:
        wrapper: The runner's built ``OptimWrapper`` / ``OptimWrapperDict``.
        saved: The checkpoint's ``optimizer`` entry.

    Returns:
        str: The first difference found, or ``''``.
    """
    for name, optimizer, state in _optimizer_pairs(wrapper, saved):
        groups = state.get('param_groups') if isinstance(state, dict) \
            else None
        if not isinstance(groups, list):
            return f'the checkpoint holds no state for the {name}'
        current = optimizer.param_groups
        if len(groups) != len(current):
            return (f'{name}: {len(groups)} parameter group(s) in the '
                    f'checkpoint, {len(current)} in this config')
        for i, (old, new) in enumerate(zip(groups, current)):
            if not isinstance(old, dict):
                return f'{name}: parameter group {i} is damaged'
            if len(old.get('params', ())) != len(new['params']):
                return (f'{name} group {i}: {len(old.get("params", ()))} '
                        f'parameters in the checkpoint, '
                        f'{len(new["params"])} in this config')
            foreign = sorted(k for k in set(old) - set(new)
                             if k not in _IGNORED_GROUP_KEYS
                             and not str(k).startswith('_'))
            if foreign:
                return (f'{name} group {i}: the checkpoint\'s optimizer has '
                        f'settings {foreign} that this config\'s '
                        f'{type(optimizer).__name__} lacks (another '
                        f'optimizer type)')
    return ''


def check_resume_checkpoint(path: str, model: Any,
                            optim_wrapper: Any = None) -> None:
    """Check that ``path`` is a training checkpoint of this model.

    Args:
        path (str): The checkpoint to resume from.
        model (nn.Module): The runner's model (unwrapped).
        optim_wrapper: The built optimizer wrapper, or None to skip the
            optimizer check.

    Raises:
        FileNotFoundError: If ``path`` is not a file.
        ResumeError: One line naming ``path`` and the fix, when the file
            is not readable weights-only, is not a training checkpoint, or
            was saved by another model or optimizer.

    Example:
        >>> check_resume_checkpoint('notes.txt', model)  # doctest: +SKIP
        ResumeError: --resume: notes.txt is not a readable checkpoint: ...
    """
    try:
        ckpt = load_weights_only(path, '--resume', RESUME_FIX)
    except (ValueError, FileNotFoundError) as err:
        raise ResumeError(str(err)) from None
    meta = ckpt.get('meta') if isinstance(ckpt, dict) else None
    lacks = [k for k, ok in (
        ('state_dict', isinstance(ckpt, dict)
         and isinstance(ckpt.get('state_dict'), dict)),
        ('meta.epoch', isinstance(meta, dict) and 'epoch' in meta),
        ('meta.iter', isinstance(meta, dict) and 'iter' in meta),
        ('message_hub', isinstance(ckpt, dict) and 'message_hub' in ckpt),
    ) if not ok]
    if lacks:
        raise ResumeError(
            f'--resume: {path} is not a training checkpoint (it lacks '
            f'{", ".join(lacks)}, which a training run saves); {RESUME_FIX}. '
            f'To start a new run from bare weights, set load_from '
            f'(--cfg-options load_from={path}) without --resume.')
    state = {re.sub(r'^module\.', '', k): v
             for k, v in ckpt['state_dict'].items()}
    mismatch = state_dict_mismatch(model.state_dict(), state)
    if not mismatch and optim_wrapper is not None and 'optimizer' in ckpt:
        mismatch = optimizer_mismatch(optim_wrapper, ckpt['optimizer'])
    if mismatch:
        raise ResumeError(
            f'--resume: checkpoint {path} was saved by another model or '
            f'optimizer than this config builds ({mismatch}). '
            f'{SAME_CONFIG}.')


def guard_resume(runner) -> None:
    """Make ``runner`` check its resume checkpoint before resuming.

    Wraps ``runner.load_or_resume`` (on this runner object only): the
    checkpoint is checked with :func:`check_resume_checkpoint` after the
    optimizer is built and before mmengine loads it, and a ``ValueError`` /
    ``KeyError`` from mmengine's own restoring (optimizer or scheduler
    state) becomes a :class:`ResumeError` naming the checkpoint. Does
    nothing when the runner does not resume. The checkpoint is read twice
    (here and by mmengine), once per run.

    Args:
        runner (Runner): An mmengine runner built with ``resume=True``.
    """
    original = getattr(runner, 'load_or_resume', None)
    if original is None or not getattr(runner, '_resume', False):
        return

    def load_or_resume() -> None:
        path = resume_source(runner)
        if path is None or getattr(runner, '_has_loaded', False):
            return original()
        if '://' not in path:
            from mmengine.model import is_model_wrapper
            model = (runner.model.module if is_model_wrapper(runner.model)
                     else runner.model)
            wrapper = getattr(runner, 'optim_wrapper', None)
            built = hasattr(wrapper, 'optimizer') or hasattr(
                wrapper, 'optim_wrappers')
            check_resume_checkpoint(path, model, wrapper if built else None)
        try:
            return original()
        except (ValueError, KeyError) as err:
            first = (str(err).splitlines() or [''])[0][:300]
            raise ResumeError(
                f'--resume: restoring checkpoint {path} failed '
                f'({type(err).__name__}: {first}). {SAME_CONFIG}.') from err

    runner.load_or_resume = load_or_resume
