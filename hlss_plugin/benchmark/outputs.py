"""What the benchmark prints and writes: settings, plan, report files."""
import argparse
import json
import os
import os.path as osp
import platform
from typing import Any, Dict, List

import torch

from .arguments import SETTING_FLAGS
from .configs import RUNNER_KEYS
from .presets import data_spec
from .report import finalize, plot_accuracy, plot_curves, render_markdown

__all__ = ['machine_info', 'print_plan', 'print_settings', 'write_outputs']


def machine_info() -> Dict[str, Any]:
    """CPU count, versions and the device training and kNN run on."""
    import mmengine
    import mmpretrain
    device = 'cpu'
    if torch.cuda.is_available():
        device = f'cuda ({torch.cuda.get_device_name(0)})'
    return dict(cpu_count=os.cpu_count(), torch=torch.__version__,
                device=device, mmengine=mmengine.__version__,
                mmpretrain=mmpretrain.__version__,
                python=platform.python_version(),
                platform=platform.platform())


def write_outputs(report: dict, work_dir: str) -> List[str]:
    """Write ``benchmark.md``, ``benchmark.json``, ``benchmark.png`` and,
    with learning curves, ``curves.png``."""
    finalize(report)
    paths = [osp.join(work_dir, f'benchmark.{ext}')
             for ext in ('md', 'json', 'png')]
    with open(paths[0], 'w') as f:
        f.write(render_markdown(report))
    with open(paths[1], 'w') as f:
        json.dump(report, f, indent=2)
    plot_accuracy(report, paths[2])
    curves = plot_curves(report, osp.join(work_dir, 'curves.png'))
    return paths + ([curves] if curves else [])


def _show(value: Any) -> str:
    if isinstance(value, dict) and 'type' in value:
        keys = [k for k in ('begin', 'end', 'T_max', 'by_epoch',
                            'loss_weight', 'detach') if k in value]
        return (f'{value["type"]}(' + ', '.join(f'{k}={value[k]}'
                                                for k in keys) + ')')
    text = repr(value)
    return text if len(text) <= 70 else text[:67] + '...'


def print_settings(args: argparse.Namespace) -> None:
    """The resolved settings and where each came from (``--dry-run``)."""
    print(f'[settings] preset: {args.preset or "none"}')
    for name in SETTING_FLAGS:
        print(f'  {name}: {getattr(args, name)!r} ({args.sources[name]})')
    if args.make_data:
        print(f'  make-data: {data_spec(vars(args))!r} -> {args.data_root}'
              + (' (exists: used as it is)' if osp.isdir(args.data_root)
                 else ''))


def print_plan(plans: List[dict], settings: dict) -> None:
    """The resolved overrides of every method (``--dry-run``)."""
    for plan in plans:
        print(f'[{plan["method"]}] {plan["config"] or "untrained backbone"}'
              + (f' + {dict(plan["options"])}' if plan['options'] else ''))
        if plan.get('error'):
            print(f'  error: {plan["error"]}')
            continue
        for key, (old, new) in plan.get('changes', {}).items():
            if key.split('.')[0] in RUNNER_KEYS:
                print(f'  {key}: {_show(old)} -> {_show(new)}')
        if plan['config']:
            b = plan['budget']
            print(f'  images seen: {settings["budget_epochs"]} epochs x '
                  f'{b["iters_per_epoch"]} iterations x {b["batch_size"]} '
                  f'x {b["views"]} views = {plan["images_seen"]} (per seed)')
    print(f'[seeds] {settings["seeds"]} (overrides shown for seed '
          f'{settings["seeds"][0]})')
    print(f'[kNN] BackboneEmbedder(ResNet-{settings["depth"]} + '
          f'GlobalAveragePooling), k={settings["k"]}, centre crop '
          f'{settings["crop_size"]} px, bank {settings["bank_patches"]} / '
          f'queries {settings["query_patches"]} patches'
          + (f'; curves every {settings["eval_every"]} epoch(s)'
             if settings['eval_every'] else ''))
