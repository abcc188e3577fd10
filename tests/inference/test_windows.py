import numpy as np
import torch

from cmbflow.inference.windows import axis_tiles, sliding_window, window_tiles


def test_windows_tile_the_volume_and_own_every_voxel_once_with_context():
    for shape, largest in (((168, 200, 88), (160, 160, -1)), ((512, 448, 72), (160, 160, -1)), ((96, 96, 40), (128, 128, -1)),
                           ((336, 64, 40), (96, 64, -1))):
        tiles = window_tiles(shape, largest, (8, 8, 4), 0.1)
        for length, most, axis in zip(shape, largest, tiles):
            assert axis.window % 8 == 0 or axis.window == length
            assert axis.window <= most if most != -1 and length > most else axis.window == length
            assert axis.starts[0] == 0 and axis.starts[-1] + axis.window == length  # inside the volume, to its end
            owned = np.zeros(length, int)
            for start, (low, high) in zip(axis.starts, axis.owned):
                assert start <= low < high <= start + axis.window
                owned[low:high] += 1
                # at least half the asked overlap (0.1 x 160 = 16 voxels) of context inside the window on each side,
                # except at the volume's border
                if low > 0:
                    assert low - start >= 0.05 * most - 1
                if high < length:
                    assert start + axis.window - high >= 0.05 * most - 1
            assert (owned == 1).all()  # every voxel from exactly one window
        windows = np.prod([len(axis.starts) for axis in tiles])
        assert windows * np.prod([axis.window for axis in tiles]) / np.prod(shape) < 1.4  # a fixed 160 window costs 3x on the first


def test_axis_tiles_uses_one_window_when_the_axis_fits():
    assert axis_tiles(72, -1, 4, 0.1).owned == ((0, 72),)
    assert axis_tiles(120, 160, 8, 0.1).starts == (0,)
    assert len(axis_tiles(161, 160, 1, 0.1).starts) == 2


def test_sliding_window_takes_each_voxel_from_the_window_it_lies_deepest_in():
    """A predictor that writes, at every voxel, the input plus its distance to the window's nearest
    face: the output equals the input at every voxel (each window's own voxels, none lost, no
    blending), and the distances show each voxel came from a window where it has context."""
    rng = np.random.default_rng(0)
    image = rng.normal(size=(2, 70, 45, 12)).astype(np.float32)  # padded to 72 x 48 x 12 inside

    def predictor(window):
        grids = torch.meshgrid(*(torch.arange(n) for n in window.shape[2:]), indexing="ij")
        depth = torch.stack([torch.minimum(g, n - 1 - g) for g, n in zip(grids, window.shape[2:])]).amin(0)
        return window[:, :1].clone(), depth[None, None].float().expand(window.shape[0], 1, *window.shape[2:])

    for batch in (1, 3):
        copy, depth = sliding_window(predictor, image, (32, 16, -1), 0.25, (8, 8, 4), torch.device("cpu"), batch)
        assert copy.shape == (1, 70, 45, 12) and copy.dtype == torch.float32
        np.testing.assert_array_equal(copy[0].numpy(), image[0])
        # in-plane, away from the volume's border, every voxel lies >= 2 voxels inside its window (half the
        # overlap: 0.25 x 16 = 4 shared along y); Gaussian blending also mixed in windows' outermost voxels
        assert float(depth[0, 4:-4, 4:-4, 5:7].amin()) >= 2


def test_windows_read_any_view_and_add_into_a_mirrored_buffer_bit_for_bit():
    """A flipped, Fortran-ordered view gives the outputs of its contiguous copy; ``add_into`` a
    mirrored view of the first outputs gives the float32 sums of adding the two output volumes."""
    rng = np.random.default_rng(1)
    image = np.asfortranarray(rng.normal(size=(2, 70, 45, 12)).astype(np.float32))  # nibabel's order
    conv = torch.nn.Conv3d(2, 3, 3, padding=1).eval()

    def predictor(window):
        return (conv(window).to(torch.bfloat16),)  # a bfloat16 network output, as under autocast

    args = ((32, 16, -1), 0.25, (8, 8, 4), torch.device("cpu"))
    mirrored = np.flip(image, axis=1)
    (from_view,) = sliding_window(predictor, mirrored, *args)
    (from_copy,) = sliding_window(predictor, np.ascontiguousarray(mirrored), *args)
    assert torch.equal(from_view, from_copy)
    (first,) = sliding_window(predictor, image, *args)
    expected = first + torch.flip(from_copy, dims=(1,))
    assert sliding_window(predictor, mirrored, *args, add_into=(np.flip(first.permute(1, 2, 3, 0).numpy(), 0),)) is None
    assert torch.equal(first, expected)
