#!/usr/bin/env python3
"""Writes tests/wsi/clam_coords_vectors.json: tile coords made by CLAM's own code, for TilingClam tests.

Each case names a slide (a synthetic one that `pathvlm synth slides` writes with the given options, lossless so its
pixels do not depend on a JPEG codec, or a shared test slide), the pathvlm `tile` settings, the same settings in
CLAM's terms, and the coords CLAM's WholeSlideImage.segmentTissue + process_contours wrote to its .h5.

    python3 tests/wsi/clam_coords_vectors.py --pathvlm build/release/pathvlm --clam /path/to/CLAM

Needs openslide-python, opencv-python, h5py and numpy. CLAM imports matplotlib and tqdm at module level without
using them here; when they are missing, empty stand-ins are put in their place.
Segmentation levels smaller than one TIFF tile are avoided: OpenSlide 3.4 with libtiff 4.5 (Debian 12) decodes
them wrongly, and pathvlm reads them from a finer level instead.
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile
import types

HERE = os.path.dirname(os.path.abspath(__file__))
SHARED = os.path.join(HERE, '..', '..', '..', 'shared', 'data', 'slides')

# name, slide, pathvlm tissue.* keys, pathvlm tiling.* keys.
CASES = [
    ('defaults_four_pt', {'synth': {'width': 2048, 'height': 1536, 'levels': 4, 'tile_size': 128, 'seed': 11}},
     {'a_t': 0.5, 'a_h': 0.02, 'seg_downsample': 8}, {'magnification': 40, 'patch_size': 256, 'tissue_test': 'four_pt'}),
    ('four_pt_hard_overlap', {'synth': {'width': 2048, 'height': 1536, 'levels': 3, 'seed': 12}},
     {'a_t': 0.5, 'a_h': 0.01, 'sthresh': 15, 'mthresh': 11, 'seg_downsample': 4},
     {'magnification': 40, 'patch_size': 128, 'overlap': 32, 'tissue_test': 'four_pt_hard'}),
    ('center_level1', {'synth': {'width': 2560, 'height': 1920, 'levels': 3, 'seed': 13, 'max_regions': 6}},
     {'a_t': 0.2, 'a_h': 0.01, 'seg_downsample': 4}, {'magnification': 20, 'patch_size': 64, 'tissue_test': 'center'}),
    ('otsu_holes', {'synth': {'width': 2048, 'height': 1536, 'levels': 3, 'seed': 14, 'max_regions': 6}},
     {'otsu': True, 'mthresh': 3, 'close': 0, 'a_t': 0.05, 'a_h': 0.002, 'max_n_holes': 2, 'seg_downsample': 2},
     {'magnification': 40, 'patch_size': 96, 'tissue_test': 'four_pt'}),
    ('tcga_like', {'synth': {'width': 2048, 'height': 1536, 'levels': 3, 'seed': 15}},
     {'sthresh': 20, 'close': 8, 'a_t': 0.1, 'a_h': 0.02, 'seg_downsample': 4},
     {'magnification': 10, 'patch_size': 32, 'tissue_test': 'four_pt'}),
    ('boxes_tiff', {'shared': 'boxes.tiff', 'mpp': 0.25},
     {'a_t': 0.01, 'a_h': 0.001, 'seg_downsample': 2}, {'magnification': 40, 'patch_size': 32, 'tissue_test': 'four_pt'}),
]

TISSUE_DEFAULTS = {'sthresh': 8, 'mthresh': 7, 'close': 4, 'otsu': False, 'a_t': 100, 'a_h': 16, 'max_n_holes': 8,
                   'seg_downsample': 64}


def import_clam(clam_dir):
    for name in ('matplotlib', 'matplotlib.pyplot', 'tqdm'):
        try:
            __import__(name)
        except ImportError:
            module = types.ModuleType(name)
            module.tqdm = lambda iterable=None, *a, **k: iterable
            sys.modules[name] = module
    sys.path.insert(0, clam_dir)
    from wsi_core.WholeSlideImage import WholeSlideImage
    return WholeSlideImage


def clam_coords(WholeSlideImage, slide_path, tissue, tiling, out_dir):
    import h5py
    wsi = WholeSlideImage(slide_path)
    osr = wsi.getOpenSlide()
    seg_level = osr.get_best_level_for_downsample(tissue['seg_downsample'])
    w, h = osr.level_dimensions[seg_level]
    tile_w = int(osr.properties.get('openslide.level[%d].tile-width' % seg_level, 0))
    tile_h = int(osr.properties.get('openslide.level[%d].tile-height' % seg_level, 0))
    assert tile_w <= w and tile_h <= h, 'segmentation level %d of %s is smaller than a tile' % (seg_level, slide_path)
    wsi.segmentTissue(seg_level=seg_level, sthresh=tissue['sthresh'], mthresh=tissue['mthresh'],
                      close=tissue['close'], use_otsu=tissue['otsu'],
                      filter_params={'a_t': tissue['a_t'], 'a_h': tissue['a_h'], 'max_n_holes': tissue['max_n_holes']})
    # pathvlm's magnification is read at the level whose downsample is level-0 magnification / target (40x slides).
    patch_level = osr.get_best_level_for_downsample(40.0 / tiling['magnification'] * 1.001)
    assert abs(osr.level_downsamples[patch_level] - 40.0 / tiling['magnification']) < 1e-6
    patch, overlap = tiling['patch_size'], tiling.get('overlap', 0)
    clam = {'seg_level': seg_level, 'sthresh': tissue['sthresh'], 'mthresh': tissue['mthresh'], 'close': tissue['close'],
            'use_otsu': tissue['otsu'], 'a_t': tissue['a_t'], 'a_h': tissue['a_h'], 'max_n_holes': tissue['max_n_holes'],
            'patch_level': patch_level, 'patch_size': patch, 'step_size': patch - overlap,
            'contour_fn': tiling['tissue_test'], 'use_padding': True}
    wsi.process_contours(out_dir, patch_level=patch_level, patch_size=patch, step_size=patch - overlap,
                         contour_fn=tiling['tissue_test'], use_padding=True)
    h5_path = os.path.join(out_dir, wsi.name + '.h5')
    coords = h5py.File(h5_path, 'r')['coords'][:].tolist() if os.path.exists(h5_path) else []
    clam['regions'] = len(wsi.contours_tissue)
    clam['holes'] = sum(len(holes) for holes in wsi.holes_tissue)
    return clam, coords


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument('--pathvlm', required=True, help='the pathvlm binary (writes the synthetic slides)')
    parser.add_argument('--clam', required=True, help='a checkout of mahmoodlab/CLAM')
    parser.add_argument('--out', default=os.path.join(HERE, 'clam_coords_vectors.json'))
    args = parser.parse_args()
    WholeSlideImage = import_clam(os.path.abspath(args.clam))
    cases = []
    with tempfile.TemporaryDirectory() as tmp:
        for name, slide, tissue_keys, tiling in CASES:
            tissue = dict(TISSUE_DEFAULTS, **tissue_keys)
            if 'synth' in slide:
                s = slide['synth']
                folder = os.path.join(tmp, name)
                subprocess.run([args.pathvlm, 'synth', 'slides', '--out', folder, '--count', '1', '--compression',
                                'deflate', '--width', str(s['width']), '--height', str(s['height']), '--levels',
                                str(s['levels']), '--seed', str(s['seed']), '--max-regions', str(s.get('max_regions', 4)),
                                '--tile-size', str(s.get('tile_size', 256))],
                               check=True, capture_output=True)
                path = os.path.join(folder, 'slide_000.tiff')
            else:
                path = os.path.join(SHARED, slide['shared'])
            out_dir = os.path.join(tmp, name + '_clam')
            os.makedirs(out_dir)
            clam, coords = clam_coords(WholeSlideImage, path, tissue, tiling, out_dir)
            cases.append({'name': name, 'slide': slide, 'tissue': tissue, 'tiling': tiling, 'clam': clam,
                          'coords': coords})
            print('%s: %d regions, %d holes, %d coords' % (name, clam['regions'], clam['holes'], len(coords)),
                  file=sys.stderr)
    with open(args.out, 'w') as f:
        json.dump({'written_by': 'tests/wsi/clam_coords_vectors.py (CLAM WholeSlideImage.segmentTissue + '
                                 'process_contours)', 'cases': cases}, f, separators=(',', ':'))
        f.write('\n')


if __name__ == '__main__':
    main()
