"""Write a deterministic synthetic SRH dataset in the OpenSRH release layout.

Layout under ``out_dir`` (all paths in the JSON files are relative to it)::

    meta/opensrh.json                 {patient: {"class": c, "slides": {
                                          slide: {"tumor_patches": [...],
                                                  "normal_patches": [...]}}}}
    meta/train_val_split.json         {"train": [...], "val": [...]}
    meta/synthetic_attributes.json    ground truth of every level
    studies/<patient>/<slide>/patches/<patient>-<slide>-<kkkk>.tif

Every random draw comes from a generator keyed by ``(seed, purpose, class,
patient, slide, patch)``, so the output is byte-identical for the same
arguments (on the same platform and library versions), and adding patients,
slides or patches leaves the existing ones unchanged.
"""
import json
import operator
import os
import os.path as osp
from typing import Dict, List, Sequence

import numpy as np
import tifffile

from ..utils.paths import resolve_under_root
from .morphology import (ATTRIBUTES, OPENSRH_CLASSES, as_dict, class_profile,
                         perturb)
from .render import render_srh_patch

GENERATOR_VERSION = 1
META_FILE = 'meta/opensrh.json'
SPLIT_FILE = 'meta/train_val_split.json'
ATTRIBUTES_FILE = 'meta/synthetic_attributes.json'
NORMAL_CLASS = 'normal'

# Purposes of the keyed random generators.
_ORDER, _PATIENT, _SLIDE, _PATCH, _SPLIT = range(5)


def make_synthetic_srh(out_dir: str,
                       patients_per_class: int = 6,
                       slides: int = 2,
                       patches: int = 12,
                       size: int = 300,
                       seed: int = 0,
                       classes: Sequence[str] = OPENSRH_CLASSES,
                       overwrite: bool = False) -> dict:
    """Write a synthetic SRH dataset in the OpenSRH layout.

    Each patient samples an attribute profile around its class profile,
    each slide perturbs its patient's profile (including a slide-wide
    brightness), and each patch perturbs its slide's profile; see
    :mod:`hlss_plugin.synthetic.morphology`. Patients are numbered
    ``SYN0001``... in a seeded random order, so ids do not reveal classes.
    About 2/3 of each class's patients go to ``train`` and the rest to
    ``val``, with at least one ``val`` patient for every class that has two
    or more.

    Args:
        out_dir (str): Output folder. It may be missing, empty or an earlier
            output of this function (whose files are then removed first).
        patients_per_class (int): Patients per class, >= 1. Defaults to 6.
        slides (int): Slides per patient, >= 1; ids ``'1'``, ``'2'``...
            Defaults to 2.
        patches (int): Patches per slide, >= 1. Defaults to 12.
        size (int): Patch height and width in pixels, >= 32. Defaults to
            300 (the OpenSRH size); the pixel scale is fixed, so smaller
            patches show a smaller field of view.
        seed (int): Non-negative seed; the same arguments give byte-identical
            files. Defaults to 0.
        classes (Sequence[str]): Classes to generate, a subset of
            :data:`~hlss_plugin.synthetic.morphology.OPENSRH_CLASSES`
            (default: all seven). Patients of ``'normal'`` list their patches
            under ``normal_patches``, the others under ``tumor_patches``.
        overwrite (bool): Write into a non-empty folder that is not an
            earlier synthetic output; files with the same names are
            replaced and other files are left alone. Defaults to False.

    Returns:
        dict: Summary with ``out_dir`` (absolute), ``classes``, ``patients``,
        ``slides``, ``patches`` (total counts), ``train_patients``,
        ``val_patients``, ``size``, ``seed`` and the absolute paths
        ``meta_file``, ``split_file``, ``attributes_file``.

    Raises:
        ValueError: On a bad argument, or if ``out_dir`` is a file or a
            non-empty folder that is not an earlier synthetic output and
            ``overwrite`` is False.

    Example:
        >>> import tempfile
        >>> out = tempfile.mkdtemp()
        >>> summary = make_synthetic_srh(out, patients_per_class=1, slides=1,
        ...                              patches=2, size=32,
        ...                              classes=('hgg', 'normal'))
        >>> summary['patients'], summary['patches']
        (2, 4)
    """
    patients_per_class = _check_int('patients_per_class', patients_per_class,
                                    1, 6)
    slides = _check_int('slides', slides, 1, 2)
    patches = _check_int('patches', patches, 1, 12)
    size = _check_int('size', size, 32, 300)
    seed = _check_int('seed', seed, 0, 0)
    classes = _check_classes(classes)
    out_dir = osp.abspath(out_dir)
    _prepare_out_dir(out_dir, overwrite)

    patients = _patient_ids(classes, patients_per_class, seed)
    meta: Dict[str, dict] = {}
    truth: Dict[str, dict] = {}
    for pid in sorted(patients):
        cls, index = patients[pid]
        code = OPENSRH_CLASSES.index(cls)
        p_values = perturb(
            class_profile(cls), 'patient',
            np.random.default_rng([seed, _PATIENT, code, index]))
        meta_slides, truth_slides = {}, {}
        for s in range(slides):
            slide = str(s + 1)
            s_values = perturb(
                p_values, 'slide',
                np.random.default_rng([seed, _SLIDE, code, index, s]))
            folder = f'studies/{pid}/{slide}/patches'
            os.makedirs(osp.join(out_dir, folder), exist_ok=True)
            paths: List[str] = []
            truth_patches = {}
            for k in range(patches):
                rng = np.random.default_rng([seed, _PATCH, code, index, s, k])
                values = as_dict(perturb(s_values, 'patch', rng))
                image = render_srh_patch(values, rng, size)
                rel = f'{folder}/{pid}-{slide}-{k + 1:04d}.tif'
                tifffile.imwrite(
                    osp.join(out_dir, rel), image, photometric='minisblack')
                paths.append(rel)
                truth_patches[rel] = values
            normal = cls == NORMAL_CLASS
            meta_slides[slide] = {
                'tumor_patches': [] if normal else paths,
                'normal_patches': paths if normal else [],
            }
            truth_slides[slide] = {
                'attributes': as_dict(s_values),
                'patches': truth_patches
            }
        meta[pid] = {'class': cls, 'slides': meta_slides}
        truth[pid] = {
            'class': cls,
            'attributes': as_dict(p_values),
            'slides': truth_slides
        }

    split = _split(patients, classes, seed)
    _write_json(osp.join(out_dir, META_FILE), meta)
    _write_json(osp.join(out_dir, SPLIT_FILE), split)
    _write_json(
        osp.join(out_dir, ATTRIBUTES_FILE), {
            'attributes': dict(ATTRIBUTES),
            'classes': list(classes),
            'generator': {
                'seed': seed,
                'size': size,
                'version': GENERATOR_VERSION
            },
            'patients': truth,
        })
    return {
        'out_dir': out_dir,
        'classes': list(classes),
        'patients': len(patients),
        'slides': len(patients) * slides,
        'patches': len(patients) * slides * patches,
        'train_patients': len(split['train']),
        'val_patients': len(split['val']),
        'size': size,
        'seed': seed,
        'meta_file': osp.join(out_dir, META_FILE),
        'split_file': osp.join(out_dir, SPLIT_FILE),
        'attributes_file': osp.join(out_dir, ATTRIBUTES_FILE),
    }


def _check_int(name: str, value, minimum: int, example: int) -> int:
    try:
        if isinstance(value, bool):
            raise TypeError
        number = operator.index(value)
    except TypeError:
        number = None
    if number is None or number < minimum:
        raise ValueError(f'{name} must be an integer >= {minimum}, got '
                         f'{value!r}; e.g. {name}={max(example, minimum)}.')
    return int(number)


def _check_classes(classes: Sequence[str]) -> tuple:
    if isinstance(classes, str):
        raise ValueError(f'classes must be a list of class names, got the '
                         f'string {classes!r}; write classes=[{classes!r}].')
    classes = tuple(classes)
    if not classes:
        raise ValueError(f'classes is empty; give some of '
                         f'{list(OPENSRH_CLASSES)} (default: all).')
    unknown = [c for c in classes if c not in OPENSRH_CLASSES]
    if unknown:
        raise ValueError(f'unknown classes {unknown}; synthetic SRH knows '
                         f'{list(OPENSRH_CLASSES)}.')
    repeated = sorted({c for c in classes if classes.count(c) > 1})
    if repeated:
        raise ValueError(f'classes {repeated} are listed more than once; '
                         f'give each class once.')
    return classes


def _patient_ids(classes: Sequence[str], per_class: int,
                 seed: int) -> Dict[str, tuple]:
    """``{patient_id: (class, index within class)}`` in seeded id order."""
    total = len(classes) * per_class
    order = np.random.default_rng([seed, _ORDER, total]).permutation(total)
    width = max(4, len(str(total)))
    patients = {}
    for i in range(per_class):
        for c, cls in enumerate(classes):
            number = int(order[i * len(classes) + c]) + 1
            patients[f'SYN{number:0{width}d}'] = (cls, i)
    return patients


def _split(patients: Dict[str, tuple], classes: Sequence[str],
           seed: int) -> Dict[str, List[str]]:
    """Patient-disjoint split: per class ``round(n / 3)`` (>= 1 if n >= 2)
    patients to ``val``, the rest to ``train``."""
    train, val = [], []
    for cls in classes:
        members = sorted(p for p, (c, _) in patients.items() if c == cls)
        n_val = 0 if len(members) < 2 else max(1, int(round(len(members) / 3)))
        rng = np.random.default_rng([seed, _SPLIT, OPENSRH_CLASSES.index(cls)])
        chosen = set(rng.permutation(len(members))[:n_val].tolist())
        for i, pid in enumerate(members):
            (val if i in chosen else train).append(pid)
    return {'train': sorted(train), 'val': sorted(val)}


def _write_json(path: str, obj) -> None:
    os.makedirs(osp.dirname(path), exist_ok=True)
    with open(path, 'w', encoding='utf-8', newline='\n') as f:
        json.dump(obj, f, indent=1)
        f.write('\n')


def _previous_output(out_dir: str):
    """Files of an earlier synthetic output in ``out_dir``, or None."""
    try:
        with open(osp.join(out_dir, ATTRIBUTES_FILE), encoding='utf-8') as f:
            truth = json.load(f)
        if not isinstance(truth.get('generator'), dict) or not isinstance(
                truth.get('patients'), dict):
            return None
        files = [META_FILE, SPLIT_FILE, ATTRIBUTES_FILE]
        for patient in truth['patients'].values():
            for slide in patient['slides'].values():
                files.extend(slide['patches'])
    except (OSError, ValueError, TypeError, KeyError, AttributeError):
        return None
    return [
        resolve_under_root(out_dir, rel, f'{ATTRIBUTES_FILE} in {out_dir}')
        for rel in files
    ]


def _prepare_out_dir(out_dir: str, overwrite: bool) -> None:
    """Create ``out_dir`` or clear an earlier synthetic output from it."""
    if osp.exists(out_dir) and not osp.isdir(out_dir):
        raise ValueError(f'out_dir {out_dir!r} is a file; choose a folder '
                         f'path (missing or empty).')
    os.makedirs(out_dir, exist_ok=True)
    if not os.listdir(out_dir):
        return
    previous = _previous_output(out_dir)
    if previous is None:
        if overwrite:
            return
        raise ValueError(
            f'out_dir {out_dir!r} is not empty and is not an earlier '
            f'synthetic SRH output (no readable {ATTRIBUTES_FILE}). Choose '
            f'an empty or new folder, or pass overwrite=True (--overwrite on '
            f'the command line) to write into it anyway.')
    for path in previous:
        if osp.isfile(path):
            os.remove(path)
    for sub in ('studies', 'meta'):
        for root, _, _ in sorted(
                os.walk(osp.join(out_dir, sub)),
                key=lambda entry: -len(entry[0])):
            if not os.listdir(root):
                os.rmdir(root)
