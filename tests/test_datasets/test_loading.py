"""Loading transforms: round trips against tifffile / h5py / PIL and every
error path."""
import os
import pickle

import h5py
import numpy as np
import pytest
import tifffile
import torch
from PIL import Image

from hlss_plugin.datasets.transforms.loading import (LoadH5Patch,
                                                     LoadPatchImage,
                                                     LoadSRHPatch)
from hlss_plugin.errors import BadPatchError


def rng():
    return np.random.default_rng(0)


def write_srh(path, arr=None):
    if arr is None:
        arr = rng().integers(0, 65535, (2, 12, 10), dtype=np.uint16)
    tifffile.imwrite(str(path), arr)
    return arr


def write_bag(path, arr, key='imgs'):
    with h5py.File(str(path), 'w') as f:
        f.create_dataset(key, data=arr)


def expect_bad(transform, results, path, *words):
    with pytest.raises(BadPatchError) as info:
        transform(results)
    msg = str(info.value)
    assert info.value.path == str(path)
    assert str(path) in msg
    for word in words:
        assert word in msg, msg
    return msg


# ----------------------------------------------------------------- SRH TIFF
def test_srh_round_trip(tmp_path):
    path = tmp_path / 'p.tif'
    arr = write_srh(path)
    out = LoadSRHPatch()(dict(img_path=str(path), patient='P'))
    assert out['img'].dtype == torch.float32
    assert out['img'].shape == (2, 12, 10)
    np.testing.assert_array_equal(out['img'].numpy(), arr.astype(np.float32))
    assert out['ori_shape'] == out['img_shape'] == (12, 10)
    assert out['patient'] == 'P'


def test_srh_registered():
    from mmengine.registry import init_default_scope
    from mmpretrain.registry import TRANSFORMS
    init_default_scope('mmpretrain')
    for name in ('LoadSRHPatch', 'LoadH5Patch', 'LoadPatchImage'):
        assert TRANSFORMS.get(name) is not None
    assert TRANSFORMS.build(dict(type='LoadSRHPatch', channels=3)).channels \
        == 3


def test_srh_errors(tmp_path):
    load = LoadSRHPatch()
    missing = tmp_path / 'missing.tif'
    expect_bad(load, dict(img_path=str(missing)), missing, 'not found')

    corrupt = tmp_path / 'corrupt.tif'
    corrupt.write_bytes(b'this is not a tiff at all' * 10)
    expect_bad(load, dict(img_path=str(corrupt)), corrupt, 'TIFF')

    truncated = tmp_path / 'truncated.tif'
    write_srh(truncated)
    data = truncated.read_bytes()
    truncated.write_bytes(data[:len(data) // 3])
    with pytest.raises(BadPatchError):
        load(dict(img_path=str(truncated)))

    wrong_dtype = tmp_path / 'u8.tif'
    tifffile.imwrite(str(wrong_dtype), np.zeros((2, 8, 8), np.uint8))
    expect_bad(load, dict(img_path=str(wrong_dtype)), wrong_dtype, 'uint16',
               'uint8')

    wrong_c = tmp_path / 'c3.tif'
    tifffile.imwrite(str(wrong_c), np.zeros((3, 8, 8), np.uint16))
    expect_bad(load, dict(img_path=str(wrong_c)), wrong_c, '(2, H, W)',
               '(3, 8, 8)')

    channel_last = tmp_path / 'hwc.tif'
    tifffile.imwrite(str(channel_last), np.zeros((8, 9, 2), np.uint16))
    expect_bad(load, dict(img_path=str(channel_last)), channel_last,
               'transpose')


def test_srh_channels_option(tmp_path):
    path = tmp_path / 'c3.tif'
    tifffile.imwrite(str(path), np.ones((3, 4, 4), np.uint16))
    assert LoadSRHPatch(channels=3)(dict(img_path=str(path)))['img'].shape \
        == (3, 4, 4)
    with pytest.raises(ValueError, match='channels'):
        LoadSRHPatch(channels=0)


# --------------------------------------------------------------------- HDF5
@pytest.mark.parametrize('dtype,scale', [(np.uint8, 255.0),
                                         (np.uint16, 65535.0)])
def test_h5_round_trip(tmp_path, dtype, scale):
    path = tmp_path / 'bag.h5'
    arr = rng().integers(0, np.iinfo(dtype).max, (5, 6, 7, 3), dtype=dtype)
    write_bag(path, arr)
    load = LoadH5Patch()
    for idx in (0, 3, 4):
        out = load(dict(img_path=str(path), patch_idx=idx))
        expect = arr[idx].astype(np.float32).transpose(2, 0, 1) / np.float32(
            scale)
        assert out['img'].dtype == torch.float32
        np.testing.assert_allclose(out['img'].numpy(), expect, rtol=1e-6)
        assert out['img_shape'] == (6, 7)
    assert float(load(dict(img_path=str(path), patch_idx=0))['img'].max()) \
        <= 1.0


def test_h5_handle_cache_and_fork(tmp_path):
    paths = []
    for i in range(3):
        paths.append(tmp_path / f'b{i}.h5')
        write_bag(paths[-1], np.full((2, 4, 4, 3), i, np.uint8))
    load = LoadH5Patch(max_open_files=2)
    for p in paths:
        load(dict(img_path=str(p), patch_idx=1))
    assert list(load._files) == [str(paths[1]), str(paths[2])]  # LRU
    cached = load._files[str(paths[2])]
    load(dict(img_path=str(paths[2]), patch_idx=0))
    assert load._files[str(paths[2])] is cached  # reused, not reopened
    # a forked worker sees another pid: the inherited handles are dropped
    load._pid = -1
    out = load(dict(img_path=str(paths[0]), patch_idx=0))
    assert list(load._files) == [str(paths[0])]
    assert load._pid == os.getpid()
    assert float(out['img'][0, 0, 0]) == 0.0
    # spawn workers pickle the transform: the cache does not travel
    clone = pickle.loads(pickle.dumps(load))
    assert len(clone._files) == 0
    assert torch.equal(
        clone(dict(img_path=str(paths[1]), patch_idx=0))['img'],
        torch.full((3, 4, 4), 1 / 255))
    load.close()
    clone.close()


def _read_in_child(load, path, queue):
    # ``load`` is inherited through fork (not pickled): its cache still
    # holds the parent's handle and must be dropped, not used.
    inherited = list(load._files)
    img = load(dict(img_path=path, patch_idx=1))['img']
    queue.put((os.getpid(), load._pid, inherited, img.sum().item()))


def test_h5_real_fork_reopens(tmp_path):
    import multiprocessing as mp
    path = tmp_path / 'bag.h5'
    arr = np.arange(2 * 4 * 4 * 3, dtype=np.uint8).reshape(2, 4, 4, 3)
    write_bag(path, arr)
    load = LoadH5Patch()
    load(dict(img_path=str(path), patch_idx=0))  # parent holds a handle
    parent_handle = load._files[str(path)]
    ctx = mp.get_context('fork')
    queue = ctx.Queue()
    child = ctx.Process(target=_read_in_child, args=(load, str(path), queue))
    child.start()
    pid, seen_pid, inherited, total = queue.get(timeout=30)
    child.join(timeout=30)
    assert child.exitcode == 0
    assert inherited == [str(path)]  # really went through the fork path
    assert pid != os.getpid() and seen_pid == pid
    assert total == pytest.approx(arr[1].sum() / 255.0, rel=1e-5)
    assert load._files[str(path)] is parent_handle and parent_handle.id.valid
    load(dict(img_path=str(path), patch_idx=1))  # parent handle still works
    load.close()


def test_h5_key_override(tmp_path):
    path = tmp_path / 'bag.h5'
    write_bag(path, np.zeros((1, 4, 4, 3), np.uint8), key='patches')
    out = LoadH5Patch(key='patches')(dict(img_path=str(path), patch_idx=0))
    assert out['img'].shape == (3, 4, 4)
    out = LoadH5Patch()(dict(img_path=str(path), patch_idx=0,
                             h5_key='patches'))
    assert out['img'].shape == (3, 4, 4)


def test_h5_errors(tmp_path):
    load = LoadH5Patch()
    missing = tmp_path / 'missing.h5'
    expect_bad(load, dict(img_path=str(missing), patch_idx=0), missing,
               'not found')

    corrupt = tmp_path / 'corrupt.h5'
    corrupt.write_bytes(b'\x00garbage' * 100)
    expect_bad(load, dict(img_path=str(corrupt), patch_idx=0), corrupt,
               'HDF5')

    good = tmp_path / 'good.h5'
    write_bag(good, np.zeros((3, 4, 4, 3), np.uint8))
    for idx in (3, -1, 100):
        expect_bad(load, dict(img_path=str(good), patch_idx=idx), good,
                   'out of range', '3 patches')

    other_key = tmp_path / 'other_key.h5'
    write_bag(other_key, np.zeros((3, 4, 4, 3), np.uint8), key='features')
    expect_bad(load, dict(img_path=str(other_key), patch_idx=0), other_key,
               "'imgs'", 'features', 'key')

    wrong_dtype = tmp_path / 'f32.h5'
    write_bag(wrong_dtype, np.zeros((3, 4, 4, 3), np.float32))
    expect_bad(load, dict(img_path=str(wrong_dtype), patch_idx=0),
               wrong_dtype, 'float32', 'uint8')

    wrong_c = tmp_path / 'c4.h5'
    write_bag(wrong_c, np.zeros((3, 4, 4, 4), np.uint8))
    expect_bad(load, dict(img_path=str(wrong_c), patch_idx=0), wrong_c,
               '4 channels', 'expected 3')
    out = LoadH5Patch(channels=None)(dict(img_path=str(wrong_c),
                                          patch_idx=0))
    assert out['img'].shape == (4, 4, 4)

    wrong_rank = tmp_path / 'rank3.h5'
    write_bag(wrong_rank, np.zeros((3, 4, 4), np.uint8))
    expect_bad(load, dict(img_path=str(wrong_rank), patch_idx=0), wrong_rank,
               '(N, H, W, C)')

    with pytest.raises(ValueError, match='patch_idx'):
        load(dict(img_path=str(good)))
    load.close()


# ------------------------------------------------------------ generic image
def test_patch_image_formats(tmp_path):
    load = LoadPatchImage()
    r = rng()
    rgb = r.integers(0, 256, (9, 11, 3), dtype=np.uint8)

    png = tmp_path / 'a.png'
    Image.fromarray(rgb).save(png)
    out = load(dict(img_path=str(png)))
    np.testing.assert_allclose(out['img'].numpy(),
                               rgb.transpose(2, 0, 1) / 255.0, rtol=1e-6)
    assert out['img_shape'] == (9, 11) and out['raw_srh'] is False

    rgba = tmp_path / 'rgba.png'
    Image.fromarray(np.dstack([rgb, np.full((9, 11), 7, np.uint8)])).save(rgba)
    np.testing.assert_allclose(load(dict(img_path=str(rgba)))['img'].numpy(),
                               rgb.transpose(2, 0, 1) / 255.0, rtol=1e-6)

    gray = tmp_path / 'g.png'
    Image.fromarray(rgb[..., 0]).save(gray)
    assert load(dict(img_path=str(gray)))['img'].shape == (1, 9, 11)

    gray16 = tmp_path / 'g16.png'
    g16 = r.integers(0, 65535, (9, 11), dtype=np.uint16)
    Image.fromarray(g16).save(gray16)
    np.testing.assert_allclose(
        load(dict(img_path=str(gray16)))['img'].numpy()[0], g16 / 65535.0,
        rtol=1e-6)

    jpg = tmp_path / 'a.JPEG'
    Image.fromarray(rgb).save(jpg, quality=95)
    decoded = np.asarray(Image.open(jpg).convert('RGB'))
    np.testing.assert_allclose(load(dict(img_path=str(jpg)))['img'].numpy(),
                               decoded.transpose(2, 0, 1) / 255.0, rtol=1e-6)

    tif_rgb = tmp_path / 'rgb.tiff'
    tifffile.imwrite(str(tif_rgb), rgb)
    np.testing.assert_allclose(
        load(dict(img_path=str(tif_rgb)))['img'].numpy(),
        rgb.transpose(2, 0, 1) / 255.0, rtol=1e-6)

    tif16 = tmp_path / 'rgb16.tif'
    rgb16 = r.integers(0, 65535, (5, 6, 3), dtype=np.uint16)
    tifffile.imwrite(str(tif16), rgb16)
    np.testing.assert_allclose(load(dict(img_path=str(tif16)))['img'].numpy(),
                               rgb16.transpose(2, 0, 1) / 65535.0, rtol=1e-6)


def test_patch_image_srh_tiff_matches_srh_loader(tmp_path):
    path = tmp_path / 'srh.tif'
    write_srh(path)
    a = LoadPatchImage()(dict(img_path=str(path)))
    b = LoadSRHPatch()(dict(img_path=str(path)))
    assert a['raw_srh'] is True
    assert torch.equal(a['img'], b['img'])


def test_patch_image_errors(tmp_path):
    load = LoadPatchImage()
    missing = tmp_path / 'missing.png'
    expect_bad(load, dict(img_path=str(missing)), missing, 'not found')

    corrupt = tmp_path / 'corrupt.jpg'
    corrupt.write_bytes(b'\xff\xd8 definitely not a jpeg')
    expect_bad(load, dict(img_path=str(corrupt)), corrupt, 'PIL')

    corrupt_tif = tmp_path / 'corrupt.tif'
    corrupt_tif.write_bytes(b'II*\x00 garbage')
    expect_bad(load, dict(img_path=str(corrupt_tif)), corrupt_tif, 'TIFF')

    bmp = tmp_path / 'a.bmp'
    bmp.write_bytes(b'BM')
    expect_bad(load, dict(img_path=str(bmp)), bmp, '.bmp', '.png')

    five = tmp_path / 'five.tif'
    tifffile.imwrite(str(five), np.zeros((5, 6, 7), np.uint16))
    expect_bad(load, dict(img_path=str(five)), five, 'layout', '(5, 6, 7)')

    floats = tmp_path / 'f.tif'
    tifffile.imwrite(str(floats), np.zeros((6, 7, 3), np.float32))
    expect_bad(load, dict(img_path=str(floats)), floats, 'float32')
