"""The import-time version check refuses only what is known to break, with
the reason and the fix, and warns for untested versions."""
import warnings

import pytest

from pyramidkd_mm import compat


def fake_versions(monkeypatch, **found):
    real = compat.version
    monkeypatch.setattr(compat, 'version',
                        lambda name: found.get(name) or real(name))


def test_installed_matrix_passes_without_warnings():
    with warnings.catch_warnings():
        warnings.simplefilter('error')
        compat.check_versions()


@pytest.mark.parametrize('package,found', [
    ('mmdet', '3.2.0'), ('mmengine', '0.10.4'), ('torch', '2.14.1'),
    ('mmsegmentation', '1.1.0')])
def test_untested_versions_in_range_warn(monkeypatch, package, found):
    fake_versions(monkeypatch, **{package: found})
    with pytest.warns(UserWarning, match=f'{package}=={found}'):
        compat.check_versions()


@pytest.mark.parametrize('package,found,fix', [
    ('mmdet', '2.28.2', 'pip install mmdet==3.3.0'),
    ('mmcv', '1.7.2', 'mmcv==2.1.0'),
    ('mmengine', '1.0.0', 'pip install mmengine==0.10.7'),
    ('torch', '1.13.1', 'torch==2.13.0'),
])
def test_known_breaking_versions_name_reason_and_fix(
        monkeypatch, package, found, fix):
    fake_versions(monkeypatch, **{package: found})
    with pytest.raises(ImportError, match=f'{package}=={found}') as err:
        compat.check_versions()
    assert fix in str(err.value) and 'needs' in str(err.value)


def test_mmcv_without_ops_warns_that_det_and_seg_need_them(monkeypatch):
    # classification and the toy models import no mmcv.ops: not refused
    monkeypatch.setattr(compat, 'find_spec',
                        lambda name: None if name == 'mmcv._ext' else 1)
    with pytest.warns(UserWarning, match='compiled ops') as record:
        compat.check_versions()
    assert 'mmdet, mmseg' in str(record[-1].message)


def test_mmcv_lite_counts_as_mmcv(monkeypatch):
    real = compat.version
    installed = {'mmcv-lite': '2.1.0'}

    def version(name):
        if name.startswith('mmcv') and name not in installed:
            raise compat.PackageNotFoundError(name)
        return installed.get(name) or real(name)

    monkeypatch.setattr(compat, 'version', version)
    monkeypatch.setattr(compat, 'find_spec', lambda name: None)
    with pytest.warns(UserWarning, match='compiled ops'):
        compat.check_versions()  # no 'needs mmcv' error
    installed.clear()
    with pytest.raises(ImportError, match='needs mmcv'):
        compat.check_versions()
