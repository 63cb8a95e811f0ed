/* Tensor plumbing (concat, add, transpose), softmax, the diffusion timestep embedding,
   dropout and the losses. */
#include <math.h>
#include <omp.h>
#include <string.h>

#include "nn/nn.h"
#include "nn/nn_math.h"
#include "util/rng.h"

#define MISC_PAR 65536

void nn_concat_forward(float *out, const float *a, const float *b, int N, int CA, int CB, int HW)
{
    size_t na = (size_t)CA * HW, nb = (size_t)CB * HW;
    /* one task per (image, half): the two cores' copy bandwidth adds up */
#pragma omp parallel for schedule(static) if (N * (na + nb) > MISC_PAR)
    for (int t = 0; t < 2 * N; t++) {
        int n = t / 2;
        if (t % 2 == 0)
            memcpy(out + n * (na + nb), a + n * na, sizeof(float) * na);
        else
            memcpy(out + n * (na + nb) + na, b + n * nb, sizeof(float) * nb);
    }
}

void nn_concat_backward(float *da, float *db, const float *dout, int N, int CA, int CB, int HW)
{
    size_t na = (size_t)CA * HW, nb = (size_t)CB * HW;
#pragma omp parallel for schedule(static) if (N * (na + nb) > MISC_PAR)
    for (int n = 0; n < N; n++) {
        const float *d = dout + n * (na + nb);
        if (da != NULL)
            for (size_t i = 0; i < na; i++)
                da[n * na + i] += d[i];
        if (db != NULL)
            for (size_t i = 0; i < nb; i++)
                db[n * nb + i] += d[na + i];
    }
}

void nn_add_forward(float *out, const float *a, const float *b, size_t n)
{
#pragma omp parallel for simd schedule(static) if (n > MISC_PAR)
    for (size_t i = 0; i < n; i++)
        out[i] = a[i] + b[i];
}

/* in (N,R,C) -> out (N,C,R), in 32x32 tiles */
void nn_transpose_forward(float *out, const float *in, int N, int R, int C)
{
    int tr = (R + 31) / 32, tc = (C + 31) / 32;
#pragma omp parallel for schedule(static) if ((size_t)N * R * C > MISC_PAR)
    for (int t = 0; t < N * tr * tc; t++) {
        int n = t / (tr * tc), r0 = t / tc % tr * 32, c0 = t % tc * 32;
        int r1 = r0 + 32 < R ? r0 + 32 : R, c1 = c0 + 32 < C ? c0 + 32 : C;
        const float *x = in + (size_t)n * R * C;
        float *y = out + (size_t)n * R * C;
        for (int c = c0; c < c1; c++)
            for (int r = r0; r < r1; r++)
                y[(size_t)c * R + r] = x[(size_t)r * C + c];
    }
}

void nn_softmax_forward(float *out, const float *in, int rows, int cols)
{
#pragma omp parallel for schedule(static) if ((size_t)rows * cols > MISC_PAR && !omp_in_parallel())
    for (int r = 0; r < rows; r++) {
        const float *x = in + (size_t)r * cols;
        float *y = out + (size_t)r * cols, m = -INFINITY, s = 0;
#pragma omp simd reduction(max : m)
        for (int j = 0; j < cols; j++)
            m = x[j] > m ? x[j] : m;
        for (int j = 0; j < cols; j++)
            y[j] = nn_expf(x[j] - m);
#pragma omp simd reduction(+ : s)
        for (int j = 0; j < cols; j++)
            s += y[j];
        float is = 1.0f / s;
        for (int j = 0; j < cols; j++)
            y[j] *= is;
    }
}

void nn_softmax_backward(float *din, const float *dout, const float *out, int rows, int cols)
{
#pragma omp parallel for schedule(static) if ((size_t)rows * cols > MISC_PAR && !omp_in_parallel())
    for (int r = 0; r < rows; r++) {
        const float *d = dout + (size_t)r * cols, *y = out + (size_t)r * cols;
        float *dx = din + (size_t)r * cols, s = 0;
#pragma omp simd reduction(+ : s)
        for (int j = 0; j < cols; j++)
            s += d[j] * y[j];
        for (int j = 0; j < cols; j++)
            dx[j] += y[j] * (d[j] - s);
    }
}

/* torch.exp on float32 is SLEEF's expf_u10 (vectorised, FMA), which differs from a correctly
   rounded expf by an ulp for some inputs; at t = 999 an ulp of t*f moves sin by 3e-5, so the
   embedding follows SLEEF's algorithm exactly. */
static float sleef_expf(float d)
{
    if (d < -104.0f)
        return 0.0f;
    if (d > 100.0f)
        return INFINITY;
    float qf = rintf(d * 1.442695040888963407359924681001892137f);
    int q = (int)qf;
    float s = fmaf(qf, -0.693145751953125f, d);
    s = fmaf(qf, -1.428606765330187045e-06f, s);
    float u = 0.000198527617612853646278381f;
    u = fmaf(u, s, 0.00139304355252534151077271f);
    u = fmaf(u, s, 0.00833336077630519866943359f);
    u = fmaf(u, s, 0.0416664853692054748535156f);
    u = fmaf(u, s, 0.166666671633720397949219f);
    u = fmaf(u, s, 0.5f);
    u = 1.0f + fmaf(s * s, u, s);
    /* ldexp in two steps, as SLEEF's vldexp2 */
    return ldexpf(ldexpf(u, q >> 1), q - (q >> 1));
}

/* diffusers get_timestep_embedding, op by op in float32 as torch does it:
   e_i = (-ln(max_period) * i) / (half - shift); f_i = exp(e_i); a = t f_i scale.
   sin and cos are taken in double and rounded: torch's are within an ulp of that. */
void nn_timestep_embedding(float *out, const float *t, int N, int dim, int flip_sin_to_cos,
                           float freq_shift, float max_period, float scale)
{
    int half = dim / 2;
    float nl = (float)-log((double)max_period), den = (float)half - freq_shift;
    for (int n = 0; n < N; n++) {
        float *y = out + (size_t)n * dim;
        for (int i = 0; i < half; i++) {
            float e = nl * (float)i;
            e = e / den;
            float f = sleef_expf(e), a = t[n] * f;
            a = scale * a;
            float s = (float)sin((double)a), c = (float)cos((double)a);
            y[i] = flip_sin_to_cos ? c : s;
            y[half + i] = flip_sin_to_cos ? s : c;
        }
        if (dim % 2)
            y[dim - 1] = 0;
    }
}

void nn_dropout_forward(float *out, float *mask, const float *in, size_t n, float p,
                        struct rng *r)
{
    float keep = p < 1 ? 1.0f / (1.0f - p) : 0.0f;
    for (size_t i = 0; i < n; i++) {
        mask[i] = rng_uniform(r) < p ? 0.0f : keep;
        out[i] = in[i] * mask[i];
    }
}

void nn_dropout_backward(float *din, const float *dout, const float *mask, size_t n)
{
    for (size_t i = 0; i < n; i++)
        din[i] += dout[i] * mask[i];
}

float nn_mse_loss_forward(const float *a, const float *b, size_t n)
{
    double s = 0;
#pragma omp parallel for reduction(+ : s) schedule(static) if (n > MISC_PAR)
    for (size_t i = 0; i < n; i++) {
        double d = (double)a[i] - b[i];
        s += d * d;
    }
    return (float)(s / (double)n);
}

void nn_mse_loss_backward(float *da, const float *a, const float *b, size_t n, float scale)
{
    float k = 2.0f * scale / (float)n;
#pragma omp parallel for simd schedule(static) if (n > MISC_PAR)
    for (size_t i = 0; i < n; i++)
        da[i] += k * (a[i] - b[i]);
}

float nn_vae_loss_forward(float *recon, float *kl, const float *xhat, const float *x,
                          const float *mu, const float *logvar, int N, int D, int L, float beta)
{
    double r = 0, k = 0;
    size_t nd = (size_t)N * D, nl = (size_t)N * L;
#pragma omp parallel for reduction(+ : r) schedule(static) if (nd > MISC_PAR)
    for (size_t i = 0; i < nd; i++) {
        double d = (double)xhat[i] - x[i];
        r += d * d;
    }
    for (size_t i = 0; i < nl; i++)
        k += 1.0 + logvar[i] - (double)mu[i] * mu[i] - exp((double)logvar[i]);
    float fr = (float)(r / N), fk = (float)(-0.5 * k / N);
    if (recon != NULL)
        *recon = fr;
    if (kl != NULL)
        *kl = fk;
    return fr + beta * fk;
}

void nn_vae_loss_backward(float *dxhat, float *dmu, float *dlogvar, const float *xhat,
                          const float *x, const float *mu, const float *logvar, int N, int D,
                          int L, float beta)
{
    size_t nd = (size_t)N * D, nl = (size_t)N * L;
    float k = 2.0f / (float)N, kb = beta / (float)N;
    if (dxhat != NULL) {
#pragma omp parallel for simd schedule(static) if (nd > MISC_PAR)
        for (size_t i = 0; i < nd; i++)
            dxhat[i] += k * (xhat[i] - x[i]);
    }
    for (size_t i = 0; i < nl; i++) {
        if (dmu != NULL)
            dmu[i] += kb * mu[i];
        if (dlogvar != NULL)
            dlogvar[i] += kb * 0.5f * (expf(logvar[i]) - 1.0f);
    }
}
