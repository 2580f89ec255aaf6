"""The benchmark's methods: names, configs and their resolution."""
import os.path as osp
from typing import Any, Dict, List, Optional, Tuple

from .variants import MethodSpec, parse_method

__all__ = ['BACKBONES', 'BenchmarkError', 'CONFIG_DIR', 'METHOD_CONFIGS',
           'RANDOM', 'REPO_ROOT', 'resolve_methods']

#: The repository (configs/ and tools/ live here).
REPO_ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
CONFIG_DIR = osp.join(REPO_ROOT, 'configs', 'mmpretrain')
#: Method name -> config file in configs/mmpretrain/.
METHOD_CONFIGS = {
    'hlss': 'hlss_srh.py',
    'hidisc': 'hidisc_resnet50_srh.py',
    'simclr': 'simclr_resnet50_srh.py',
    'mocov3': 'mocov3_resnet50_srh.py',
    'byol': 'byol_resnet50_srh.py',
    'simsiam': 'simsiam_resnet50_srh.py',
    'barlowtwins': 'barlowtwins_resnet50_srh.py',
    'vicreg': 'vicreg_resnet50_srh.py',
    'simclr_hlss': 'simclr_hlss_srh.py',
    'mocov3_hlss': 'mocov3_hlss_srh.py',
    'byol_hlss': 'byol_hlss_srh.py',
}
#: The untrained backbone (no config, no training).
RANDOM = 'random'
BACKBONES = {'resnet18': 18, 'resnet50': 50}


class BenchmarkError(Exception):
    """A problem with the command line, reported without a traceback."""


def resolve_methods(
        names: List[str]) -> List[Tuple[MethodSpec, Optional[str]]]:
    """``[(spec, config path or None for random)]`` in the given order.

    Raises:
        BenchmarkError: For an unknown or repeated name (a variant and its
            named form count as the same), bad variant options or a missing
            config file; the message lists the valid names.
    """
    methods = []
    seen: Dict[Any, str] = {}
    unknown, repeated = [], []
    for name in names:
        if name == RANDOM:
            spec = MethodSpec(RANDOM, RANDOM)
        else:
            try:
                spec = parse_method(name, METHOD_CONFIGS)
            except ValueError as err:
                if ':' in name or any(name.startswith(b + '_')
                                      for b in METHOD_CONFIGS):
                    raise BenchmarkError(str(err)) from None
                unknown.append(name)
                continue
        if spec.key in seen:
            repeated.append(name if seen[spec.key] == name
                            else f'{name} (= {seen[spec.key]})')
            continue
        seen[spec.key] = name
        methods.append(spec)
    if unknown:
        raise BenchmarkError(
            f'unknown method(s) {", ".join(unknown)}; valid names: '
            f'{", ".join([RANDOM, *METHOD_CONFIGS])} (and HLSS variants, '
            f'e.g. hlss_no_ha or hlss:bridge=mlp; see docs/benchmark.md).')
    if repeated:
        raise BenchmarkError(f'method(s) given twice: '
                             f'{", ".join(sorted(repeated))}.')
    dirs = [s.dir_name for s in methods]
    clash = sorted({d for d in dirs if dirs.count(d) > 1})
    if clash:
        raise BenchmarkError(f'methods share the folder name(s) {clash}; '
                             f'rename one of them.')
    out = []
    for spec in methods:
        path = None
        if spec.base != RANDOM:
            path = osp.join(CONFIG_DIR, METHOD_CONFIGS[spec.base])
            if not osp.isfile(path):
                present = [RANDOM] + [
                    n for n, f in METHOD_CONFIGS.items()
                    if osp.isfile(osp.join(CONFIG_DIR, f))]
                raise BenchmarkError(
                    f'method {spec.name}: config '
                    f'{osp.relpath(path, REPO_ROOT)} not found; methods '
                    f'with a config here: {", ".join(present)}.')
        out.append((spec, path))
    return out
