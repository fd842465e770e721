/* libFuzzer helpers: the parsers under test read files, so each input is
 * written to an anonymous memory file and handed over as /proc/self/fd/N. */
#ifndef KVL_FUZZ_COMMON_H
#define KVL_FUZZ_COMMON_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/mman.h>
#include <unistd.h>

/* Returns the fd (>= 0) and fills path, or -1. */
static inline int fuzz_memfile(const uint8_t *data, size_t size, char *path,
                               size_t cap)
{
    int fd = memfd_create("kvl-fuzz", 0);
    if (fd < 0)
        return -1;
    size_t off = 0;
    while (off < size) {
        ssize_t w = write(fd, data + off, size - off);
        if (w <= 0) {
            close(fd);
            return -1;
        }
        off += (size_t)w;
    }
    snprintf(path, cap, "/proc/self/fd/%d", fd);
    return fd;
}

#endif
