"""Path helpers that keep data paths inside ``data_root``."""
import os
import os.path as osp


def resolve_under_root(data_root: str, rel_path: str, where: str) -> str:
    """Join ``rel_path`` to ``data_root`` and refuse paths that leave it.

    The check is lexical (``..`` and absolute paths), so a ``data_root`` that
    holds symbolic links to another disk keeps working.

    Args:
        data_root (str): Dataset root folder. ``''`` means "no root": the
            path is used as given.
        rel_path (str): Path from a metadata file, relative to ``data_root``.
        where (str): Where the path came from (file and key), for the error.

    Returns:
        str: The joined, normalised path.

    Raises:
        ValueError: If the path is absolute or climbs out of ``data_root``
            (with ``data_root='/'`` every absolute path stays inside).

    Example:
        >>> resolve_under_root('/data/srh', 'studies/P1/1/patches/a.tif', 'x')
        '/data/srh/studies/P1/1/patches/a.tif'
    """
    if not isinstance(rel_path, str) or not rel_path:
        raise ValueError(f'{where}: expected a non-empty relative path, got '
                         f'{rel_path!r}. Fix the entry in the metadata file.')
    if not data_root:
        return osp.normpath(rel_path)
    root = osp.normpath(osp.abspath(data_root))
    joined = osp.normpath(osp.join(root, rel_path))
    # A filesystem root ('/', 'C:\\') already ends with the separator.
    prefix = root if root.endswith(os.sep) else root + os.sep
    if joined != root and not joined.startswith(prefix):
        raise ValueError(
            f'{where}: path {rel_path!r} leaves data_root {root!r}. Patch '
            f'paths must stay inside data_root; fix the entry or move the '
            f'data under data_root.')
    return joined
