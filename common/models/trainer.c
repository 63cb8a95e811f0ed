/* Stop flag, epoch order, resume metadata strings and log of the trainers; see trainer.h. */
#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "nn/nn_image.h"
#include "models/trainer.h"
#include "util/util.h"

static volatile sig_atomic_t stop_signal;

void trainer_on_signal(int sig)
{
    if (stop_signal) { /* second signal: give up now */
        util_remove_temps();
        _exit(128 + sig);
    }
    stop_signal = sig;
}

void trainer_catch_signals(void)
{
    signal(SIGINT, trainer_on_signal);
    signal(SIGTERM, trainer_on_signal);
    signal(SIGHUP, trainer_on_signal);
}

int trainer_stop(void)
{
    return stop_signal;
}

void trainer_epoch_perm(int64_t *perm, long n, long seed, long epoch)
{
    struct rng r;
    rng_seed(&r, (uint64_t)seed * 0x9E3779B97F4A7C15ull + (uint64_t)epoch + 1);
    for (long i = 0; i < n; i++)
        perm[i] = i;
    rng_shuffle(&r, perm, n);
}

/* splitmix64's finaliser: every bit of x moves every bit of the result */
static uint64_t mix64(uint64_t x)
{
    x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
    x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
    return x ^ (x >> 31);
}

void trainer_sample_rng(struct rng *r, long seed, long step, long j)
{
    uint64_t h = mix64((uint64_t)seed + 0x9E3779B97F4A7C15ull);
    h = mix64(h ^ ((uint64_t)step + 0x632BE59BD9B4E019ull));
    h = mix64(h ^ ((uint64_t)j + 0x8CB92BA72F3D8DD7ull));
    rng_seed(r, h);
}

void trainer_gather_images(float *x, const struct npy *data, const int64_t *perm, long i0,
                           int n, struct rng *flip_rng)
{
    int H = (int)data->shape[1], W = (int)data->shape[2], C = (int)data->shape[3];
    size_t HW = (size_t)H * W;
    const uint8_t *src = data->data;
    float lut[256];
    for (int i = 0; i < 256; i++) /* by byte, not nn_image_to_nchw: the gather flips */
        lut[i] = nn_image_from_u8((uint8_t)i);
    for (int b = 0; b < n; b++) {
        const uint8_t *im = src + (size_t)perm[i0 + b] * HW * C;
        float *xb = x + (size_t)b * C * HW;
        int flip = flip_rng != NULL && rng_uniform(flip_rng) < 0.5f;
        for (int y = 0; y < H; y++)
            for (int xx = 0; xx < W; xx++) {
                const uint8_t *px = im + ((size_t)y * W + (flip ? W - 1 - xx : xx)) * C;
                for (int c = 0; c < C; c++)
                    xb[(size_t)c * HW + (size_t)y * W + xx] = lut[px[c]];
            }
    }
}

uint64_t trainer_data_hash(const struct npy *data)
{
    const uint8_t *p = data->data;
    size_t n = npy_nbytes(data);
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < n; i++)
        h = (h ^ p[i]) * 1099511628211ull;
    return h;
}

void trainer_hash_format(char *buf, size_t len, uint64_t hash)
{
    snprintf(buf, len, "%016" PRIx64, hash);
}

void trainer_rng_format(char *buf, size_t len, const struct rng *r)
{
    uint32_t spare;
    memcpy(&spare, &r->spare, 4);
    snprintf(buf, len, "%016" PRIx64 " %016" PRIx64 " %016" PRIx64 " %016" PRIx64 " %d %08" PRIx32,
             r->s[0], r->s[1], r->s[2], r->s[3], r->has_spare, spare);
}

int trainer_rng_parse(struct rng *r, const char *s)
{
    unsigned long long w[4];
    int has_spare;
    uint32_t spare;
    if (sscanf(s, "%llx %llx %llx %llx %d %" SCNx32, &w[0], &w[1], &w[2], &w[3], &has_spare,
               &spare) != 6)
        return -1;
    for (int i = 0; i < 4; i++)
        r->s[i] = w[i];
    r->has_spare = has_spare;
    memcpy(&r->spare, &spare, 4);
    return 0;
}

int trainer_state_path(char *buf, size_t len, const char *model_path)
{
    size_t l = strlen(model_path), sl = strlen(".safetensors");
    if (l >= sl && strcmp(model_path + l - sl, ".safetensors") == 0)
        l -= sl;
    if (l + 32 > len)
        return -1;
    snprintf(buf, len, "%.*s.state.safetensors", (int)l, model_path);
    return 0;
}

/* rewrites the log keeping its header and the rows of steps <= step */
static int log_cut(const char *path, long step)
{
    unsigned char *buf;
    size_t len;
    char msg[160];
    struct outfile o;
    if (util_read_file(path, &buf, &len, msg, sizeof msg) == -1)
        return errno == ENOENT ? 0 : -1;
    if (outfile_open(&o, path, msg, sizeof msg) == -1) {
        free(buf);
        return -1;
    }
    for (char *line = (char *)buf, *nl; (nl = strchr(line, '\n')) != NULL; line = nl + 1) {
        char *end;
        long s = strtol(line, &end, 10);
        if (line == (char *)buf || (end > line && *end == ',' && s <= step))
            fwrite(line, 1, (size_t)(nl + 1 - line), o.f);
    }
    free(buf);
    return outfile_commit(&o, msg, sizeof msg);
}

FILE *trainer_log_open(const char *path, int resume, long step, const char *header)
{
    if (resume && log_cut(path, step) == -1)
        return NULL;
    FILE *f = fopen(path, resume ? "a" : "w");
    if (f != NULL && ftell(f) == 0)
        fputs(header, f);
    return f;
}
