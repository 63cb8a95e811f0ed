/* nn_image: the uint8 <-> [-1, 1] convention against closed-form values, against the
   formulas it replaced (torchvision's ((u/255) - 0.5) / 0.5 for every byte, diffusers'
   rint(clamp(x/2 + 0.5, 0, 1) * 255) over a sweep of float32 in [-1.5, 1.5]), its
   rounding at .5 and clamping, and the NHWC <-> NCHW layout. */
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "nn/nn_image.h"
#include "test.h"

static void test_from_u8(void)
{
    int bad = 0, trip = 0;
    for (int u = 0; u < 256; u++) {
        float x = nn_image_from_u8((uint8_t)u), ref = ((float)u / 255.0f - 0.5f) / 0.5f;
        bad += memcmp(&x, &ref, sizeof x) != 0;
        trip += nn_image_to_u8(x) != u;
    }
    CHECK(nn_image_from_u8(0) == -1.0f && nn_image_from_u8(255) == 1.0f, "0 -> -1, 255 -> 1");
    CHECK(nn_image_from_u8(51) == -0.6f, "51 -> -0.6");
    CHECK(bad == 0, "u/127.5 - 1 is ToTensor + Normalize(0.5, 0.5) bit for bit (%d bytes differ)",
          bad);
    CHECK(trip == 0, "byte -> float -> byte is exact (%d bytes differ)", trip);
}

static void test_to_u8(void)
{
    /* 127.5 rounds up to even 128 (truncation: 127); 0x1.010082p-7 gives exactly 128.5,
       which rounds down to even 128 (half up: 129) */
    CHECK(nn_image_to_u8(0.0f) == 128, "0 -> 127.5 -> 128");
    CHECK(nn_image_to_u8(0x1.010082p-7f) == 128, "128.5 -> 128");
    CHECK(nn_image_to_u8(0.5f) == 191 && nn_image_to_u8(-0.5f) == 64, "+-0.5 -> 191, 64");
    CHECK(nn_image_to_u8(-1.0f) == 0 && nn_image_to_u8(1.0f) == 255, "-1 -> 0, 1 -> 255");
    CHECK(nn_image_to_u8(1.0001f) == 255 && nn_image_to_u8(7.0f) == 255 &&
              nn_image_to_u8(INFINITY) == 255, "above 1 clamps to 255");
    CHECK(nn_image_to_u8(-1.0001f) == 0 && nn_image_to_u8(-7.0f) == 0 &&
              nn_image_to_u8(-INFINITY) == 0, "below -1 clamps to 0");
    CHECK(nn_image_to_u8(NAN) == 0, "NaN -> 0");

    /* ddpm-sample's former formula; every finite float32 agreed (checked once in full, here
       every 257th bit pattern up to |x| = 1.5) */
    long bad = 0;
    for (uint32_t b = 0; b <= 0x3fc00000u; b += 257)
        for (int s = 0; s < 2; s++) {
            uint32_t bits = b | (s ? 0x80000000u : 0);
            float x, v;
            memcpy(&x, &bits, sizeof x);
            v = x / 2 + 0.5f;
            v = v < 0 ? 0 : v > 1 ? 1 : v;
            bad += nn_image_to_u8(x) != (uint8_t)rintf(v * 255.0f);
        }
    CHECK(bad == 0, "(x+1)*127.5 rounds as rint(clamp(x/2+0.5, 0, 1)*255) (%ld differ)", bad);
}

static void test_layout(void)
{
    /* img (2,1,3,2): pixel value 10*n + 3*w + c -> x (2,2,1,3) */
    enum { N = 2, C = 2, H = 1, W = 3 };
    uint8_t img[N * H * W * C], back[N * H * W * C];
    float x[N * C * H * W];
    for (int n = 0; n < N; n++)
        for (int w = 0; w < W; w++)
            for (int c = 0; c < C; c++)
                img[(n * W + w) * C + c] = (uint8_t)(10 * n + 3 * w + c);
    nn_image_to_nchw(x, img, N, C, H, W);
    int bad = 0;
    for (int n = 0; n < N; n++)
        for (int c = 0; c < C; c++)
            for (int w = 0; w < W; w++)
                bad += x[(n * C + c) * W + w] != nn_image_from_u8((uint8_t)(10 * n + 3 * w + c));
    CHECK(bad == 0, "NHWC -> NCHW puts each pixel at (n, c, h, w)");
    nn_image_from_nchw(back, x, N, C, H, W);
    CHECK(memcmp(back, img, sizeof img) == 0, "NCHW -> NHWC gives the bytes back");
}

int main(void)
{
    (void)test_close; /* every value here is compared bit for bit */
    test_from_u8();
    test_to_u8();
    test_layout();
    return test_done();
}
