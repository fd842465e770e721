#include "test_util.h"

#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int kvt_passed, kvt_failed;

int kvt_finish(void)
{
    printf("%d passed, %d failed\n", kvt_passed, kvt_failed);
    return kvt_failed ? 1 : 0;
}

int kvt_skip(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    printf("SKIP: ");
    vprintf(fmt, ap);
    printf("\n");
    va_end(ap);
    return 77;
}

static const char *ring_path(const char *a, const char *b)
{
    static char bufs[8][4096];
    static int next;
    char *out = bufs[next++ % 8];
    snprintf(out, 4096, "%s/%s", a, b);
    return out;
}

/* $KVL_SOURCE_DIR overrides the build's source folder (tests run from a
 * bundle on another machine, scripts/device-bundle.sh). */
const char *kvt_source_path(const char *rel)
{
    const char *env = getenv("KVL_SOURCE_DIR");
    return ring_path(env && *env ? env : KVL_SOURCE_DIR, rel);
}

const char *kvt_shared_path(const char *rel)
{
    const char *env = getenv("KVL_SHARED_DIR");
    return ring_path(env && *env ? env : KVL_SHARED_DIR, rel);
}

int kvt_file_exists(const char *path) { return access(path, R_OK) == 0; }

static char temp_paths[64][256];
static int n_temp;

static void remove_temps(void)
{
    for (int i = 0; i < n_temp; i++)
        unlink(temp_paths[i]);
}

const char *kvt_temp_path(const char *suffix)
{
    if (n_temp == 0)
        atexit(remove_temps);
    if (n_temp >= 64)
        n_temp = 0;
    char *p = temp_paths[n_temp++];
    snprintf(p, sizeof temp_paths[0], "/tmp/kvlab-test-%d-%d%s", (int)getpid(),
             n_temp, suffix);
    return p;
}

double kvt_rel_err(const float *a, const float *b, size_t n)
{
    double num = 0, den = 0;
    for (size_t i = 0; i < n; i++) {
        double d = (double)a[i] - (double)b[i];
        num += d * d;
        den += (double)b[i] * (double)b[i];
    }
    if (!isfinite(num))
        return INFINITY;
    return den > 0 ? sqrt(num / den) : sqrt(num);
}

int32_t kvt_argmax(const float *x, int32_t n)
{
    int32_t best = 0;
    for (int32_t i = 1; i < n; i++)
        if (x[i] > x[best])
            best = i;
    return best;
}
