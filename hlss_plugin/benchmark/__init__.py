"""The logic of ``tools/benchmarks/benchmark.py``: self-supervised methods
trained on one budget and compared by hierarchical kNN.

* :mod:`.presets`: named settings (``--preset``),
* :mod:`.variants`: HLSS ablation variants (``hlss_no_ha``, ...),
* :mod:`.overrides`: config overrides (backbone, crop, batch, schedule),
* :mod:`.budget`: iterations per epoch, batch size and views of a config,
* :mod:`.methods`: the method names and their configs,
* :mod:`.configs`: each run's training config and the shared kNN config,
* :mod:`.runs`: training in a subprocess and kNN evaluation,
* :mod:`.report` / :mod:`.outputs`: statistics, tables, figures, files,
* :mod:`.benchmark_run`: the whole benchmark from resolved arguments.

and of ``tools/benchmarks/benchmark_throughput.py``:

* :mod:`.measure`: peak memory, best-of-rounds timing,
* :mod:`.throughput_setup`: its config, model, optimizer and data,
* :mod:`.throughput`: the measured sections, the targets, the table.
"""
from .arguments import SETTING_FLAGS, resolve_args
from .benchmark_run import run_benchmark
from .budget import count_views, train_budget
from .configs import build_eval_config, prepare_train_config
from .measure import PeakMemory, timed
from .methods import (BACKBONES, METHOD_CONFIGS, RANDOM, BenchmarkError,
                      resolve_methods)
from .overrides import (rescale_schedule, set_backbone_depth, set_crop_size,
                        set_patients_per_batch)
from .presets import PRESETS, resolve_seeds, resolve_settings
from .runs import evaluate, run_one, run_training
from .throughput import TARGETS, check_targets, run_throughput
from .variants import MethodSpec, apply_variant, parse_method

__all__ = [
    'BACKBONES', 'BenchmarkError', 'METHOD_CONFIGS', 'MethodSpec', 'PRESETS',
    'PeakMemory', 'RANDOM', 'SETTING_FLAGS', 'TARGETS', 'apply_variant',
    'build_eval_config', 'check_targets', 'count_views', 'evaluate',
    'parse_method', 'prepare_train_config', 'rescale_schedule',
    'resolve_args', 'resolve_methods', 'resolve_seeds', 'resolve_settings',
    'run_benchmark', 'run_one', 'run_throughput', 'run_training',
    'set_backbone_depth', 'set_crop_size', 'set_patients_per_batch', 'timed',
    'train_budget'
]
