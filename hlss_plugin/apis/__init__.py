"""What the tools in ``tools/`` share: config merging, process groups,
runner building, test-time checks and the start-up warning filter; the
README's demo (:mod:`.demo`, :mod:`.demo_report`).

The tools keep their command line (``parse_args``) and a short ``main``;
everything else lives here so it can be imported and tested.
"""
from .demo import DEMO_CONFIG, run_demo
from .distributed import (find_sync_bn, init_cpu_process_group,
                          prepare_distributed, require_env,
                          slurm_env_to_torch_env)
from .runner import build_runner, report_skipped_patches
from .schedule import rescale_epochs, schedule_overruns
from .startup_warnings import filter_startup_warnings
from .test_args import (check_checkpoint, find_metric, prepare_test_config,
                        register_evaluation)
from .tool_error import ToolError
from .train_args import merge_args

__all__ = [
    'DEMO_CONFIG', 'ToolError', 'build_runner', 'check_checkpoint',
    'filter_startup_warnings', 'find_metric', 'find_sync_bn',
    'init_cpu_process_group', 'merge_args', 'prepare_distributed',
    'prepare_test_config', 'register_evaluation', 'report_skipped_patches',
    'require_env', 'rescale_epochs', 'run_demo', 'schedule_overruns',
    'slurm_env_to_torch_env'
]
