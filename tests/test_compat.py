"""The import-time version check names the package and the fix."""
import pytest

from pyramidkd_mm import compat


def test_installed_matrix_passes():
    compat.check_versions()


@pytest.mark.parametrize('package,bad,fix', [
    ('mmdet', '3.2.0', 'pip install mmdet==3.3.0'),
    ('torch', '2.14.0', 'torch==2.13.0'),
    ('numpy', '1.21.0', 'numpy>=1.23'),
])
def test_mismatch_names_package_and_fix(monkeypatch, package, bad, fix):
    real = compat.version
    monkeypatch.setattr(compat, 'version',
                        lambda name: bad if name == package else real(name))
    with pytest.raises(ImportError, match=package) as err:
        compat.check_versions()
    assert fix in str(err.value)
