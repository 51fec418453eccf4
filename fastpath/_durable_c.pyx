# cython: language_level=3
"""Durable placement of a written file, without the GIL. Twin: _durable_py.py."""

from libc.errno cimport errno, ENOENT, EEXIST
from libc.stdlib cimport malloc, free
from libc.string cimport memcpy, strlen

from nubis.fastpath._durable_py import DIR_MODE

import os

cdef extern from "<fcntl.h>" nogil:
    int c_open "open"(const char* path, int flags)
    int O_RDONLY
    int O_DIRECTORY
    int O_CLOEXEC

cdef extern from "<unistd.h>" nogil:
    int fdatasync(int fd)
    int fsync(int fd)
    int close(int fd)

cdef extern from "<stdio.h>" nogil:
    int rename(const char* old, const char* new)

cdef extern from "<sys/stat.h>" nogil:
    ctypedef unsigned int mode_t
    int mkdir(const char* path, mode_t mode)


cdef int _fsync_dir(const char* path) noexcept nogil:
    """Return 0, or the errno of the failed open/fsync."""
    cdef int fd = c_open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
    cdef int err = 0
    if fd < 0:
        return errno
    if fsync(fd) != 0:
        err = errno
    close(fd)
    return err


cdef int _makedirs(char* buf, size_t n, mode_t mode, int* created) noexcept nogil:
    """mkdir -p on ``buf`` (modified in place, restored); 0 or an errno.

    Creates from the root down; ``EEXIST`` is fine. ``created`` counts the
    directories made (always the deepest ones, contiguously).
    """
    cdef size_t i
    cdef int rc
    created[0] = 0
    for i in range(1, n + 1):
        if i == n or buf[i] == b'/':
            if i < n:
                buf[i] = 0
            rc = mkdir(buf, mode)
            if i < n:
                buf[i] = b'/'
            if rc == 0:
                created[0] += 1
            elif errno != EEXIST:
                return errno
    return 0


def place_durably(bytes tmp, bytes dest_dir, bytes target, int fd, bint sync):
    """Rename ``tmp`` to ``target`` in ``dest_dir`` (created as needed), then make it durable."""
    cdef const char* c_tmp = tmp
    cdef const char* c_target = target
    cdef size_t n = len(dest_dir)
    cdef char* buf = <char*>malloc(n + 1)
    cdef int created = 0
    cdef int err = 0
    cdef int step = 0
    cdef int level
    cdef size_t i
    cdef mode_t mode = DIR_MODE
    if buf == NULL:
        raise MemoryError()
    memcpy(buf, <const char*>dest_dir, n)
    buf[n] = 0
    try:
        with nogil:
            err = 0
            if rename(c_tmp, c_target) != 0:
                err = errno
            if err == ENOENT:
                step = 1
                err = _makedirs(buf, n, mode, &created)
                if err == 0:
                    step = 2
                    if rename(c_tmp, c_target) != 0:
                        err = errno
            if err == 0 and sync:
                step = 3
                if fdatasync(fd) != 0:
                    err = errno
                if err == 0:
                    step = 4
                    err = _fsync_dir(buf)
                # the parent of each created directory, deepest first
                level = 0
                i = n
                while err == 0 and level < created:
                    while i > 0 and buf[i - 1] != b'/':
                        i -= 1
                    if i <= 1:
                        break
                    i -= 1
                    buf[i] = 0
                    err = _fsync_dir(buf)
                    level += 1
        if err != 0:
            what = (tmp, dest_dir, tmp, fd, dest_dir)[min(step, 4)]
            raise OSError(err, os.strerror(err), what)
        return created
    finally:
        free(buf)
