/* WebP decoding with libwebp's animation decoder, as PIL 9.4's WebPImagePlugin does for
   every WebP file (it has WebPAnimDecoder): the first frame on its canvas, in RGBA without
   premultiplication; convert('RGB') drops the alpha. A still image is its one frame. */
#include "io/img_internal.h"
#include "util/util.h"

#include <stdio.h>
#include <string.h>
#include <webp/demux.h>

int img_webp_decode(const unsigned char *buf, size_t len, struct img *im, char *msg,
                    size_t msglen)
{
    WebPData data = {buf, len};
    WebPAnimDecoderOptions opt;
    WebPAnimDecoder *dec;
    WebPAnimInfo info;
    uint8_t *frame;
    int ts;
    if (!WebPAnimDecoderOptionsInit(&opt)) {
        snprintf(msg, msglen, "libwebp version mismatch");
        return -1;
    }
    opt.color_mode = MODE_RGBA;
    opt.use_threads = 0;
    if ((dec = WebPAnimDecoderNew(&data, &opt)) == NULL) {
        snprintf(msg, msglen, "corrupt WebP file");
        return -1;
    }
    if (!WebPAnimDecoderGetInfo(dec, &info) ||
        img_check_dims(info.canvas_width, info.canvas_height, msg, msglen) == -1) {
        if (msg[0] == '\0')
            snprintf(msg, msglen, "corrupt WebP file");
        WebPAnimDecoderDelete(dec);
        return -1;
    }
    if (!WebPAnimDecoderGetNext(dec, &frame, &ts)) {
        snprintf(msg, msglen, "corrupt WebP file");
        WebPAnimDecoderDelete(dec);
        return -1;
    }
    size_t n = (size_t)info.canvas_width * info.canvas_height;
    im->rgb = xmalloc(n * 3);
    for (size_t i = 0; i < n; i++)
        memcpy(im->rgb + 3 * i, frame + 4 * i, 3);
    im->w = (int)info.canvas_width;
    im->h = (int)info.canvas_height;
    WebPAnimDecoderDelete(dec);
    return 0;
}
