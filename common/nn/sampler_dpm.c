/* DPMSolverMultistepScheduler (dpmsolver++, sde-dpmsolver++, midpoint) and
   UniPCMultistepScheduler (bh2, predict_x0) steps, transcribed from diffusers 0.26
   scheduling_dpmsolver_multistep.py and scheduling_unipc_multistep.py: the per-step scalars
   in float32 as torch's 0-d tensors compute them, then one pass over the values. */
#include <math.h>
#include <string.h>

#include "nn/sampler.h"

/* x0 = (x - sigma_t eps) / alpha_t: convert_model_output for epsilon prediction */
static void to_x0(float *m, const float *x, const float *eps, float sigma, size_t n)
{
    float a, sg;
    sampler_alpha_sigma(sigma, &a, &sg, NULL);
    for (size_t k = 0; k < n; k++)
        m[k] = (x[k] - sg * eps[k]) / a;
}

/* m[0] becomes the free oldest buffer: model_outputs shifted by one */
static void rotate(float **m, int count)
{
    float *t = m[count - 1];
    for (int k = count - 1; k > 0; k--)
        m[k] = m[k - 1];
    m[0] = t;
}

void sampler_dpm_step(struct sampler *s, int i, float *x, const float *eps, const float *noise,
                      size_t n)
{
    int N = s->n_calls, sde = s->kind == SAMPLER_SDE_DPM;
    /* final_sigmas_type "zero" makes the last step first order at any N */
    int low_final = i == N - 1, low_second = i == N - 2 && N < 15;
    rotate(s->m, s->order);
    to_x0(s->m[0], x, eps, s->sigmas[i], n);
    float at, st, lt, a0, s0, l0, a1, s1, l1, a2, s2, l2;
    sampler_alpha_sigma(s->sigmas[i + 1], &at, &st, &lt);
    sampler_alpha_sigma(s->sigmas[i], &a0, &s0, &l0);
    float h = lt - l0, emh = expf(-h), em2h = expf(-2.0f * h);
    const float *m0 = s->m[0], *m1 = s->m[1], *m2 = s->m[2];
    int ord = (s->order == 1 || s->lower_order_nums < 1 || low_final) ? 1
              : (s->order == 2 || s->lower_order_nums < 2 || low_second) ? 2 : 3;
    if (sde) {
        float c1 = st / s0 * emh, c2 = at * (1.0f - em2h), c3 = 0.5f * c2;
        float cz = st * sqrtf(1.0f - em2h);
        if (ord == 1) {
            for (size_t k = 0; k < n; k++)
                x[k] = c1 * x[k] + c2 * m0[k] + cz * noise[k];
        } else {
            sampler_alpha_sigma(s->sigmas[i - 1], &a1, &s1, &l1);
            float r0 = (l0 - l1) / h, ir0 = 1.0f / r0;
            for (size_t k = 0; k < n; k++) {
                float d1 = ir0 * (m0[k] - m1[k]);
                x[k] = c1 * x[k] + c2 * m0[k] + c3 * d1 + cz * noise[k];
            }
        }
    } else {
        float c1 = st / s0, c2 = at * (emh - 1.0f);
        if (ord == 1) {
            for (size_t k = 0; k < n; k++)
                x[k] = c1 * x[k] - c2 * m0[k];
        } else if (ord == 2) {
            sampler_alpha_sigma(s->sigmas[i - 1], &a1, &s1, &l1);
            float r0 = (l0 - l1) / h, ir0 = 1.0f / r0, c3 = 0.5f * c2;
            for (size_t k = 0; k < n; k++) {
                float d1 = ir0 * (m0[k] - m1[k]);
                x[k] = c1 * x[k] - c2 * m0[k] - c3 * d1;
            }
        } else {
            sampler_alpha_sigma(s->sigmas[i - 1], &a1, &s1, &l1);
            sampler_alpha_sigma(s->sigmas[i - 2], &a2, &s2, &l2);
            float h0 = l0 - l1, h1 = l1 - l2, r0 = h0 / h, r1 = h1 / h;
            float ir0 = 1.0f / r0, ir1 = 1.0f / r1, q = r0 / (r0 + r1), iq = 1.0f / (r0 + r1);
            float c4 = at * ((emh - 1.0f) / h + 1.0f);
            float c5 = at * ((emh - 1.0f + h) / (h * h) - 0.5f);
            for (size_t k = 0; k < n; k++) {
                float d10 = ir0 * (m0[k] - m1[k]), d11 = ir1 * (m1[k] - m2[k]);
                float d1 = d10 + q * (d10 - d11), d2 = iq * (d10 - d11);
                x[k] = c1 * x[k] - c2 * m0[k] + c4 * d1 - c5 * d2;
            }
        }
    }
    if (s->lower_order_nums < s->order)
        s->lower_order_nums++;
}

/* torch.linalg.solve for K <= 3: Gaussian elimination with partial pivoting (as getrf) */
static void solve(int K, float A[3][3], float *b, float *out)
{
    for (int c = 0; c < K; c++) {
        int p = c;
        for (int r = c + 1; r < K; r++)
            if (fabsf(A[r][c]) > fabsf(A[p][c]))
                p = r;
        for (int j = 0; j < K; j++) {
            float t = A[c][j];
            A[c][j] = A[p][j];
            A[p][j] = t;
        }
        float t = b[c];
        b[c] = b[p];
        b[p] = t;
        for (int r = c + 1; r < K; r++) {
            float f = A[r][c] / A[c][c];
            for (int j = c; j < K; j++)
                A[r][j] -= f * A[c][j];
            b[r] -= f * b[c];
        }
    }
    for (int r = K - 1; r >= 0; r--) {
        float v = b[r];
        for (int j = r + 1; j < K; j++)
            v -= A[r][j] * out[j];
        out[r] = v / A[r][r];
    }
}

/* The scalars both UniPC updates share: rks, then R and b, h_phi_1 and B_h (bh2). lam: the
   lambdas of the older points (order-1 of them), l0 the step's start, h its length. */
struct unic {
    float rk[3], rho[3], hphi1, Bh;
};

static void unic_coeffs(struct unic *u, int order, const float *lam, float l0, float h,
                        int corrector)
{
    float R[3][3], b[3], hh = -h, hphik, fact = 1;
    for (int k = 1; k < order; k++)
        u->rk[k - 1] = (lam[k - 1] - l0) / h;
    u->rk[order - 1] = 1.0f;
    u->hphi1 = expm1f(hh);
    hphik = u->hphi1 / hh - 1.0f;
    u->Bh = expm1f(hh);
    for (int k = 1; k <= order; k++) {
        for (int j = 0; j < order; j++)
            R[k - 1][j] = k == 1 ? 1.0f : k == 2 ? u->rk[j] : u->rk[j] * u->rk[j];
        b[k - 1] = hphik * fact / u->Bh;
        fact *= (float)(k + 1);
        hphik = hphik / hh - (float)(1.0 / fact);
    }
    if (corrector) {
        if (order == 1)
            u->rho[0] = 0.5f;
        else
            solve(order, R, b, u->rho);
    } else if (order == 2) {
        u->rho[0] = 0.5f;
    } else if (order == 3) {
        solve(2, R, b, u->rho);
    }
}

void sampler_unipc_step(struct sampler *s, int i, float *x, const float *eps, size_t n)
{
    int N = s->n_calls, nm = s->order + 1;
    float *conv = s->m[nm - 1]; /* the spare buffer */
    float lam[3], a, sg, at, st, lt, a0, s0, l0, h;
    struct unic u;
    to_x0(conv, x, eps, s->sigmas[i], n);
    if (i > 0 && s->this_order > 0) {
        /* corrector: the last predictor's step redone with this model output */
        int ord = s->this_order;
        const float *m0 = s->m[0], *last = s->last;
        sampler_alpha_sigma(s->sigmas[i], &at, &st, &lt);
        sampler_alpha_sigma(s->sigmas[i - 1], &a0, &s0, &l0);
        h = lt - l0;
        for (int k = 1; k < ord; k++)
            sampler_alpha_sigma(s->sigmas[i - (k + 1)], &a, &sg, &lam[k - 1]);
        unic_coeffs(&u, ord, lam, l0, h, 1);
        float c1 = st / s0, c2 = at * u.hphi1, c3 = at * u.Bh, rl = u.rho[ord - 1];
        for (size_t k = 0; k < n; k++) {
            float corr = 0;
            for (int j = 1; j < ord; j++)
                corr += u.rho[j - 1] * ((s->m[j][k] - m0[k]) / u.rk[j - 1]);
            float d1t = conv[k] - m0[k];
            x[k] = (c1 * last[k] - c2 * m0[k]) - c3 * (corr + rl * d1t);
        }
    }
    rotate(s->m, nm); /* conv becomes m[0] */
    int ord = s->order < N - i ? s->order : N - i; /* lower_order_final */
    if (ord > s->lower_order_nums + 1)
        ord = s->lower_order_nums + 1;
    s->this_order = ord;
    memcpy(s->last, x, n * sizeof(float));
    /* predictor */
    const float *m0 = s->m[0];
    sampler_alpha_sigma(s->sigmas[i + 1], &at, &st, &lt);
    sampler_alpha_sigma(s->sigmas[i], &a0, &s0, &l0);
    h = lt - l0;
    for (int k = 1; k < ord; k++)
        sampler_alpha_sigma(s->sigmas[i - k], &a, &sg, &lam[k - 1]);
    unic_coeffs(&u, ord, lam, l0, h, 0);
    float c1 = st / s0, c2 = at * u.hphi1, c3 = at * u.Bh;
    for (size_t k = 0; k < n; k++) {
        float pred = 0;
        for (int j = 1; j < ord; j++)
            pred += u.rho[j - 1] * ((s->m[j][k] - m0[k]) / u.rk[j - 1]);
        x[k] = (c1 * x[k] - c2 * m0[k]) - c3 * pred;
    }
    if (s->lower_order_nums < s->order)
        s->lower_order_nums++;
}
