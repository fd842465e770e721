/*
 * Helpers shared by the CUDA benchmarks (bench_cuda.c, bench_cuda_matvec.c):
 * a monotonic clock and the device's copy bandwidth, the reference the
 * decode bound is taken against.
 */
#ifndef KVL_BENCH_CUDA_BENCH_UTIL_H
#define KVL_BENCH_CUDA_BENCH_UTIL_H

#include <cuda_runtime_api.h>
#include <stddef.h>
#include <stdio.h>
#include <time.h>

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + 1e-9 * ts.tv_nsec;
}

/* Bytes read + written per second by a 4 GiB device-to-device copy, best of
 * 7 after a warm-up; 0 when the buffers cannot be had. */
static double copy_bandwidth(void)
{
    const size_t n = (size_t)4 << 30;
    void *a = NULL, *b = NULL;
    if (cudaMalloc(&a, n) != cudaSuccess || cudaMalloc(&b, n) != cudaSuccess) {
        cudaFree(a);
        return 0;
    }
    cudaMemset(a, 1, n);
    double best = 0;
    for (int i = 0; i < 8; i++) {
        cudaDeviceSynchronize();
        double t0 = now();
        cudaMemcpy(b, a, n, cudaMemcpyDeviceToDevice);
        cudaDeviceSynchronize();
        double bw = 2.0 * n / (now() - t0);
        if (i > 0 && bw > best)
            best = bw;
    }
    cudaFree(a);
    cudaFree(b);
    return best;
}

/* The device and its copy bandwidth printed; the bandwidth returned, or -1
 * (after a line saying so) when there is no CUDA device. */
static double device_and_bandwidth(const char *prog)
{
    int n = 0;
    if (cudaGetDeviceCount(&n) != cudaSuccess || n == 0) {
        printf("%s: no CUDA device\n", prog);
        return -1;
    }
    struct cudaDeviceProp p;
    cudaGetDeviceProperties(&p, 0);
    const double bw = copy_bandwidth();
    printf("%s, copy bandwidth %.2f TB/s (read + write)\n", p.name, bw / 1e12);
    return bw;
}

#endif
