// On-device check of the generated gemv_u4_gpu PTX through the CUDA driver API (dlopen'd, no
// CUDA headers needed): random int4 weights, f16 scales and x; compare with a double reference.
// usage: gemv PTX_FILE K N
#include <dlfcn.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef int CUresult;
typedef void *CUcontext, *CUmodule, *CUfunction;
typedef unsigned long long CUdeviceptr;
#define LOAD(name) name##_t name = (name##_t)dlsym(h, #name "_v2"); if (!name) name = (name##_t)dlsym(h, #name);
typedef CUresult (*cuInit_t)(unsigned);
typedef CUresult (*cuDeviceGet_t)(int *, int);
typedef CUresult (*cuCtxCreate_t)(CUcontext *, unsigned, int);
typedef CUresult (*cuModuleLoadData_t)(CUmodule *, const void *);
typedef CUresult (*cuModuleGetFunction_t)(CUfunction *, CUmodule, const char *);
typedef CUresult (*cuMemAlloc_t)(CUdeviceptr *, size_t);
typedef CUresult (*cuMemcpyHtoD_t)(CUdeviceptr, const void *, size_t);
typedef CUresult (*cuMemcpyDtoH_t)(void *, CUdeviceptr, size_t);
typedef CUresult (*cuLaunchKernel_t)(CUfunction, unsigned, unsigned, unsigned, unsigned, unsigned, unsigned, unsigned, void *, void **, void **);
typedef CUresult (*cuCtxSynchronize_t)(void);

static uint16_t f2h(float f) {  // round-to-nearest f32 -> f16 for normal range values
    uint32_t x; memcpy(&x, &f, 4);
    uint32_t s = (x >> 16) & 0x8000; int e = ((x >> 23) & 0xff) - 127 + 15; uint32_t m = x & 0x7fffff;
    if (e <= 0) return s; 
    uint32_t r = (e << 10) | (m >> 13); uint32_t rem = m & 0x1fff;
    if (rem > 0x1000 || (rem == 0x1000 && (r & 1))) r++;
    return s | r;
}
static double h2d(uint16_t h) {
    int e = (h >> 10) & 0x1f; int m = h & 0x3ff; double v = e ? ldexp(1024 + m, e - 25) : ldexp(m, -24);
    return (h & 0x8000) ? -v : v;
}
#define CK(x) do { CUresult r_ = (x); if (r_) { fprintf(stderr, "%s = %d\n", #x, r_); return 1; } } while (0)

int main(int argc, char **argv) {
    int K = atoi(argv[2]), N = atoi(argv[3]), G = 128, WARPS = 4;
    FILE *f = fopen(argv[1], "rb"); fseek(f, 0, SEEK_END); long n = ftell(f); fseek(f, 0, SEEK_SET);
    char *ptx = calloc(n + 1, 1); fread(ptx, 1, n, f); fclose(f);
    void *h = dlopen("libcuda.so.1", RTLD_NOW); if (!h) { fprintf(stderr, "no libcuda\n"); return 1; }
    LOAD(cuInit) LOAD(cuDeviceGet) LOAD(cuCtxCreate) LOAD(cuModuleLoadData) LOAD(cuModuleGetFunction)
    LOAD(cuMemAlloc) LOAD(cuMemcpyHtoD) LOAD(cuMemcpyDtoH) LOAD(cuLaunchKernel) LOAD(cuCtxSynchronize)
    int dev; CUcontext ctx; CUmodule mod; CUfunction fn;
    CK(cuInit(0)); CK(cuDeviceGet(&dev, 0)); CK(cuCtxCreate(&ctx, 0, dev));
    CK(cuModuleLoadData(&mod, ptx)); CK(cuModuleGetFunction(&fn, mod, "gemv_u4_gpu"));
    size_t nw = (size_t)N * K / 8, ns = (size_t)N * (K / G);
    uint32_t *w = malloc(nw * 4); uint16_t *s = malloc(ns * 2), *x = malloc(K * 2); float *y = malloc(N * 4);
    srand(7);
    for (size_t i = 0; i < nw; i++) w[i] = ((uint32_t)rand() << 16) ^ (uint32_t)rand();
    for (size_t i = 0; i < ns; i++) s[i] = f2h(0.001f + 0.01f * (rand() / (float)RAND_MAX));
    for (int i = 0; i < K; i++) x[i] = f2h(2.0f * (rand() / (float)RAND_MAX) - 1.0f);
    CUdeviceptr dw, ds, dx, dy;
    CK(cuMemAlloc(&dw, nw * 4)); CK(cuMemAlloc(&ds, ns * 2)); CK(cuMemAlloc(&dx, K * 2)); CK(cuMemAlloc(&dy, N * 4));
    CK(cuMemcpyHtoD(dw, w, nw * 4)); CK(cuMemcpyHtoD(ds, s, ns * 2)); CK(cuMemcpyHtoD(dx, x, K * 2));
    void *params[] = {&dw, &ds, &dx, &dy};
    CK(cuLaunchKernel(fn, (N + WARPS - 1) / WARPS, 1, 1, 32 * WARPS, 1, 1, 0, 0, params, 0));
    CK(cuCtxSynchronize());
    CK(cuMemcpyDtoH(y, dy, N * 4));
    double worst = 0;
    for (int r = 0; r < N; r++) {
        double acc = 0, mag = 0;
        for (int k = 0; k < K; k++) {
            uint32_t word = w[(size_t)r * (K / 8) + k / 8]; int q = (word >> (4 * (k % 8))) & 15;
            double t = (q - 8) * h2d(s[(size_t)r * (K / G) + k / G]) * h2d(x[k]);
            acc += t; mag += fabs(t);
        }
        double e = fabs(y[r] - acc) / (mag + 1e-30);
        if (e > worst) worst = e;
    }
    printf("gemv_u4_gpu K=%d N=%d: max |y - ref| / sum|w x| = %.3g (y[0]=%g)\n", K, N, worst, y[0]);
    return worst < 2e-3 ? 0 : 2;
}
