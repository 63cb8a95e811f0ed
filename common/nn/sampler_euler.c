/* EulerDiscreteScheduler (s_churn 0) and EulerAncestralDiscreteScheduler steps, diffusers 0.26
   scheduling_euler_discrete.py / scheduling_euler_ancestral_discrete.py, epsilon prediction:
   the same operations in the same order, float32. */
#include <math.h>

#include "nn/sampler.h"

void sampler_euler_step(struct sampler *s, int i, float *x, const float *eps, const float *noise,
                        size_t n)
{
    float sg = s->sigmas[i], to = s->sigmas[i + 1];
    if (s->kind == SAMPLER_EULER) {
        float dt = to - sg;
        for (size_t k = 0; k < n; k++) {
            float x0 = x[k] - sg * eps[k], d = (x[k] - x0) / sg;
            x[k] = x[k] + d * dt;
        }
        return;
    }
    float up = sqrtf(to * to * (sg * sg - to * to) / (sg * sg));
    float down = sqrtf(to * to - up * up), dt = down - sg;
    for (size_t k = 0; k < n; k++) {
        float x0 = x[k] - sg * eps[k], d = (x[k] - x0) / sg;
        x[k] = (x[k] + d * dt) + noise[k] * up;
    }
}
