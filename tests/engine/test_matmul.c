/* The matrix kernels against a naive double-precision product computed
 * here, for every stored dtype and both paths (matvec for T = 1, tiled
 * sgemm for T > 1), with sizes that exercise the SIMD tails. */
#include "core/dtype.h"
#include "engine/cpu/matmul.h"
#include "test_util.h"

#include <math.h>
#include <stdlib.h>

static uint64_t rng = 12345;
static float frand(void)
{
    rng = rng * 6364136223846793005ull + 1442695040888963407ull;
    return (float)((double)(rng >> 11) / 9007199254740992.0 * 2.0 - 1.0);
}

static void check_case(kvl_dtype dt, int N, int K, int T, int with_bias)
{
    float *wf = malloc(sizeof(float) * N * K);
    void *ws = malloc(kvl_dtype_size(dt) * N * K);
    float *bf = malloc(sizeof(float) * N);
    float *x = malloc(sizeof(float) * T * K);
    float *out = malloc(sizeof(float) * T * N);
    float *ref = malloc(sizeof(float) * T * N);
    for (int i = 0; i < N * K; i++)
        wf[i] = frand();
    for (int i = 0; i < N; i++)
        bf[i] = frand();
    for (int i = 0; i < T * K; i++)
        x[i] = frand();
    kvl_convert_from_f32(ws, dt, wf, (size_t)N * K);
    /* The reference sees exactly the stored (rounded) weights. */
    kvl_convert_to_f32(wf, ws, dt, (size_t)N * K);
    kvl_weight w = {ws, dt, N, K};
    kvl_weight b = {bf, KVL_DTYPE_F32, 1, N};
    for (int t = 0; t < T; t++)
        for (int n = 0; n < N; n++) {
            double acc = with_bias ? bf[n] : 0.0;
            for (int k = 0; k < K; k++)
                acc += (double)wf[n * K + k] * x[t * K + k];
            ref[t * N + n] = (float)acc;
        }
    kvl_matmul_scratch scratch = {0};
    kvl_error err;
    for (int i = 0; i < T * N; i++)
        out[i] = NAN; /* poison: every output must be written */
    CHECK_OK(kvl_matmul(out, x, T, &w, with_bias ? &b : NULL, &scratch, 2, &err), &err);
    double e = kvt_rel_err(out, ref, (size_t)T * N);
    CHECK(e < 1e-5, "dtype %s N=%d K=%d T=%d bias=%d: rel err %g", kvl_dtype_name(dt), N, K,
          T, with_bias, e);
    kvl_matmul_scratch_free(&scratch);
    free(wf); free(ws); free(bf); free(x); free(out); free(ref);
}

int main(void)
{
    const kvl_dtype dts[] = {KVL_DTYPE_F32, KVL_DTYPE_BF16, KVL_DTYPE_F16};
    const int shapes[][2] = {{1, 1}, {7, 13}, {64, 64}, {33, 200}, {300, 97}, {1000, 1030}};
    const int Ts[] = {1, 2, 5, 17};
    for (size_t d = 0; d < 3; d++)
        for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++)
            for (size_t t = 0; t < sizeof Ts / sizeof Ts[0]; t++)
                check_case(dts[d], shapes[s][0], shapes[s][1], Ts[t], (int)(t & 1));
    return kvt_finish();
}
