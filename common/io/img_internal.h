/* What img.c shares with the decoders of the other formats PIL opens for pytorch-fid
   (img_bmp.c, img_pnm.c, img_tiff.c, img_webp.c). Each decoder fills im with packed RGB8 as
   PIL 9.4's Image.open(p).convert('RGB') gives, or returns -1 with msg; none prints, none
   keeps global state. img_decode picks one by the file's first bytes. */
#ifndef IMG_INTERNAL_H
#define IMG_INTERNAL_H
#include <stddef.h>

#include "io/img.h"

/* -1 with msg unless 0 < w, h and w*h is at most PIL's 2 * MAX_IMAGE_PIXELS */
int img_check_dims(long long w, long long h, char *msg, size_t msglen);

int img_bmp_decode(const unsigned char *buf, size_t len, struct img *im, char *msg,
                   size_t msglen);
int img_pnm_decode(const unsigned char *buf, size_t len, struct img *im, char *msg,
                   size_t msglen);
int img_tiff_decode(const unsigned char *buf, size_t len, struct img *im, char *msg,
                    size_t msglen);
int img_webp_decode(const unsigned char *buf, size_t len, struct img *im, char *msg,
                    size_t msglen);

/* PIL's CMYK -> RGB (cmyk2rgb): nk = 255 - K, R = nk - nk*C/255 rounded as MULDIV255 */
static inline unsigned char img_cmyk_channel(int c, int k)
{
    int nk = 255 - k, t = c * nk + 128;
    return (unsigned char)(nk - ((t + (t >> 8)) >> 8));
}
#endif
