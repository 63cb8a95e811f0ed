/* The neural-network core: each layer is a *_forward / *_backward pair over explicit float32
   buffers, NCHW row-major like PyTorch. No autograd, no graph: a model calls these in order.

   Conventions
   - Arguments: outputs first, then inputs, then dims.
   - Every backward ACCUMULATES (+=) into all of its gradient outputs (din, dw, db, ...);
     the trainer zeroes gradient buffers once per step. A NULL gradient pointer is skipped.
   - No function allocates: scratch buffers are passed in, sized by the *_scratch helpers.
   - Threads: nn_set_threads(n) sets both OpenMP and OpenBLAS; GEMMs go to OpenBLAS,
     element-wise and reduction loops are OpenMP-parallel. Results do not depend on thread
     count except where noted (GEMM summation order inside OpenBLAS). */
#ifndef NN_H
#define NN_H
#include <stddef.h>
#include <stdint.h>

struct rng;

/* Call first in main of every tool that uses the core. Debian's OpenBLAS 0.3.21 does not
   know some newer CPUs and falls back to slow generic kernels; when openblas_get_corename()
   is such a fallback while the CPU has AVX-512 (or AVX2) and OPENBLAS_CORETYPE is unset, this
   re-executes the program once with OPENBLAS_CORETYPE=SkylakeX (Haswell); it never overrides a
   value the user set. verbose: say on stderr which kernel runs and why. */
void nn_blas_setup(char **argv, int verbose);
const char *nn_blas_corename(void);
/* The pure decision inside nn_blas_setup, for tests: core is openblas_get_corename(), avx512 /
   avx2 the CPU's usable features, user the OPENBLAS_CORETYPE value (NULL if unset), reexeced
   whether this process is already the re-executed one. *want: the kernel to ask for, or NULL. */
enum { NN_BLAS_OK, NN_BLAS_REEXEC, NN_BLAS_USER, NN_BLAS_LOOP };
int nn_blas_decide(const char *core, int avx512, int avx2, const char *user, int reexeced,
                   const char **want);
void nn_cpu_features(int *avx512, int *avx2); /* cpuid + OS support (avx512: F,BW,DQ,VL) */

void nn_set_threads(int n);
int nn_get_threads(void);
/* The thread count the work of a conv is cut for, whatever nn_get_threads() says: the cut sets
   the GEMM shapes, and results must not depend on the thread count (nn.c). */
#define NN_PLAN_THREADS 2

/* C = alpha * op(A) op(B) + beta * C, row-major; op = transpose when ta/tb is non-zero.
   A is (M,K) after op, B (K,N) after op, C (M,N). The one entry to OpenBLAS SGEMM. */
void nn_sgemm(int ta, int tb, int M, int N, int K, float alpha, const float *A, int lda,
              const float *B, int ldb, float beta, float *C, int ldc);
/* the same on the calling thread only (for use inside an OpenMP parallel region) */
void nn_sgemm_serial(int ta, int tb, int M, int N, int K, float alpha, const float *A, int lda,
                     const float *B, int ldb, float beta, float *C, int ldc);

/* C (M,N) = A (M,K) B (K,N), row-major, no transposes: every C[i][j] is one fmaf chain over
   k = 0 .. K-1 in order from 0, so its bits depend on row i of A and column j of B alone, never
   on the shape of the call or the element's place in it (unlike OpenBLAS's kernels); no
   threads of its own (nn_chain.c) */
void nn_sgemm_chain(int M, int N, int K, const float *A, int lda, const float *B, int ldb,
                    float *C, int ldc);
/* the same with A given transposed: At (K,M), A[i][k] = At[k * ldat + i]; the same chains,
   so the same bits as nn_sgemm_chain on A. Faster on few columns (no packing of A). */
void nn_sgemm_chain_at(int M, int N, int K, const float *At, int ldat, const float *B, int ldb,
                       float *C, int ldc);
/* the same with B given transposed: Bt (N,K), B[k][j] = Bt[j * ldbt + k] (a product A B^T of
   two row-major operands, as the Winograd weight gradient's M V^T); the same chains, so the
   same bits as nn_sgemm_chain on B */
void nn_sgemm_chain_bt(int M, int N, int K, const float *A, int lda, const float *Bt, int ldbt,
                       float *C, int ldc);

/* ---- linear: y = x W^T + b (torch.nn.Linear) ----
   in (N,IN), w (OUT,IN), b (OUT) or NULL -> out (N,OUT) */
void nn_linear_forward(float *out, const float *in, const float *w, const float *b,
                       int N, int IN, int OUT);
/* Linear on packed weights (nn_linear_packed.c): nn_pack_linear writes W (N,K) (N a
   multiple of NN_PACK_NR) as panels wp (N*K floats); nn_linear_packed then gives out (M,N)
   (row stride ldo) = in (M,K) (row stride ldi) W^T + b (b NULL: 0), every element one fused
   multiply-add chain from its bias over k in order, so its bits depend on its row of in and
   column of W alone (not on M, the row's place or the thread count). Threads split the
   column panels. */
#define NN_PACK_NR 32
void nn_pack_linear(float *wp, const float *w, int N, int K);
void nn_linear_packed(float *out, int ldo, const float *in, int ldi, const float *wp,
                      const float *b, int M, int K, int N);
/* the general form on the calling thread: column panel p of out (NN_PACK_NR columns, rows
   ldo apart) starts at out + p * pstride (pstride NN_PACK_NR: plain row-major; otherwise out
   may itself be a packed operand); in is (M,K) row-major, or (K,M) when ta */
void nn_gemm_packed_serial(float *out, int ldo, size_t pstride, const float *in, int ldi,
                           int ta, const float *wp, const float *b, int M, int K, int N);
/* nn_linear_packed, then ep (if not NULL) in place on each finished piece of a row of out
   (n values), on the thread that computed it while it is still in L1: an elementwise
   activation fused, the same bits as calling it on out afterwards */
void nn_linear_packed_ep(float *out, int ldo, const float *in, int ldi, const float *wp,
                         const float *b, int M, int K, int N, void (*ep)(float *x, size_t n));
/* nn_linear_packed on the calling thread only (inside a parallel region) */
void nn_linear_packed_serial(float *out, int ldo, const float *in, int ldi, const float *wp,
                             const float *b, int M, int K, int N);
/* Inference self-attention over a fused qkv (N*T, 3C) (rows [q | k | v], heads column
   slices of each) -> out (N*T, C), on the packed kernel (nn_attn_qkv.c); bits independent of
   N and of the thread count. */
void nn_attention_qkv_forward(float *out, const float *qkv, int N, int T, int C, int heads);
void nn_linear_backward(float *din, float *dw, float *db, const float *dout, const float *in,
                        const float *w, int N, int IN, int OUT);

/* ---- 2-D convolution geometry, shared by conv2d and conv_transpose2d ----
   conv2d:           in (N,C,H,W), w (OC,C,KH,KW), b (OC) -> out (N,OC,OH,OW)
   conv_transpose2d: in (N,C,H,W), w (C,OC,KH,KW), b (OC) -> out (N,OC,OH,OW)
   Padding may be asymmetric (PT top, PL left, PB bottom, PR right), zeros. */
struct nn_conv {
    int N, C, H, W;
    int OC, KH, KW;
    int SH, SW;
    int PT, PL, PB, PR;
    int OH, OW; /* set by the init functions */
    int nt;     /* threads the scratch is sized for: nn_get_threads() at init */
};
/* Conv2d(C, OC, K, stride=S, padding=P) on (N,C,H,W) */
void nn_conv_init(struct nn_conv *g, int N, int C, int H, int W, int OC, int K, int S, int P);
/* full control: kernel KHxKW, strides, asymmetric padding */
void nn_conv_init_ex(struct nn_conv *g, int N, int C, int H, int W, int OC, int KH, int KW,
                     int SH, int SW, int PT, int PL, int PB, int PR);
/* ConvTranspose2d(C, OC, K, stride=S, padding=P): OH = (H-1)*S - 2P + K */
void nn_convt_init(struct nn_conv *g, int N, int C, int H, int W, int OC, int K, int S, int P);
/* floats of scratch the forward and backward of this geometry need (im2col and the like),
   for g->nt threads: call nn_set_threads before the init functions. */
/* db (OC) += the bias gradient of a conv's output gradient dout (B,OC,H,W): per channel a
   float sum over the images, then the pixels, in order (the UNet's; nn_conv2d_backward sums
   in double, other bits) */
void nn_conv_db_float(float *db, const float *dout, int B, int OC, int H, int W);
size_t nn_conv_scratch(const struct nn_conv *g);
size_t nn_convt_scratch(const struct nn_conv *g);

/* 3x3 stride-1 convs with >= 16 input channels on maps of 4x4 or more use Winograd
   F(2x2,3x3) (2.25x fewer multiplies, same accuracy class as im2col; 1.3x to 2.4x faster);
   nn_conv_winograd(0) switches to im2col everywhere (tests, benchmarks). Not thread-safe:
   call at start-up. */
void nn_conv_winograd(int on);
/* Inference on fixed weights, without the per-call Winograd weight transform:
   nn_conv_wino_size(g) floats (0 when g is not a Winograd geometry) filled once by
   nn_conv_wino_weights from w (OC,C,3,3); nn_conv2d_forward_wino is then nn_conv2d_forward
   on them (scratch: nn_conv_wino_scratch(g) floats), Winograd whatever nn_conv_winograd says,
   in tile blocks sized for the caches. */
size_t nn_conv_wino_size(const struct nn_conv *g);
size_t nn_conv_wino_scratch(const struct nn_conv *g);
void nn_conv_wino_weights(float *u, const float *w, const struct nn_conv *g);
void nn_conv2d_forward_wino(float *out, float *scratch, const float *in, const float *u,
                            const float *b, const struct nn_conv *g);
/* 1x7 and 7x1 stride-1 convs padded 3 along the kernel only (the output has the input's
   size), with >= 16 input channels, use 1-D Winograd F(2,7) (nn_wino7.c): 8 multiplies per
   two outputs instead of 14, an error about 6x the direct sum's (1e-6 relative); so do
   nn_conv_wino_size/weights and nn_conv2d_forward_wino (u (8,OC,C)). nn_conv_winograd(0)
   turns it off in nn_conv2d_forward too. */
int nn_wino7_ok(const struct nn_conv *g);
/* The kernel on the calling thread, for callers that run their own threads (the Inception
   network): u from nn_wino7_weights (w (OC,C,KH,KW)); in (N,C,H,W) -> out (N,OC,H,W), or
   with NN_WINO7_CNHW in (C,N,H,W) -> out (OC,N,H,W) (N images side by side per channel);
   NN_WINO7_RELU: ReLU after the bias. b may be NULL. Images run in blocks of a few, so
   that the GEMMs stay near the caches. Scratch: nn_wino7_scratch(g) floats. */
enum { NN_WINO7_CNHW = 1, NN_WINO7_RELU = 2 };
void nn_wino7_weights(float *u, const float *w, const struct nn_conv *g);
size_t nn_wino7_scratch(const struct nn_conv *g);
void nn_wino7_forward_serial(float *out, float *scratch, const float *in, const float *u,
                             const float *b, const struct nn_conv *g, int flags);
/* im2col on the calling thread (nn_im2col.c), for callers that run their own threads:
   col (C*KH*KW, ld) columns 0..n-1 = the output positions j0..j0+n-1 of (N,OH,OW) for g,
   zero padded. Image i's channel c (H,W) is at in + c*cs + i*ns: cs = H*W, ns = C*H*W for
   (N,C,H,W); cs = N*H*W, ns = H*W for (C,N,H,W). */
void nn_im2col(float *col, int ld, const float *in, size_t cs, size_t ns,
               const struct nn_conv *g, int j0, int n);
/* b may be NULL (no bias); db may be NULL */
void nn_conv2d_forward(float *out, float *scratch, const float *in, const float *w,
                       const float *b, const struct nn_conv *g);
void nn_conv2d_backward(float *din, float *dw, float *db, float *scratch, const float *dout,
                        const float *in, const float *w, const struct nn_conv *g);
void nn_conv_transpose2d_forward(float *out, float *scratch, const float *in, const float *w,
                                 const float *b, const struct nn_conv *g);
void nn_conv_transpose2d_backward(float *din, float *dw, float *db, float *scratch,
                                  const float *dout, const float *in, const float *w,
                                  const struct nn_conv *g);

/* ---- normalisation ----
   group_norm (torch.nn.GroupNorm): in (N,C,HW), G groups of C/G contiguous channels, biased
   variance, per-channel affine gamma, beta (C). mean, rstd (N,G) are saved for backward. */
void nn_group_norm_forward(float *out, float *mean, float *rstd, const float *in,
                           const float *gamma, const float *beta, int N, int C, int HW, int G,
                           float eps);
/* The same norm with its sums in 16 float lanes then double, and SiLU fused when silu is 1
   (nn_silu_sym of nn_math.h): the UNet's. mean, rstd (N,G) always written. */
void nn_group_norm_silu_forward(float *out, float *mean, float *rstd, const float *in,
                                const float *gamma, const float *beta, int N, int C, int HW,
                                int G, float eps, int silu);
/* Its statistics alone, for a consumer that applies it: mean, rstd (N,G) as it writes them,
   and scale, shift (N,C) such that its silu output is nn_silu_sym(x * scale + shift) per
   (image, channel), that expression exactly (nn_wino4's fused input transform) */
void nn_group_norm_silu_affine(float *scale, float *shift, float *mean, float *rstd,
                               const float *in, const float *gamma, const float *beta, int N,
                               int C, int HW, int G, float eps);
void nn_group_norm_backward(float *din, float *dgamma, float *dbeta, const float *dout,
                            const float *in, const float *mean, const float *rstd,
                            const float *gamma, int N, int C, int HW, int G);
/* layer_norm (torch.nn.LayerNorm(C, eps)) over the last dim: in (N,C), gamma, beta (C) ->
   out (N,C) = (x - mean) * rstd * gamma + beta, biased variance. Each row is one thread's,
   so the result does not depend on the thread count. out may equal in. */
void nn_layer_norm_forward(float *out, const float *in, const float *gamma, const float *beta,
                           int N, int C, float eps);
/* batch_norm in inference form: (x - mean) / sqrt(var + eps) * gamma + beta, per channel */
void nn_batch_norm_forward(float *out, const float *in, const float *mean, const float *var,
                           const float *gamma, const float *beta, int N, int C, int HW,
                           float eps);

/* ---- activations, element-wise over n values (out may equal in for forward) ---- */
void nn_relu_forward(float *out, const float *in, size_t n);
void nn_relu_backward(float *din, const float *dout, const float *in, size_t n);
/* ReLU backward in place, serial: d (n) *= (y > 0), y the ReLU's output */
void nn_relu_mask(float *d, const float *y, size_t n);
void nn_silu_forward(float *out, const float *in, size_t n);
void nn_silu_backward(float *din, const float *dout, const float *in, size_t n);
void nn_tanh_forward(float *out, const float *in, size_t n);
void nn_tanh_backward(float *din, const float *dout, const float *out, size_t n); /* from out */
void nn_sigmoid_forward(float *out, const float *in, size_t n);
void nn_sigmoid_backward(float *din, const float *dout, const float *out, size_t n);
void nn_gelu_forward(float *out, const float *in, size_t n); /* exact erf form, torch default */
/* nn_gelu_forward(x, x, n) on the calling thread (the same bits): nn_linear_packed_ep's ep */
void nn_gelu_rows(float *x, size_t n);
void nn_gelu_backward(float *din, const float *dout, const float *in, size_t n);

/* ---- pooling and resampling (in (N,C,H,W)) ---- */
/* max_pool2d(K, S, P): padding counts as -inf */
void nn_max_pool2d_forward(float *out, const float *in, int N, int C, int H, int W, int K,
                           int S, int P);
/* avg_pool2d(K, S, P, count_include_pad) */
void nn_avg_pool2d_forward(float *out, const float *in, int N, int C, int H, int W, int K,
                           int S, int P, int count_include_pad);
int nn_pool_out(int H, int K, int S, int P); /* floor((H + 2P - K)/S) + 1; 0 if K > H + 2P */
/* The same two pools on n planes (H,W) on the calling thread, for callers that run their own
   threads (the Inception network, whose (C,G,H,W) group is C*G planes). The 3x3 windows have
   fast paths (max: P <= 1, any S; avg: S = 1, P = 1, summed by rows then columns). */
void nn_max_pool2d_planes(float *out, const float *in, int n, int H, int W, int K, int S, int P);
void nn_avg_pool2d_planes(float *out, const float *in, int n, int H, int W, int K, int S, int P,
                          int count_include_pad);
/* adaptive_avg_pool2d(1): in (N,C,HW) -> out (N,C) */
void nn_global_avg_pool_forward(float *out, const float *in, int N, int C, int HW);
void nn_global_avg_pool_backward(float *din, const float *dout, int N, int C, int HW);
/* nearest upsample x2: out (N,C,2H,2W), out[y][x] = in[y/2][x/2] */
void nn_upsample2x_forward(float *out, const float *in, int N, int C, int H, int W);
void nn_upsample2x_backward(float *din, const float *dout, int N, int C, int H, int W);
/* F.interpolate(mode='bilinear', align_corners=False, antialias=False) to (OH,OW) */
void nn_bilinear_resize_forward(float *out, const float *in, int N, int C, int H, int W,
                                int OH, int OW);

/* F.interpolate(mode='bicubic', align_corners=False, antialias=False) to (OH,OW): Keys' cubic
   with A = -0.75, taps clamped at the border. The source of output pixel o is
   sh * (o + 0.5) - 0.5 (sw for columns): PyTorch's 1/scale_factor when F.interpolate is given
   scale_factor, else H/OH; float arithmetic as PyTorch's CPU kernel (weights in float, rows of
   4 taps summed, then the 4 rows). */
void nn_bicubic_resize_forward(float *out, const float *in, int N, int C, int H, int W, int OH,
                               int OW, float sh, float sw);

/* ---- tensor plumbing ---- */
/* torch.cat([a, b], dim=1): a (N,CA,HW), b (N,CB,HW) -> out (N,CA+CB,HW) */
void nn_concat_forward(float *out, const float *a, const float *b, int N, int CA, int CB, int HW);
void nn_concat_backward(float *da, float *db, const float *dout, int N, int CA, int CB, int HW);
/* out = a + b over n values (out may alias a or b); backward is adding dout to both */
void nn_add_forward(float *out, const float *a, const float *b, size_t n);
/* (N,C,T) <-> (N,T,C): NCHW feature maps to attention tokens and back */
void nn_transpose_forward(float *out, const float *in, int N, int R, int C);
/* softmax over the last dim: in (rows, cols) */
void nn_softmax_forward(float *out, const float *in, int rows, int cols);
void nn_softmax_backward(float *din, const float *dout, const float *out, int rows, int cols);

/* ---- scaled dot-product self-attention ----
   q, k, v (N,T,C) with `heads` heads of C/heads channels (head h = channels h*D..h*D+D-1);
   att (N,heads,T,T) saved softmax(q k^T / sqrt(D)); out (N,T,C). Each (image, head) runs
   on one thread, so the result does not depend on the thread count. */
void nn_attention_forward(float *out, float *att, const float *q, const float *k,
                          const float *v, int N, int T, int C, int heads);
/* scratch: N*heads*T*T floats */
/* one head's softmax backward, in place: ds (T,T) holds the gradient at att = softmax(sc q k^T)
   on entry and the gradient at q k^T on return, att * (ds - its row's sum of ds * att) * sc */
void nn_attention_softmax_backward(float *ds, const float *att, int T, float sc);
void nn_attention_backward(float *dq, float *dk, float *dv, float *scratch, const float *dout,
                           const float *q, const float *k, const float *v, const float *att,
                           int N, int T, int C, int heads);

/* ---- diffusion timestep embedding (diffusers get_timestep_embedding) ----
   t (N) -> out (N,dim): f_i = exp(-ln(max_period) * i / (half - shift)), a = t * f_i (float32),
   [sin(a), cos(a)] or [cos, sin] when flip_sin_to_cos; scale multiplies a. */
void nn_timestep_embedding(float *out, const float *t, int N, int dim, int flip_sin_to_cos,
                           float freq_shift, float max_period, float scale);

/* ---- dropout (training only): mask (n) gets 0 or 1/(1-p), out = in * mask ---- */
void nn_dropout_forward(float *out, float *mask, const float *in, size_t n, float p,
                        struct rng *r);
void nn_dropout_backward(float *din, const float *dout, const float *mask, size_t n);

/* ---- losses ---- */
/* F.mse_loss mean: sum((a-b)^2)/n; backward adds scale*2(a-b)/n to da */
float nn_mse_loss_forward(const float *a, const float *b, size_t n);
void nn_mse_loss_backward(float *da, const float *a, const float *b, size_t n, float scale);
/* The VAE loss of the study, per batch of N: recon = sum((xhat - x)^2)/N over D values each;
   kl = -0.5 * sum(1 + logvar - mu^2 - exp(logvar))/N over L latents; loss = recon + beta*kl. */
float nn_vae_loss_forward(float *recon, float *kl, const float *xhat, const float *x,
                          const float *mu, const float *logvar, int N, int D, int L, float beta);
void nn_vae_loss_backward(float *dxhat, float *dmu, float *dlogvar, const float *xhat,
                          const float *x, const float *mu, const float *logvar, int N, int D,
                          int L, float beta);
#endif
