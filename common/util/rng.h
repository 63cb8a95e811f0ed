/* Seeded random numbers. Every random draw in the project comes from an explicit struct rng,
   so a run is reproducible from its seed (and, for parallel code, its thread count).

   The generator is xoshiro256** (Blackman and Vigna), seeded by running splitmix64 on the
   64-bit seed. uniform: the top 24 bits of the next output / 2^24, in [0,1).
   normal: Box-Muller on two uniforms (u1 in (0,1]), using both outputs in order; the spare is
   kept in the state so a saved and restored state continues the same stream.

   MT19937 is separately available for numpy compatibility: torch-fidelity shuffles rows with
   np.random.RandomState(2020).permutation, which mt_permutation reproduces exactly. */
#ifndef RNG_H
#define RNG_H
#include <stddef.h>
#include <stdint.h>

struct rng {
    uint64_t s[4];
    int has_spare;
    float spare;
};

void rng_seed(struct rng *r, uint64_t seed);
uint64_t rng_u64(struct rng *r);
float rng_uniform(struct rng *r);           /* [0, 1) */
float rng_normal(struct rng *r);            /* N(0, 1) */
void rng_normal_fill(struct rng *r, float *x, size_t n);
uint64_t rng_below(struct rng *r, uint64_t n); /* uniform in [0, n), unbiased */
void rng_shuffle(struct rng *r, int64_t *a, int64_t n); /* Fisher-Yates */

struct mt19937 {
    uint32_t mt[624];
    int i;
};
void mt_seed(struct mt19937 *m, uint32_t seed);  /* init_genrand */
uint32_t mt_u32(struct mt19937 *m);
/* numpy legacy RandomState(seed).permutation(n): a = arange(n), then for i = n-1..1,
   j = bounded(i) by masked rejection, swap. */
void mt_permutation(struct mt19937 *m, int64_t *a, int64_t n);
#endif
