/* UNet2DModel config.json parsing and writing, state-dict loading with both attention
   namings, and diffusers model folders. */
#include "models/unet.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "io/pth.h"
#include "util/util.h"

void unet_config_cifar10(struct unet_config *c)
{
    static const int ch[4] = {128, 256, 256, 256};
    memset(c, 0, sizeof *c);
    c->sample_size = 32;
    c->in_channels = c->out_channels = 3;
    c->n_levels = 4;
    for (int i = 0; i < 4; i++)
        c->block_out_channels[i] = ch[i];
    c->down_attn[1] = 1;
    c->up_attn[2] = 1;
    c->layers_per_block = 2;
    c->norm_num_groups = 32;
    c->norm_eps = 1e-6f;
    c->flip_sin_to_cos = 0;
    c->freq_shift = 1;
    c->downsample_padding = 0;
    c->attention_head_dim = 0;
    c->mid_block_scale_factor = 1;
    c->add_attention = 1;
    c->time_embed_dim = 512;
}

/* an integer field: absent or null gives def (or, when def < -1, is an error) */
static int get_int(const struct json *j, const char *key, int def, int lo, int hi, int *out,
                   int *is_null, char *msg, size_t msglen)
{
    const struct json *v = json_get(j, key);
    if (is_null)
        *is_null = v == NULL ? -1 : v->type == JSON_NULL;
    if (v && v->type == JSON_NULL && !is_null) {
        snprintf(msg, msglen, "%s: want an integer, got null", key);
        return -1;
    }
    if (v == NULL || v->type == JSON_NULL) {
        if (def < lo - 1) {
            snprintf(msg, msglen, "%s: missing", key);
            return -1;
        }
        *out = def;
        return 0;
    }
    if (v->type != JSON_NUMBER || v->number != floor(v->number) || v->number < lo ||
        v->number > hi) {
        snprintf(msg, msglen, "%s: want an integer in %d..%d", key, lo, hi);
        return -1;
    }
    *out = (int)v->number;
    return 0;
}

static int get_str_is(const struct json *j, const char *key, const char *def, const char *want,
                      char *msg, size_t msglen)
{
    const char *s;
    if (json_get_string(j, key, def, &s, msg, msglen) == -1)
        return -1;
    if (strcmp(s, want) != 0) {
        snprintf(msg, msglen, "%s: unsupported value '%.40s' (want '%s')", key, s, want);
        return -1;
    }
    return 0;
}

static int get_null(const struct json *j, const char *key, char *msg, size_t msglen)
{
    const struct json *v = json_get(j, key);
    if (v && v->type != JSON_NULL) {
        snprintf(msg, msglen, "%s: unsupported (want null)", key);
        return -1;
    }
    return 0;
}

static int block_types(const struct json *j, const char *key, const char *plain,
                       const char *attn, const char *const *def, int *flags, int *n,
                       char *msg, size_t msglen)
{
    const struct json *v = json_get(j, key);
    if (v == NULL) {
        for (*n = 0; def[*n]; (*n)++)
            flags[*n] = strcmp(def[*n], attn) == 0;
        return 0;
    }
    if (v->type != JSON_ARRAY || v->n < 1 || v->n > UNET_MAX_LEVELS) {
        snprintf(msg, msglen, "%s: want an array of 1..%d block types", key, UNET_MAX_LEVELS);
        return -1;
    }
    for (int i = 0; i < v->n; i++) {
        const struct json *s = &v->items[i];
        if (s->type != JSON_STRING) {
            snprintf(msg, msglen, "%s[%d]: want a string", key, i);
            return -1;
        }
        if (strcmp(s->string, plain) == 0)
            flags[i] = 0;
        else if (strcmp(s->string, attn) == 0)
            flags[i] = 1;
        else {
            snprintf(msg, msglen, "%s[%d]: unsupported block type '%.48s' (want %s or %s)", key,
                     i, s->string, plain, attn);
            return -1;
        }
    }
    *n = v->n;
    return 0;
}

int unet_config_parse(struct unet_config *c, const struct json *j, char *msg, size_t msglen)
{
    static const char *def_down[] = {"DownBlock2D", "AttnDownBlock2D", "AttnDownBlock2D",
                                     "AttnDownBlock2D", NULL};
    static const char *def_up[] = {"AttnUpBlock2D", "AttnUpBlock2D", "AttnUpBlock2D",
                                   "UpBlock2D", NULL};
    static const int def_ch[4] = {224, 448, 672, 896};
    const struct json *v;
    const char *s;
    double d;
    int nd, nu, is_null, te;

    memset(c, 0, sizeof *c);
    if (j == NULL || j->type != JSON_OBJECT) {
        snprintf(msg, msglen, "config: want a JSON object");
        return -1;
    }
    if (json_get_string(j, "_class_name", "UNet2DModel", &s, msg, msglen) == -1)
        return -1;
    if (strcmp(s, "UNet2DModel") != 0) {
        snprintf(msg, msglen, "_class_name: unsupported model '%.40s' (want UNet2DModel)", s);
        return -1;
    }
    if (get_int(j, "sample_size", -100, 1, 4096, &c->sample_size, NULL, msg, msglen) == -1 ||
        get_int(j, "in_channels", 3, 1, 64, &c->in_channels, NULL, msg, msglen) == -1 ||
        get_int(j, "out_channels", 3, 1, 64, &c->out_channels, NULL, msg, msglen) == -1 ||
        get_int(j, "layers_per_block", 2, 1, UNET_MAX_LAYERS - 1, &c->layers_per_block, NULL,
                msg, msglen) == -1 ||
        get_int(j, "norm_num_groups", 32, 1, 65536, &c->norm_num_groups, NULL, msg, msglen) == -1 ||
        get_int(j, "downsample_padding", 1, 0, 1, &c->downsample_padding, NULL, msg, msglen) == -1)
        return -1;
    if (get_int(j, "attention_head_dim", 8, 1, 65536, &c->attention_head_dim, &is_null, msg,
                msglen) == -1)
        return -1;
    if (is_null == 1)
        c->attention_head_dim = 0; /* null: heads = 1, head dim = channels */
    if (get_int(j, "attn_norm_num_groups", 0, 1, 65536, &c->attn_norm_num_groups, &is_null, msg,
                msglen) == -1)
        return -1;
    if (get_int(j, "time_embedding_dim", 0, 1, 65536, &te, &is_null, msg, msglen) == -1)
        return -1;
    c->time_embedding_dim_set = te > 0;
    if (json_get_bool(j, "center_input_sample", 0, &c->center_input_sample, msg, msglen) == -1 ||
        json_get_bool(j, "flip_sin_to_cos", 1, &c->flip_sin_to_cos, msg, msglen) == -1 ||
        json_get_bool(j, "add_attention", 1, &c->add_attention, msg, msglen) == -1)
        return -1;
    if (json_get_number(j, "norm_eps", 1e-5, &d, msg, msglen) == -1)
        return -1;
    if (!(d > 0 && d < 1)) {
        snprintf(msg, msglen, "norm_eps: want a number in (0, 1)");
        return -1;
    }
    c->norm_eps = (float)d;
    if (json_get_number(j, "freq_shift", 0, &d, msg, msglen) == -1)
        return -1;
    c->freq_shift = (float)d;
    if (json_get_number(j, "mid_block_scale_factor", 1, &d, msg, msglen) == -1)
        return -1;
    if (!(d > 0 && d < 1e6)) {
        snprintf(msg, msglen, "mid_block_scale_factor: want a positive number");
        return -1;
    }
    c->mid_block_scale_factor = (float)d;
    if (json_get_number(j, "dropout", 0, &d, msg, msglen) == -1)
        return -1;
    if (d != 0) {
        snprintf(msg, msglen, "dropout: unsupported value %g (want 0)", d);
        return -1;
    }
    if (get_str_is(j, "act_fn", "silu", "silu", msg, msglen) == -1 ||
        get_str_is(j, "time_embedding_type", "positional", "positional", msg, msglen) == -1 ||
        get_str_is(j, "downsample_type", "conv", "conv", msg, msglen) == -1 ||
        get_str_is(j, "upsample_type", "conv", "conv", msg, msglen) == -1 ||
        get_str_is(j, "resnet_time_scale_shift", "default", "default", msg, msglen) == -1 ||
        get_str_is(j, "mid_block_type", "UNetMidBlock2D", "UNetMidBlock2D", msg, msglen) == -1 ||
        get_null(j, "class_embed_type", msg, msglen) == -1 ||
        get_null(j, "num_class_embeds", msg, msglen) == -1)
        return -1;

    v = json_get(j, "block_out_channels");
    if (v == NULL) {
        c->n_levels = 4;
        memcpy(c->block_out_channels, def_ch, sizeof def_ch);
    } else {
        if (v->type != JSON_ARRAY || v->n < 1 || v->n > UNET_MAX_LEVELS) {
            snprintf(msg, msglen, "block_out_channels: want an array of 1..%d integers",
                     UNET_MAX_LEVELS);
            return -1;
        }
        c->n_levels = v->n;
        for (int i = 0; i < v->n; i++) {
            const struct json *x = &v->items[i];
            if (x->type != JSON_NUMBER || x->number != floor(x->number) || x->number < 1 ||
                x->number > 65536) {
                snprintf(msg, msglen, "block_out_channels[%d]: want a positive integer", i);
                return -1;
            }
            c->block_out_channels[i] = (int)x->number;
        }
    }
    if (block_types(j, "down_block_types", "DownBlock2D", "AttnDownBlock2D", def_down,
                    c->down_attn, &nd, msg, msglen) == -1 ||
        block_types(j, "up_block_types", "UpBlock2D", "AttnUpBlock2D", def_up, c->up_attn, &nu,
                    msg, msglen) == -1)
        return -1;
    if (nd != c->n_levels || nu != c->n_levels) {
        snprintf(msg, msglen, "%s: %d block types for %d block_out_channels",
                 nd != c->n_levels ? "down_block_types" : "up_block_types",
                 nd != c->n_levels ? nd : nu, c->n_levels);
        return -1;
    }
    c->time_embed_dim = te > 0 ? te : 4 * c->block_out_channels[0];
    return 0;
}

int unet_config_load(struct unet_config *c, const char *path, char *msg, size_t msglen)
{
    struct json *j = json_load(path, msg, msglen);
    int rc;
    if (j == NULL)
        return -1;
    rc = unet_config_parse(c, j, msg, msglen);
    json_free(j);
    return rc;
}

int unet_config_save(const struct unet_config *c, const char *path, char *msg, size_t msglen)
{
    struct outfile o;
    FILE *f;
    if (outfile_open(&o, path, msg, msglen) == -1)
        return -1;
    f = o.f;
    fprintf(f, "{\n  \"_class_name\": \"UNet2DModel\",\n  \"_diffusers_version\": \"0.21.4\",\n");
    fprintf(f, "  \"act_fn\": \"silu\",\n  \"add_attention\": %s,\n",
            c->add_attention ? "true" : "false");
    if (c->attention_head_dim)
        fprintf(f, "  \"attention_head_dim\": %d,\n", c->attention_head_dim);
    else
        fprintf(f, "  \"attention_head_dim\": null,\n");
    if (c->attn_norm_num_groups)
        fprintf(f, "  \"attn_norm_num_groups\": %d,\n", c->attn_norm_num_groups);
    else
        fprintf(f, "  \"attn_norm_num_groups\": null,\n");
    fprintf(f, "  \"block_out_channels\": [");
    for (int i = 0; i < c->n_levels; i++)
        fprintf(f, "%s%d", i ? ", " : "", c->block_out_channels[i]);
    fprintf(f, "],\n  \"center_input_sample\": %s,\n  \"class_embed_type\": null,\n",
            c->center_input_sample ? "true" : "false");
    fprintf(f, "  \"down_block_types\": [");
    for (int i = 0; i < c->n_levels; i++)
        fprintf(f, "%s\"%s\"", i ? ", " : "", c->down_attn[i] ? "AttnDownBlock2D" : "DownBlock2D");
    fprintf(f, "],\n  \"downsample_padding\": %d,\n  \"downsample_type\": \"conv\",\n",
            c->downsample_padding);
    fprintf(f, "  \"dropout\": 0.0,\n  \"flip_sin_to_cos\": %s,\n  \"freq_shift\": %.9g,\n",
            c->flip_sin_to_cos ? "true" : "false", c->freq_shift);
    fprintf(f, "  \"in_channels\": %d,\n  \"layers_per_block\": %d,\n", c->in_channels,
            c->layers_per_block);
    fprintf(f, "  \"mid_block_scale_factor\": %.9g,\n  \"norm_eps\": %.9g,\n",
            c->mid_block_scale_factor, c->norm_eps);
    fprintf(f, "  \"norm_num_groups\": %d,\n  \"num_class_embeds\": null,\n", c->norm_num_groups);
    fprintf(f, "  \"num_train_timesteps\": null,\n  \"out_channels\": %d,\n", c->out_channels);
    fprintf(f, "  \"resnet_time_scale_shift\": \"default\",\n  \"sample_size\": %d,\n",
            c->sample_size);
    if (c->time_embedding_dim_set)
        fprintf(f, "  \"time_embedding_dim\": %d,\n", c->time_embed_dim);
    else
        fprintf(f, "  \"time_embedding_dim\": null,\n");
    fprintf(f, "  \"time_embedding_type\": \"positional\",\n  \"up_block_types\": [");
    for (int i = 0; i < c->n_levels; i++)
        fprintf(f, "%s\"%s\"", i ? ", " : "", c->up_attn[i] ? "AttnUpBlock2D" : "UpBlock2D");
    fprintf(f, "],\n  \"upsample_type\": \"conv\"\n}\n");
    return outfile_commit(&o, msg, msglen);
}

int unet_load_state(struct unet *u, const struct st_file *f, char *msg, size_t msglen)
{
    int rc = param_table_load(&u->pt, f, 0, msg, msglen);
    unet_weights_changed(u);
    return rc;
}

static void join(char *out, size_t n, const char *dir, const char *file)
{
    snprintf(out, n, "%s/%s", dir, file);
}

int unet_load_dir(struct unet *u, const char *dir, char *msg, size_t msglen)
{
    struct unet_config c;
    struct st_file f;
    char path[4096], m[256];
    int rc;

    if (!util_is_dir(dir)) {
        snprintf(msg, msglen, "not a model directory");
        return -1;
    }
    join(path, sizeof path, dir, "config.json");
    if (unet_config_load(&c, path, m, sizeof m) == -1) {
        snprintf(msg, msglen, "config.json: %s", m);
        return -1;
    }
    if (unet_init(u, &c, m, sizeof m) == -1) {
        snprintf(msg, msglen, "config.json: %s", m);
        return -1;
    }
    join(path, sizeof path, dir, "diffusion_pytorch_model.safetensors");
    if (util_exists(path)) {
        rc = st_open(&f, path, m, sizeof m);
    } else {
        join(path, sizeof path, dir, "diffusion_pytorch_model.bin");
        if (!util_exists(path)) {
            snprintf(msg, msglen, "no diffusion_pytorch_model.safetensors or .bin");
            unet_free(u);
            return -1;
        }
        rc = pth_open(&f, path, m, sizeof m);
    }
    if (rc == -1) {
        snprintf(msg, msglen, "%s: %s", strrchr(path, '/') + 1, m);
        unet_free(u);
        return -1;
    }
    rc = unet_load_state(u, &f, m, sizeof m);
    st_close(&f);
    if (rc == -1) {
        snprintf(msg, msglen, "%s: %s", strrchr(path, '/') + 1, m);
        unet_free(u);
        return -1;
    }
    return 0;
}

int unet_save_dir(const struct unet *u, const char *dir, char *msg, size_t msglen)
{
    static const char *mk[] = {"format"}, *mv[] = {"pt"};
    struct outfile o;
    char path[4096], m[256];
    int rc;

    if (util_mkdirs(dir, m, sizeof m) == -1) {
        snprintf(msg, msglen, "%s", m);
        return -1;
    }
    join(path, sizeof path, dir, "config.json");
    if (unet_config_save(&u->cfg, path, m, sizeof m) == -1) {
        snprintf(msg, msglen, "config.json: %s", m);
        return -1;
    }
    join(path, sizeof path, dir, "diffusion_pytorch_model.safetensors");
    rc = param_table_save(&u->pt, 1, path, mk, mv, 1, m, sizeof m);
    if (rc == -1) {
        snprintf(msg, msglen, "diffusion_pytorch_model.safetensors: %s", m);
        return -1;
    }
    join(path, sizeof path, dir, "model_index.json");
    if (outfile_open(&o, path, m, sizeof m) == -1) {
        snprintf(msg, msglen, "model_index.json: %s", m);
        return -1;
    }
    fprintf(o.f, "{\n  \"_class_name\": \"DDPMPipeline\",\n  \"_diffusers_version\": \"0.21.4\",\n"
                 "  \"scheduler\": [\n    \"diffusers\",\n    \"DDPMScheduler\"\n  ],\n"
                 "  \"unet\": [\n    \"diffusers\",\n    \"UNet2DModel\"\n  ]\n}\n");
    if (outfile_commit(&o, m, sizeof m) == -1) {
        snprintf(msg, msglen, "model_index.json: %s", m);
        return -1;
    }
    return 0;
}
