/*
 * bench_cuda_matvec: the weight products of the batch-1 decode step alone
 * (src/engine/cuda/decode.cu, T = 1, BF16), at the four shapes of
 * bench_cuda: per shape the q/k/v product with the attention norm fused,
 * the output product with the residual, gate + up with the FFN norm and
 * SwiGLU, and the down product with the residual; and a tiny product
 * (64 rows) that shows what a dependent kernel costs when it moves almost
 * nothing.  Each is timed as the decode step runs it: 6 launches of the
 * same product in one CUDA graph, each a programmatic dependent launch of
 * the one before, each on its own copy of the weights (so that L2 does not
 * serve them), median of 20 replays after 3.  Beside each: the time the
 * weight bytes take at the copy bandwidth measured in the same run (the
 * floor bench_cuda's decode bound is made of).
 *
 * Why it exists: docs/benchmarks.md explains the batch-1 decode gap of the
 * small shapes from these figures (a fixed cost per dependent kernel on top
 * of the weight traffic).  The last thing printed is a Markdown table.
 */
#include "kvlab.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifdef KVL_HAVE_CUDA
#include <cuda_runtime_api.h>

#include "engine/cuda/kernels.h"

#include "cuda_bench_util.h"

enum { NCOPY = 6, WARM = 3, REPS = 20, NPROD = 5 };

typedef struct shape {
    const char *name;
    int32_t dim, hidden, qkv_rows, nq;
} shape;

static const shape shapes[] = {
    {"qwen2.5-0.5b", 896, 4864, 1152, 896},
    {"qwen3-0.6b", 1024, 3072, 4096, 2048},
    {"tinyllama-1.1b", 2048, 5632, 2560, 2048},
    {"llama-3.2-1b", 2048, 8192, 3072, 2048},
};

static const char *const prod_name[NPROD] = {"q/k/v + norm", "output + residual",
                                             "gate/up + norm + SwiGLU", "down + residual",
                                             "tiny (64 rows) + norm"};

/* Rows, row length and matrices of product p of shape s. */
static void prod_shape(const shape *s, int p, int32_t *M, int32_t *K, int *nmat)
{
    *nmat = p == 2 ? 2 : 1;
    switch (p) {
    case 0: *M = s->qkv_rows, *K = s->dim; break;
    case 1: *M = s->dim, *K = s->nq; break;
    case 2: *M = s->hidden, *K = s->dim; break;
    case 3: *M = s->dim, *K = s->hidden; break;
    default: *M = 64, *K = s->dim; break;
    }
}

static int cmp_f(const void *a, const void *b)
{
    float x = *(const float *)a, y = *(const float *)b;
    return (x > y) - (x < y);
}

typedef struct bufs {
    void *w[2 * NCOPY]; /* each large enough for the largest matrix */
    float *x, *y, *res;
    void *norm;
} bufs;

static cudaError_t launch(const bufs *b, int p, int copy, int32_t M, int32_t K,
                          cudaStream_t st)
{
    const kvl_dtype BF = KVL_DTYPE_BF16;
    if (p == 2)
        return kvl_cu_matvec_swiglu(b->y, b->w[2 * copy], b->w[2 * copy + 1], BF, b->x, b->norm,
                                    BF, 1e-6f, NULL, NULL, BF, 1, M, K, 1, st);
    const int resid = p == 1 || p == 3;
    return kvl_cu_matvec_fused(resid ? b->res : b->y, b->w[2 * copy], BF, b->x,
                               resid ? NULL : b->norm, BF, 1e-6f, NULL, BF,
                               resid ? b->res : NULL, 1, M, K, 1, st);
}

/* Microseconds per product (median of REPS graph replays / NCOPY), or -1. */
static double time_product(const bufs *b, int p, int32_t M, int32_t K, cudaStream_t st)
{
    cudaGraph_t g = NULL;
    cudaGraphExec_t ex = NULL;
    cudaError_t e = cudaStreamBeginCapture(st, cudaStreamCaptureModeThreadLocal);
    for (int i = 0; i < NCOPY && e == cudaSuccess; i++)
        e = launch(b, p, i, M, K, st);
    const cudaError_t e2 = cudaStreamEndCapture(st, &g);
    if (e != cudaSuccess || e2 != cudaSuccess || cudaGraphInstantiate(&ex, g, 0) != cudaSuccess) {
        if (g)
            cudaGraphDestroy(g);
        return -1;
    }
    cudaEvent_t e0, e1;
    cudaEventCreate(&e0);
    cudaEventCreate(&e1);
    float ms[REPS];
    for (int i = 0; i < WARM; i++)
        cudaGraphLaunch(ex, st);
    for (int i = 0; i < REPS; i++) {
        cudaEventRecord(e0, st);
        cudaGraphLaunch(ex, st);
        cudaEventRecord(e1, st);
        cudaEventSynchronize(e1);
        cudaEventElapsedTime(&ms[i], e0, e1);
    }
    qsort(ms, REPS, sizeof ms[0], cmp_f);
    cudaEventDestroy(e0);
    cudaEventDestroy(e1);
    cudaGraphExecDestroy(ex);
    cudaGraphDestroy(g);
    return cudaGetLastError() == cudaSuccess ? ms[REPS / 2] * 1e3 / NCOPY : -1;
}

static int alloc_bufs(bufs *b)
{
    memset(b, 0, sizeof *b);
    size_t wmax = 0;
    int32_t kmax = 0;
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++)
        for (int p = 0; p < NPROD; p++) {
            int32_t M, K;
            int nm;
            prod_shape(&shapes[s], p, &M, &K, &nm);
            if ((size_t)M * K * 2 > wmax)
                wmax = (size_t)M * K * 2;
            kmax = K > kmax ? K : kmax;
            kmax = M > kmax ? M : kmax;
        }
    for (int i = 0; i < 2 * NCOPY; i++) {
        if (cudaMalloc(&b->w[i], wmax) != cudaSuccess)
            return -1;
        /* bf16 0x3c3c ~ 0.0115: finite products, no NaN */
        cudaMemset(b->w[i], 0x3c, wmax);
    }
    const size_t vb = (size_t)kmax * sizeof(float);
    if (cudaMalloc((void **)&b->x, vb) != cudaSuccess ||
        cudaMalloc((void **)&b->y, vb) != cudaSuccess ||
        cudaMalloc((void **)&b->res, vb) != cudaSuccess ||
        cudaMalloc(&b->norm, (size_t)kmax * 2) != cudaSuccess)
        return -1;
    cudaMemset(b->x, 0, vb);
    cudaMemset(b->res, 0, vb);
    cudaMemset(b->norm, 0x3f, (size_t)kmax * 2);
    return cudaDeviceSynchronize() == cudaSuccess ? 0 : -1;
}

static void free_bufs(bufs *b)
{
    for (int i = 0; i < 2 * NCOPY; i++)
        cudaFree(b->w[i]);
    cudaFree(b->x), cudaFree(b->y), cudaFree(b->res), cudaFree(b->norm);
}

int main(void)
{
    const double bw = device_and_bandwidth("bench_cuda_matvec");
    if (bw < 0)
        return 0;
    bufs b;
    cudaStream_t st;
    if (bw <= 0 || alloc_bufs(&b) != 0 ||
        cudaStreamCreateWithFlags(&st, cudaStreamNonBlocking) != cudaSuccess) {
        fprintf(stderr, "bench_cuda_matvec: device memory setup failed\n");
        return 1;
    }
    enum { NS = sizeof shapes / sizeof shapes[0] };
    double us[NS][NPROD];
    for (int s = 0; s < NS; s++)
        for (int p = 0; p < NPROD; p++) {
            int32_t M, K;
            int nm;
            prod_shape(&shapes[s], p, &M, &K, &nm);
            us[s][p] = time_product(&b, p, M, K, st);
            if (us[s][p] < 0) {
                fprintf(stderr, "bench_cuda_matvec: %s %s failed\n", shapes[s].name,
                        prod_name[p]);
                return 1;
            }
        }
    printf("\n| shape | product | rows x cols | weight MB | us | TB/s | floor us (copy bw) "
           "| us above floor |\n| --- | --- | --- | ---: | ---: | ---: | ---: | ---: |\n");
    for (int s = 0; s < NS; s++)
        for (int p = 0; p < NPROD; p++) {
            int32_t M, K;
            int nm;
            prod_shape(&shapes[s], p, &M, &K, &nm);
            const double bytes = (double)nm * M * K * 2, floor_us = bytes / bw * 1e6;
            printf("| %s | %s | %d x %d | %.2f | %.2f | %.2f | %.2f | %.2f |\n", shapes[s].name,
                   prod_name[p], (int)M, (int)K, bytes / 1e6, us[s][p],
                   bytes / (us[s][p] * 1e-6) / 1e12, floor_us, us[s][p] - floor_us);
        }
    cudaStreamDestroy(st);
    free_bufs(&b);
    return 0;
}

#else
int main(void)
{
    printf("bench_cuda_matvec: built without CUDA\n");
    return 0;
}
#endif
