/* PyTorch's default initialisation of the diffusers UNet2DModel's parameters, for training
   from scratch (ddpm-train without --init-from). */
#include "models/unet_init.h"

#include <math.h>
#include <string.h>

#include "models/unet.h"
#include "nn/optim.h"

void unet_init_torch_default(struct unet *u, struct rng *r)
{
    float bound = 0;
    for (int i = 0; i < u->pt.n; i++) {
        const struct st_entry *e = &u->pt.e[i];
        size_t n = 1, fan_in = 1;
        int is_bias = strlen(e->name) > 5 && strcmp(e->name + strlen(e->name) - 5, ".bias") == 0;
        for (int d = 0; d < e->ndim; d++)
            n *= (size_t)e->shape[d];
        for (int d = 1; d < e->ndim; d++)
            fan_in *= (size_t)e->shape[d];
        if (strstr(e->name, "norm") != NULL) {
            for (size_t k = 0; k < n; k++)
                e->ptr[k] = is_bias ? 0.0f : 1.0f;
            continue;
        }
        if (!is_bias) /* a bias follows its weight and shares its fan_in */
            bound = (float)(1.0 / sqrt((double)fan_in));
        init_uniform(e->ptr, n, bound, r);
    }
    unet_weights_changed(u);
}
