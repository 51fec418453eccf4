"""The project's bootable test image, built from Debian packages (``nubis image build-test``).

See :func:`nubis.testimage.build.build_test_image`.
"""

from nubis.testimage.build import (
    ImageFile,
    TestImageSet,
    build_test_image,
    default_cache_dir,
    load_cached,
)
from nubis.testimage.errors import TestImageError

__all__ = ["ImageFile", "TestImageError", "TestImageSet", "build_test_image",
           "default_cache_dir", "load_cached"]
